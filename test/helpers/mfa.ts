// The second factor from a client's side: an authenticator app (otpauth, the library the server
// uses, fed the secret the server handed out), enrolment, and the two steps of a login.
import { Secret, TOTP } from 'otpauth'
import { type Answer, bearer, logIn, type Target, tokenRequest } from './http.js'

/** A key for MFA_ENCRYPTION_KEY (32+ bytes). */
export const MFA_KEY = 'test-mfa-encryption-key-0123456789abcdef'

export const MFA_OTP_GRANT = 'urn:authgate:grant-type:mfa-otp'
export const MFA_RECOVERY_GRANT = 'urn:authgate:grant-type:mfa-recovery-code'

/** What an authenticator app shows for `secret` at `atMs` (RFC 6238: SHA-1, 30 s, 6 digits). */
export function codeAt(secret: string, atMs: number): string {
  return new TOTP({ secret: Secret.fromBase32(secret), algorithm: 'SHA1', digits: 6, period: 30 }).generate({
    timestamp: atMs,
  })
}

async function json<T extends Target>(res: Answer<T>): Promise<[number, Record<string, unknown>]> {
  if ('statusCode' in res) return [res.statusCode, res.json()]
  const r = res as Response
  return [r.status, (await r.json()) as Record<string, unknown>]
}

function request<T extends Target>(on: T, method: string, path: string, token: string, body: object) {
  const headers = { ...bearer(token), 'content-type': 'application/json' }
  const payload = JSON.stringify(body)
  if (typeof on === 'object' && 'inject' in on)
    return on.inject({ method: method as 'POST', url: path, headers, payload }) as Promise<Answer<T>>
  const base = typeof on === 'string' ? on : (on as { url: string }).url
  return fetch(`${base}${path}`, { method, headers, body: payload }) as Promise<Answer<T>>
}

export const beginTotp = <T extends Target>(on: T, token: string, password: string) =>
  request(on, 'POST', '/auth/mfa/totp', token, { password })
export const confirmTotp = <T extends Target>(on: T, token: string, code: string) =>
  request(on, 'POST', '/auth/mfa/totp/confirm', token, { code })
export const removeTotp = <T extends Target>(
  on: T,
  token: string,
  proof: { password: string } | { code: string },
) => request(on, 'DELETE', '/auth/mfa/totp', token, proof)

/**
 * Enrols TOTP for the holder of `token` and confirms it with the code of `atMs`: the secret and
 * the recovery codes. Anything but success throws.
 */
export async function enrolTotp(
  on: Target,
  token: string,
  password: string,
  atMs: number,
): Promise<{ secret: string; recoveryCodes: string[] }> {
  const [status, begun] = await json(await beginTotp(on, token, password))
  if (status !== 200) throw new Error(`POST /auth/mfa/totp: ${status} ${JSON.stringify(begun)}`)
  const secret = begun.secret as string
  const [confirmed, body] = await json(await confirmTotp(on, token, codeAt(secret, atMs)))
  if (confirmed !== 200) throw new Error(`confirm: ${confirmed} ${JSON.stringify(body)}`)
  return { secret, recoveryCodes: body.recovery_codes as string[] }
}

/** The password step of an account with TOTP: its mfa_token (anything but mfa_required throws). */
export async function mfaToken(on: Target, username: string, password: string): Promise<string> {
  const [status, body] = await json(await logIn(on, username, password))
  if (status !== 401 || body.code !== 'mfa_required')
    throw new Error(`expected mfa_required, got ${status} ${JSON.stringify(body)}`)
  return body.mfa_token as string
}

/** The second step with a TOTP code. */
export const withOtp = <T extends Target>(on: T, token: string, otp: string) =>
  tokenRequest(on, { grant_type: MFA_OTP_GRANT, mfa_token: token, otp })

/** The second step with a recovery code. */
export const withRecoveryCode = <T extends Target>(on: T, token: string, code: string) =>
  tokenRequest(on, { grant_type: MFA_RECOVERY_GRANT, mfa_token: token, recovery_code: code })
