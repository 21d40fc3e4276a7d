// RFC 7009 token revocation (issue 12 item 5): who may revoke what. Tokens of the first-party
// flow (the password grant's, which name no client) keep the unauthenticated path they always had
// (domain/auth.ts revoke). A client's tokens are revoked only by that client, authenticated.
import type { AuthService, Client as RequestClient } from './auth.js'
import {
  CLIENT_AUTH_FAILED,
  type ClientAuthenticator,
  type PresentedClientCredentials,
} from './client-auth.js'
import type { ClientTokenService } from './client-tokens.js'
import { InvalidClient } from './errors.js'

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
}: {
  auth: Pick<AuthService, 'revoke'>
  clientAuth: ClientAuthenticator
  clientTokens: ClientTokenService
}): TokenRevocation {
  return {
    async revoke(token, presented, from) {
      const origin = { ip: from.ip, userAgent: from.userAgent }
      // RFC 7009 §2.1: client credentials, when sent, are checked first, whatever the token.
      const caller = await clientAuth.authenticate(presented, origin)
      // Signature and time only: a token revoked already is revoked again at no cost.
      const clientToken = clientTokens.verify(token)
      if (clientToken) {
        // Only confidential clients get these tokens (client_credentials), and RFC 7009 §2.1 has
        // them authenticate to revoke.
        if (!caller) throw new InvalidClient(CLIENT_AUTH_FAILED, true)
        // §2.1: "verifies whether the token was issued to the client making the revocation
        // request"; §2.2: if not, the answer is the same 200, and nothing is revoked.
        if (caller.client.clientId !== clientToken.clientId) return
        await clientTokens.revoke(clientToken, origin)
        return
      }
      // Tokens that name no client belong to the first-party flow, not to an authenticated client.
      if (caller) return
      await auth.revoke(token, from)
    },
  }
}
