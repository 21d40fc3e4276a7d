// One spelling per JWS signature: canonical base64url (no stray trailing bits) and low-S ECDSA.
// A second valid spelling of a token defeats anything that tells tokens apart by their text (a
// cache, a deny-list, a replay check); RFC 7515 §2 and RFC 4648 §3.5 make the canonical form the
// only one, and OpenSSL rejects the other malleable forms itself (Ed25519 S >= L, RFC 8032
// §5.1.7; RSA signatures of the wrong length).

/** A JOSE header segment decoded (RFC 7515 §4): its members, or undefined when it is not a JSON object. */
export function parseHeaderSegment(segment: string): Record<string, unknown> | undefined {
  let header: unknown
  try {
    header = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'))
  } catch {
    return undefined
  }
  return header !== null && typeof header === 'object' ? (header as Record<string, unknown>) : undefined
}

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
// Char code -> 6-bit value; -1 for anything outside the base64url alphabet.
const VALUE = new Int8Array(128).fill(-1)
for (let i = 0; i < ALPHABET.length; i++) VALUE[ALPHABET.charCodeAt(i)] = i

/**
 * True when the last segment of a JWS (from `from` on) is canonical base64url: only alphabet
 * characters and no padding (fast-jwt checks those too), a length that a whole number of bytes
 * encodes to, and the unused low bits of the last character zero (RFC 4648 §3.5). Otherwise
 * 'B' and 'A' could end the same signature.
 */
export function canonicalSignature(token: string, from: number): boolean {
  const length = token.length - from
  const rest = length % 4
  if (length === 0 || rest === 1) return false
  const last = token.charCodeAt(token.length - 1)
  const value = last < 128 ? (VALUE[last] as number) : -1
  if (value < 0) return false
  // 2 chars left over carry 1 byte (4 unused bits), 3 carry 2 bytes (2 unused bits).
  const unusedMask = rest === 2 ? 0b1111 : rest === 3 ? 0b11 : 0
  return (value & unusedMask) === 0
}

// P-256's group order n (SEC 2 §2.4.2, FIPS 186-5), and (n - 1) / 2: the largest low s.
const P256_N = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n
const P256_HALF_N = Buffer.from(((P256_N - 1n) / 2n).toString(16).padStart(64, '0'), 'hex')
// ES256 signatures are R || S, 32 bytes each (RFC 7518 §3.4): 86 base64url characters.
const ES256_SIGNATURE_CHARS = 86
// Decoded into one buffer, reused: the check allocates nothing.
const scratch = Buffer.alloc(64)

/**
 * True when an ES256 signature (the token's last segment, from `from` on) has s > n/2. Both s
 * and n - s verify; BIP 62 and libsecp256k1 call the high one malleable, and we never sign it.
 */
export function isHighS(token: string, from: number): boolean {
  if (token.length - from !== ES256_SIGNATURE_CHARS) return false
  if (scratch.write(token.slice(from), 'base64url') !== 64) return false
  return scratch.compare(P256_HALF_N, 0, 32, 32, 64) > 0
}

/** The same ES256 token with s replaced by n - s when s is high; otherwise the token itself. */
export function toLowS(token: string): string {
  const dot = token.lastIndexOf('.') + 1
  if (!isHighS(token, dot)) return token
  const signature = Buffer.from(token.slice(dot), 'base64url')
  const s = BigInt(`0x${signature.subarray(32).toString('hex')}`)
  Buffer.from((P256_N - s).toString(16).padStart(64, '0'), 'hex').copy(signature, 32)
  return token.slice(0, dot) + signature.toString('base64url')
}
