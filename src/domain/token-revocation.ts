// RFC 7009 token revocation (issue 12 item 5): who may revoke what. Tokens of the first-party
// flow (the password grant's, which name no client) keep the unauthenticated path they always had
// (domain/auth.ts revoke). A client's tokens are revoked only by that client, authenticated (a
// public client by naming itself, `none`): its client_credentials tokens one by one, and a user's
// tokens from a code exchange (access or refresh) by ending their session.

import type { AuditLog } from './audit.js'
import type { AuthService, Client as RequestClient } from './auth.js'
import {
  CLIENT_AUTH_FAILED,
  type ClientAuthenticator,
  type PresentedClientCredentials,
} from './client-auth.js'
import type { ClientTokenService } from './client-tokens.js'
import { InvalidClient } from './errors.js'
import type { SessionService } from './sessions.js'

export interface TokenRevocation {
  /**
   * Revokes `token` if the request may: answers nothing either way (RFC 7009 §2.2: an unknown
   * token, or one the client may not revoke, is not an error). Throws InvalidClient when client
   * credentials fail, or when a client's token comes without them.
   */
  revoke(token: string, presented: PresentedClientCredentials, from: RequestClient): Promise<void>
}

export function createTokenRevocation({
  auth,
  clientAuth,
  clientTokens,
  sessions,
  audit,
}: {
  auth: Pick<AuthService, 'revoke'>
  clientAuth: ClientAuthenticator
  clientTokens: ClientTokenService
  sessions: Pick<SessionService, 'endSession'>
  audit: AuditLog
}): TokenRevocation {
  return {
    async revoke(token, presented, from) {
      const origin = { ip: from.ip, userAgent: from.userAgent }
      // RFC 7009 §2.1: client credentials, when sent, are checked first, whatever the token.
      const caller = await clientAuth.authenticate(presented, origin)
      // Signature and time only: a token revoked already is revoked again at no cost.
      const clientToken = clientTokens.verify(token)
      if (clientToken) {
        // A client's token: RFC 7009 §2.1 has its client authenticate (or, public, name itself).
        if (!caller) throw new InvalidClient(CLIENT_AUTH_FAILED, true)
        // §2.1: "verifies whether the token was issued to the client making the revocation
        // request"; §2.2: if not, the answer is the same 200, and nothing is revoked.
        if (caller.client.clientId !== clientToken.clientId) return
        if (clientToken.sid === undefined) {
          await clientTokens.revoke(clientToken, origin)
          return
        }
        // A user's: RFC 7009 §2.1 lets revoking an access token end its refresh token too; the
        // whole session ends, on every instance.
        const ended = await sessions.endSession(clientToken.sid, 'revoked')
        if (ended && ended.count > 0) {
          audit.record({
            type: 'session.revoked',
            outcome: 'success',
            userId: ended.userId,
            ...origin,
            detail: { sessionId: clientToken.sid, clientId: clientToken.clientId },
          })
        }
        return
      }
      // A refresh token (its client's only), or a first-party access token (no client's).
      await auth.revoke(token, from, caller?.client.clientId ?? null)
    },
  }
}
