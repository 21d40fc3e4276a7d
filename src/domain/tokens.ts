// Access tokens: HS256 JWTs with the seed's claims (sub, id, exp) plus iat and jti.
import { createSigner, createVerifier } from 'fast-jwt'
import type { Clock } from '../lib/clock.js'
import { randomId } from '../lib/random.js'

export interface TokenSubject {
  id: number
  username: string
  /** The session the token belongs to; absent in tokens issued by the seed app. */
  sid?: string | undefined
}

/** A verified token: its subject, plus what revocation checks need. */
export interface VerifiedToken extends TokenSubject {
  /** Issued-at, epoch seconds; absent in tokens issued by the seed app. */
  iat?: number | undefined
}

export interface IssuedToken {
  accessToken: string
  /** Lifetime in seconds (RFC 6749 §5.1 expires_in). */
  expiresIn: number
}

export interface TokenService {
  issue(subject: TokenSubject): IssuedToken
  /** The subject of a valid token, or undefined for anything else. Never throws. */
  verify(token: string): VerifiedToken | undefined
}

export interface TokenOptions {
  /** The HMAC key; the seed uses its SECRET_KEY string's UTF-8 bytes, and so do we. */
  secret: string
  expiresInMinutes: number
  clock: Clock
}

export function createTokenService({ secret, expiresInMinutes, clock }: TokenOptions): TokenService {
  const expiresIn = expiresInMinutes * 60
  // No `aud` or `iss` by default: the seed's verifier, python-jose's
  // jwt.decode(token, SECRET_KEY, algorithms=["HS256"]), must accept our tokens.
  // iat and exp come from the injected clock: fast-jwt keeps a payload's own iat.
  const sign = createSigner({ key: secret, algorithm: 'HS256' })
  // RFC 8725 §3.1 and §2.1: the algorithm comes from this allow-list, never from the token, so
  // `none`, `None`, `NONE` and a switch to RS/ES (key confusion) fail. The key is fixed here, so
  // `jwk`, `jku`, `x5u` and `kid` headers are ignored and no URL from a token is ever fetched.
  // RFC 7515 §4.1.11: fast-jwt rejects a `crit` header naming an extension we do not understand.
  // `exp` is required and must be numeric; `nbf` is honoured when present.
  const verifier = createVerifier({
    key: secret,
    algorithms: ['HS256'],
    requiredClaims: ['exp'],
    cache: false,
  })

  return {
    issue({ id, username, sid }) {
      const iat = Math.floor(clock.now() / 1000)
      const claims = { sub: username, id, ...(sid === undefined ? {} : { sid }), iat, exp: iat + expiresIn }
      const accessToken = sign({ ...claims, jti: randomId() })
      return { accessToken, expiresIn }
    },
    verify(token) {
      let payload: Record<string, unknown>
      try {
        payload = verifier(token)
      } catch {
        return undefined
      }
      // The seed's get_current_user requires both claims; we also require their types.
      const { sub, id, sid, iat } = payload
      if (typeof sub !== 'string' || !Number.isSafeInteger(id)) return undefined
      if (sid !== undefined && typeof sid !== 'string') return undefined
      return { id: id as number, username: sub, sid, iat: typeof iat === 'number' ? iat : undefined }
    },
  }
}
