// Random identifiers and secrets from the operating system's CSPRNG.
import { randomBytes } from 'node:crypto'

/** `bytes` random bytes as unpadded base64url (16 bytes = 128 bits by default). */
export function randomId(bytes = 16): string {
  return randomBytes(bytes).toString('base64url')
}

/** A 256-bit secret as 64 hex characters, the same shape as `openssl rand -hex 32`. */
export function randomSecret(): string {
  return randomBytes(32).toString('hex')
}
