// Time-based one-time passwords (RFC 6238) and recovery codes, the rules of issue 13 item 1 that
// depend on nothing but the clock: what a secret is, the otpauth:// URI an authenticator app
// scans, which time step a code belongs to, and what a recovery code looks like and is stored as.
// The parameters are the ones every authenticator app supports (Google Authenticator ignores any
// other): HMAC-SHA-1, 30-second steps, 6 digits.
//
// domain/mfa.ts decides when they are asked for and stores what they return.
import { randomBytes } from 'node:crypto'
import { Secret, TOTP } from 'otpauth'
import { constantTimeEqual, sha256Hex } from '../lib/crypto.js'

export const TOTP_ALGORITHM = 'SHA1'
export const TOTP_DIGITS = 6
export const TOTP_PERIOD_SECONDS = 30
/**
 * Steps either side of now that a code may come from: RFC 6238 §5.2 allows for network delay
 * and clock drift and recommends "at most one time step"; NIST SP 800-63B §5.1.4.2 asks that a
 * code be short-lived. One step each way accepts a code typed up to 30 s late or early.
 */
export const TOTP_WINDOW = 1
// RFC 4226 §4 (R6), which RFC 6238 builds on: a shared secret of 160 bits is RECOMMENDED.
const SECRET_BYTES = 20
const CODE = /^[0-9]{6}$/

/** A new shared secret, base32 (RFC 4648 §6) as authenticator apps take it, without padding. */
export function newTotpSecret(): string {
  // otpauth draws the bytes from node:crypto's CSPRNG.
  return new Secret({ size: SECRET_BYTES }).base32
}

/**
 * The Key Uri Format authenticator apps scan from a QR code:
 * `otpauth://totp/ISSUER:ACCOUNT?secret=...&issuer=ISSUER&algorithm=SHA1&digits=6&period=30`.
 */
export function otpauthUri({ secret, issuer, account }: { secret: string; issuer: string; account: string }) {
  return new TOTP({
    issuer,
    label: account,
    algorithm: TOTP_ALGORITHM,
    digits: TOTP_DIGITS,
    period: TOTP_PERIOD_SECONDS,
    secret: Secret.fromBase32(secret),
  }).toString()
}

/** The time step (RFC 6238 §4.2: T = floor(unix time / 30)) an instant falls in. */
export function timeStepAt(nowMs: number): number {
  return Math.floor(nowMs / 1000 / TOTP_PERIOD_SECONDS)
}

/**
 * The time step `code` was generated for, within TOTP_WINDOW of `nowMs`, or undefined when it is
 * not a code of this secret near now. A code is usable once: RFC 6238 §5.2 ("the verifier MUST NOT
 * accept the second attempt of the same OTP after the successful validation has been issued for
 * the first OTP"). So the caller accepts it only if the step is later than the last one it
 * accepted for this user, and records it in the same compare-and-swap; that also refuses an
 * older code once a newer one was used.
 */
export function matchTotp(secret: string, code: string, nowMs: number): number | undefined {
  if (!CODE.test(code)) return undefined
  const delta = TOTP.validate({
    token: code,
    secret: Secret.fromBase32(secret),
    algorithm: TOTP_ALGORITHM,
    digits: TOTP_DIGITS,
    period: TOTP_PERIOD_SECONDS,
    timestamp: nowMs,
    window: TOTP_WINDOW,
  })
  return delta === null ? undefined : timeStepAt(nowMs) + delta
}

/** How many recovery codes an enrolment hands out, shown once (issue 13 item 1). */
export const RECOVERY_CODE_COUNT = 10
// Crockford's base32 alphabet: no I, L, O or U, so nothing reads as another character.
const RECOVERY_ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz'
const RECOVERY_GROUPS = 5
const RECOVERY_GROUP_LENGTH = 5

/**
 * A new recovery code: 25 base32 characters (125 bits) in five groups, `xxxxx-xxxxx-xxxxx-xxxxx-xxxxx`.
 * NIST SP 800-63B §5.1.2.2: look-up secrets of at least 112 bits may be stored under a plain
 * one-way hash (below 112 bits they would need a salted password hash); OWASP ASVS 5.0 6.6.2:
 * used once, stored hashed.
 */
export function newRecoveryCode(): string {
  const length = RECOVERY_GROUPS * RECOVERY_GROUP_LENGTH
  // 32 divides 256: each byte modulo 32 is uniform.
  const chars = [...randomBytes(length)].map((b) => RECOVERY_ALPHABET[b % 32] as string)
  const groups: string[] = []
  for (let i = 0; i < length; i += RECOVERY_GROUP_LENGTH)
    groups.push(chars.slice(i, i + RECOVERY_GROUP_LENGTH).join(''))
  return groups.join('-')
}

/**
 * What a typed recovery code is compared as: lower case, without spaces or dashes, and with the
 * letters Crockford's base32 reads as digits (i, l → 1; o → 0). Undefined when it cannot be one.
 */
export function normalizeRecoveryCode(typed: string): string | undefined {
  const compact = typed.toLowerCase().replace(/[\s-]/g, '').replace(/[il]/g, '1').replace(/o/g, '0')
  const length = RECOVERY_GROUPS * RECOVERY_GROUP_LENGTH
  if (compact.length !== length) return undefined
  for (const c of compact) if (!RECOVERY_ALPHABET.includes(c)) return undefined
  return compact
}

/** What is stored for a recovery code: the SHA-256 of its normalised form, hex. */
export function recoveryCodeHash(code: string): string | undefined {
  const normal = normalizeRecoveryCode(code)
  return normal === undefined ? undefined : sha256Hex(normal)
}

/** Whether `typed` is the code behind `storedHash`, in time that does not depend on how much matched. */
export function recoveryCodeMatches(typed: string, storedHash: string): boolean {
  const hash = recoveryCodeHash(typed)
  return hash !== undefined && constantTimeEqual(hash, storedHash)
}
