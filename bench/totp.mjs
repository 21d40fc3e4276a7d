// Logins with TOTP for bench/run.mjs (issue 13): accounts with an authenticator enrolled, whose
// secrets both the seeding script and the load generator derive from the account's name, and the
// two-request login (the password grant's mfa_required, then the mfa-otp grant) as an autocannon
// sequence. Only the second request's 200 is a 2xx, so 2xx/s is completed logins per second.
import { createHash } from 'node:crypto'
import { Secret, TOTP } from 'otpauth'

export const TOTP_USER = 'benchtotp'
/** MFA_ENCRYPTION_KEY for the bench's servers: the scenario's secrets are sealed under it. */
export const BENCH_MFA_KEY = 'bench-mfa-encryption-key-0123456789abcdef'
const FORM = 'application/x-www-form-urlencoded'
const STEP_MS = 30_000

/** The account's TOTP secret, base32: the SHA-1 of its name (a bench secret, not a real one). */
export function totpSecretOf(username) {
  return new Secret({ buffer: createHash('sha1').update(`bench:${username}`).digest().buffer }).base32
}

const generator = (secret) =>
  new TOTP({ secret: Secret.fromBase32(secret), algorithm: 'SHA1', digits: 6, period: 30 })

/**
 * The autocannon request sequence. A code is accepted once per account and step (RFC 6238 §5.2,
 * the replay guard), so each login takes an account that has not signed in during this step (or
 * the next step's code, one step of skew, if it has not used that one either).
 */
export function totpLoginRequests(count, password) {
  const users = Array.from({ length: count }, (_, i) => {
    const username = `${TOTP_USER}${i}`
    return { username, totp: generator(totpSecretOf(username)), lastStep: Number.NEGATIVE_INFINITY }
  })
  let next = 0
  /** The next account with an unused code now or in the next step, and that step; throws when none. */
  function pick() {
    const now = Math.floor(Date.now() / STEP_MS)
    for (let tried = 0; tried < users.length; tried++) {
      const user = users[next++ % users.length]
      const step = Math.max(now, user.lastStep + 1)
      if (step <= now + 1) {
        user.lastStep = step
        return { user, step }
      }
    }
    throw new Error(`every one of the ${count} TOTP accounts signed in this step: seed more (--totp-users)`)
  }
  return [
    {
      method: 'POST',
      path: '/auth/token',
      headers: { 'content-type': FORM },
      setupRequest: (request, context) => {
        context.login = pick()
        return {
          ...request,
          body: new URLSearchParams({ username: context.login.user.username, password }).toString(),
        }
      },
      onResponse: (status, body, context) => {
        context.mfaToken = status === 401 ? JSON.parse(body).mfa_token : undefined
      },
    },
    {
      method: 'POST',
      path: '/auth/token',
      headers: { 'content-type': FORM },
      setupRequest: (request, context) => ({
        ...request,
        body: new URLSearchParams({
          grant_type: 'urn:authgate:grant-type:mfa-otp',
          mfa_token: context.mfaToken ?? 'none',
          otp: context.login.user.totp.generate({ timestamp: context.login.step * STEP_MS }),
        }).toString(),
      }),
    },
  ]
}
