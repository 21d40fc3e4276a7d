// ID tokens (OpenID Connect Core 1.0 §2, issue 12 item 4): what the user's authentication was, for
// the client it was for, signed with the RS256 key (OpenID Connect Discovery §3 requires RS256 be
// available) or, when a client asks for it (id_token_signed_response_alg), the deployment's own
// key-pair algorithm. Minted by the token endpoint's code exchange; verified through the JWKS.
import type { Clock } from '../lib/clock.js'
import type { AsymmetricAlgorithm, KeyRing } from './keys.js'
import { createKeySigner } from './signing.js'

export interface IdTokenInput {
  /** The deployment's issuer now (domain/deployment.ts). */
  issuer: string
  /** The user's subject (users.subject): stable and never reassigned; never the username. */
  sub: string
  /** The client id: OIDC Core §2, `aud` "MUST contain the OAuth 2.0 client_id". */
  aud: string
  /** The authorization request's nonce, when it had one (OIDC Core §3.1.2.1, §3.1.3.7 item 11). */
  nonce?: string | null | undefined
  /** When the user authenticated, epoch ms (becomes `auth_time`, in seconds). */
  authTime: number
  /** The browser session the authentication belongs to (for logout). */
  sid?: string | null | undefined
  /** How the user authenticated (RFC 8176 values: `pwd`...). */
  amr: readonly string[]
  /** Claims the granted scopes allow (e.g. preferred_username with `profile`); never one of ours. */
  extra?: Readonly<Record<string, string | number | boolean>> | undefined
  /** The client's id_token_signed_response_alg; RS256 when it has none (OIDC Registration §2). */
  alg?: AsymmetricAlgorithm | undefined
}

export interface IdTokens {
  /**
   * What ID tokens can be signed with here, RS256 first: RS256, and the deployment's own
   * algorithm when it is another key-pair one (id_token_signing_alg_values_supported).
   */
  algorithms(): AsymmetricAlgorithm[]
  /** A signed ID token (a JWS); throws when `alg` is not one of algorithms(). */
  mintIdToken(input: IdTokenInput): string
}

/**
 * Claims the token sets itself. `extra` may not carry them: a scope's claim must not replace the
 * issuer, the audience or the times. `id` too: with it an ID token would have the shape of a
 * seed-profile access token (domain/tokens.ts requires `id`), and tokens of one kind must never
 * pass for another (RFC 8725 §2.8, §3.11).
 */
const RESERVED = new Set([
  'iss',
  'sub',
  'aud',
  'exp',
  'iat',
  'nbf',
  'jti',
  'auth_time',
  'nonce',
  'sid',
  'amr',
  'acr',
  'azp',
  'at_hash',
  'c_hash',
  'id',
])

export function createIdTokens({
  keys,
  clock,
  expiresInSeconds,
}: {
  keys: KeyRing
  clock: Clock
  /**
   * How long an ID token is valid. At most the access tokens' lifetime: a retired key keeps
   * verifying (and stays in the JWKS) that long after it stops signing, and no longer.
   */
  expiresInSeconds: number
}): IdTokens {
  const sign = createKeySigner()

  function keyFor(alg: AsymmetricAlgorithm) {
    // RS256 always from the RS256 chain, whatever the deployment signs access tokens with.
    const snap = alg === 'RS256' ? keys.snapshotOf('rs256') : keys.snapshot()
    if (!snap || snap.current.alg !== alg) throw new Error(`ID tokens cannot be signed with ${alg} here`)
    return snap.current
  }

  return {
    algorithms() {
      const own = keys.snapshot()?.current.alg
      return own === undefined || own === 'RS256' ? ['RS256'] : ['RS256', own]
    },
    mintIdToken({ issuer, sub, aud, nonce, authTime, sid, amr, extra = {}, alg = 'RS256' }) {
      const clash = Object.keys(extra).find((claim) => RESERVED.has(claim))
      if (clash !== undefined) throw new Error(`an ID token's extra claims cannot set ${clash}`)
      const key = keyFor(alg)
      // iat and exp from the injected clock (fast-jwt keeps a payload's own iat).
      const iat = Math.floor(clock.now() / 1000)
      return sign(key, {
        ...extra,
        iss: issuer,
        sub,
        aud,
        exp: iat + expiresInSeconds,
        iat,
        auth_time: Math.floor(authTime / 1000),
        ...(nonce ? { nonce } : {}),
        ...(sid ? { sid } : {}),
        amr: [...amr],
      })
    },
  }
}
