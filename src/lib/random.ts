// Random identifiers and secrets from the operating system's CSPRNG.
import { randomBytes } from 'node:crypto'

/**
 * `bytes` random bytes as unpadded base64url (16 bytes = 128 bits by default), or as hex: an id
 * that may stand on a command line never starts with '-' (which base64url can).
 */
export function randomId(bytes = 16, encoding: 'base64url' | 'hex' = 'base64url'): string {
  return randomBytes(bytes).toString(encoding)
}

/** A 256-bit secret as 64 hex characters, the same shape as `openssl rand -hex 32`. */
export function randomSecret(): string {
  return randomBytes(32).toString('hex')
}
