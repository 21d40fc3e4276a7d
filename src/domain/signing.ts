// Signing a JWT with one of the key ring's key pairs, for the tokens other than the seed-profile
// access tokens (domain/tokens.ts): ID tokens and client access tokens.
import { createSigner } from 'fast-jwt'
import { toLowS } from '../lib/jws.js'
import type { ActiveKey } from './keys.js'

type Sign = (payload: Record<string, unknown>) => string

// A signer per key and `typ`; keys rotate rarely, so this only bounds what a long life collects.
const MAX_SIGNERS = 16

/**
 * A function that signs `payload` with `key`, naming it by kid, with the header's `typ` (RFC 7515
 * §4.1.9; `at+jwt` for RFC 9068 access tokens, RFC 8725 §3.11). The payload's own iat is kept.
 */
export function createKeySigner(): (
  key: ActiveKey,
  payload: Record<string, unknown>,
  typ?: string,
) => string {
  const signers = new Map<string, Sign>()
  return (key, payload, typ = 'JWT') => {
    const id = `${key.kid} ${typ}`
    let sign = signers.get(id)
    if (!sign) {
      if (signers.size >= MAX_SIGNERS) signers.clear()
      // The header option's typ replaces fast-jwt's default `JWT`.
      sign = createSigner({
        key: key.privateKey,
        algorithm: key.alg,
        kid: key.kid,
        header: { alg: key.alg, typ },
      }) as Sign
      signers.set(id, sign)
    }
    const token = sign(payload)
    // One token, one spelling (lib/jws.ts): OpenSSL's ECDSA gives a high s half the time.
    return key.alg === 'ES256' ? toLowS(token) : token
  }
}
