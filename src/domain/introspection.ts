// Token introspection (RFC 7662, issue 12 item 5): whether an access token is active, and what it
// says, for a resource server that has authenticated as a confidential client. Answered from
// memory: the same verification and the same revocation view as GET / (http/plugins/authenticate.ts),
// so a revoked token is inactive here the moment it is refused there.
import type { ClientTokenService } from './client-tokens.js'
import type { RevocationView } from './revocations.js'
import type { TokenService } from './tokens.js'

/** RFC 7662 §2.2. Inactive says nothing more: not why, not whose (§2.2, §4). */
export type Introspection =
  | { active: false }
  | {
      active: true
      /** Client tokens only: user tokens of the password grant carry no scope. */
      scope?: string
      /** Client tokens only: the seed's password grant names no client. */
      client_id?: string
      /** The token's own `sub`: the client id, a user's subject (code exchange), or the seed's username. */
      sub: string
      /** User tokens only. */
      username?: string
      exp: number
      iat?: number
      iss?: string
      aud?: string
      jti?: string
      token_type: 'Bearer'
    }

export interface IntrospectionService {
  /** Never throws; anything not an active access token of ours is `{ active: false }`. */
  introspect(token: string): Introspection
}

const INACTIVE = Object.freeze({ active: false as const })
// Far longer than any token we issue; the body limit bounds what arrives at all.
const MAX_TOKEN_LENGTH = 8192

export function createIntrospection({
  tokens,
  clientTokens,
  revocations,
  audience,
}: {
  tokens: TokenService
  clientTokens: ClientTokenService
  revocations: RevocationView
  /** JWT_AUDIENCE, which every user token carries when set. */
  audience: string | undefined
}): IntrospectionService {
  return {
    introspect(token) {
      // RFC 7662 §2.2: a token that "does not exist on this server" is inactive, and says no more.
      if (token.length > MAX_TOKEN_LENGTH) return INACTIVE
      // Client tokens first: their `typ: at+jwt` header tells them apart before any signature is
      // checked, so a user token costs one map lookup here.
      const client = clientTokens.active(token)
      if (client) {
        return {
          active: true,
          ...(client.scope === '' ? {} : { scope: client.scope }),
          client_id: client.clientId,
          // RFC 9068 §2.2 / RFC 7662 §2.2: the client itself (client_credentials), or the user
          // a code exchange's token was issued for.
          sub: client.sub,
          exp: client.exp,
          iat: client.iat,
          iss: client.iss,
          aud: client.aud,
          jti: client.jti,
          token_type: 'Bearer',
        }
      }
      const user = tokens.verify(token)
      if (user === undefined || revocations.isRevoked(user)) return INACTIVE
      return {
        active: true,
        sub: user.username,
        username: user.username,
        exp: user.exp,
        ...(user.iat === undefined ? {} : { iat: user.iat }),
        ...(user.iss === undefined ? {} : { iss: user.iss }),
        ...(audience === undefined ? {} : { aud: audience }),
        ...(user.jti === undefined ? {} : { jti: user.jti }),
        token_type: 'Bearer',
      }
    },
  }
}
