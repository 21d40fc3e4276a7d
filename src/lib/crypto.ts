// Small crypto helpers: opaque tokens, their stored hashes, and sealing a value under a token.
import { createCipheriv, createDecipheriv, hash, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto'

/** An opaque bearer secret: 256 bits from the CSPRNG, base64url. */
export function randomToken(): string {
  return randomBytes(32).toString('base64url')
}

/** What is stored instead of a token: its SHA-256, hex (one-shot: no Hash object per call). */
export function sha256Hex(value: string): string {
  return hash('sha256', value, 'hex')
}

/**
 * Whether `a` equals `b`, in time that depends only on their lengths: for comparing a stored hash
 * with one just computed (equal lengths), so the time taken says nothing of how much matched.
 */
export function constantTimeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8')
  const y = Buffer.from(b, 'utf8')
  return x.length === y.length && timingSafeEqual(x, y)
}

function keyFrom(token: string): Buffer {
  return Buffer.from(hkdfSync('sha256', token, 'authgate', 'sealed-under-token', 32))
}

/**
 * AES-256-GCM under a 32-byte `key`, bound to `aad` (authenticated, not stored): the sealed value
 * opens only with the same key and the same aad, so a value copied onto another row does not.
 */
export function sealWithKey(key: Buffer, plaintext: string, aad = ''): string {
  const iv = randomBytes(12)
  const cipher = createCipheriv('aes-256-gcm', key, iv)
  cipher.setAAD(Buffer.from(aad, 'utf8'))
  const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()])
  return Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64url')
}

/** The plaintext, or undefined if `sealed` was not sealed under `key` with `aad`, or was altered. */
export function openWithKey(key: Buffer, sealed: string, aad = ''): string | undefined {
  try {
    const raw = Buffer.from(sealed, 'base64url')
    const decipher = createDecipheriv('aes-256-gcm', key, raw.subarray(0, 12))
    decipher.setAAD(Buffer.from(aad, 'utf8'))
    decipher.setAuthTag(raw.subarray(12, 28))
    return Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString('utf8')
  } catch {
    return undefined
  }
}

/** AES-256-GCM under a key derived from `token`: only a holder of the token can open it. */
export function sealUnder(token: string, plaintext: string): string {
  return sealWithKey(keyFrom(token), plaintext)
}

/** The plaintext, or undefined if `sealed` was not sealed under `token` or was altered. */
export function openUnder(token: string, sealed: string): string | undefined {
  return openWithKey(keyFrom(token), sealed)
}
