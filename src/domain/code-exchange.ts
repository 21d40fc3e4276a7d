// The token endpoint's authorization_code grant (issue 12 items 2 and 4): a client trades the code
// the authorization endpoint sent through the browser for tokens. Sources: RFC 6749 §4.1.3-4.1.4
// (the request and the checks), §5.1-5.2 (the answer), RFC 7636 §4.5-4.6 (the verifier), OpenID
// Connect Core 1.0 §3.1.3 (the token endpoint, its ID token) and §11 (offline_access), RFC 9068
// (the access token), RFC 9700 §2.1.1 and §4.5 (PKCE against code injection).
//
// Order: the client authenticates first (RFC 6749 §3.2.1, §4.1.3); then the code is redeemed,
// which spends it whatever comes of it (domain/authorization-codes.ts); then the session starts
// under everything the code was bound to, and is recorded against the code before any token
// leaves, so that a replay of the code, even one racing this exchange, revokes what it issued.
import type { AuditLog } from './audit.js'
import {
  type AuthorizationCodeService,
  type CodeRedemption,
  InvalidAuthorizationCode,
} from './authorization-codes.js'
import {
  CLIENT_AUTH_FAILED,
  type ClientAuthenticator,
  type PresentedClientCredentials,
  type RequestOrigin,
} from './client-auth.js'
import type { Client } from './clients.js'
import type { Issuers } from './deployment.js'
import { DomainError, ErrorCode, InvalidClient } from './errors.js'
import type { IdTokens } from './id-tokens.js'
import type { SessionService } from './sessions.js'
import type { UsersRepository } from './users.js'

export interface CodeExchangeRequest {
  presented: PresentedClientCredentials
  code: string | undefined
  redirectUri: string | undefined
  codeVerifier: string | undefined
  from: RequestOrigin
}

/** RFC 6749 §5.1 and OpenID Connect Core §3.1.3.3. */
export interface CodeExchangeResult {
  accessToken: string
  expiresIn: number
  /** offline_access, or a first-party client, registered for the refresh_token grant. */
  refreshToken?: string
  /** With the openid scope. */
  idToken?: string
  scope: string
}

export interface CodeExchange {
  exchange(request: CodeExchangeRequest): Promise<CodeExchangeResult>
}

export interface CodeExchangeDeps {
  clientAuth: ClientAuthenticator
  codes: AuthorizationCodeService
  users: Pick<UsersRepository, 'findById'>
  sessions: Pick<SessionService, 'start'>
  idTokens: IdTokens
  issuers: Issuers
  audit: AuditLog
}

/**
 * Whether the client gets a refresh token. OpenID Connect Core §11: offline_access asks for one;
 * a first-party client (the deployment's own app, which skips consent) gets one as the password
 * grant always has. Either way only a client registered for the refresh_token grant (RFC 6749 §6).
 */
export function getsRefreshToken(
  client: Pick<Client, 'grantTypes' | 'firstParty'>,
  scopes: string[],
): boolean {
  return (
    client.grantTypes.includes('refresh_token') && (client.firstParty || scopes.includes('offline_access'))
  )
}

const required = (field: string) =>
  new DomainError(ErrorCode.invalidRequest, `${field} is required for grant_type=authorization_code`)

export function createCodeExchange(deps: CodeExchangeDeps): CodeExchange {
  const { clientAuth, codes, users, sessions, idTokens, issuers, audit } = deps
  return {
    async exchange({ presented, code, redirectUri, codeVerifier, from }) {
      // RFC 6749 §4.1.3: a confidential client authenticates; a public one names itself with
      // client_id (`none`), its PKCE verifier being its proof. Neither: invalid_client.
      const caller = await clientAuth.authenticate(presented, from)
      if (!caller) throw new InvalidClient(CLIENT_AUTH_FAILED, true)
      const { client } = caller
      if (!client.grantTypes.includes('authorization_code')) {
        throw new DomainError(
          ErrorCode.unauthorizedClient,
          'This client is not registered for grant_type=authorization_code',
        )
      }
      // RFC 6749 §4.1.3: code and redirect_uri (every request here carried one: OIDC Core
      // §3.1.2.1); RFC 7636 §4.5: code_verifier, since every code has a challenge.
      if (code === undefined || code === '') throw required('code')
      if (redirectUri === undefined) throw required('redirect_uri')
      if (codeVerifier === undefined) throw required('code_verifier')
      const redemption: CodeRedemption = {
        code,
        clientId: client.clientId,
        redirectUri,
        codeVerifier,
        from,
      }
      const redeemed = await codes.redeem(redemption)
      const user = await users.findById(redeemed.userId)
      // The user went since the code was issued: the code is void with them.
      if (!user) throw new InvalidAuthorizationCode()
      const scopes = redeemed.scope === '' ? [] : redeemed.scope.split(' ')
      const started = await sessions.start(
        { id: user.id, username: user.username, epoch: user.authgate_credential_epoch },
        { ip: from.ip, userAgent: from.userAgent },
        {
          clientId: client.clientId,
          browserSessionId: redeemed.browserSessionId,
          scope: redeemed.scope,
          authTime: redeemed.authTime,
          amr: redeemed.amr,
          subject: user.subject,
          refresh: getsRefreshToken(client, scopes),
        },
      )
      // Refused: the password changed, the browser session ended or the client was deleted since
      // the user authenticated. What the code stood for is gone, so is the code.
      if (!started) throw new InvalidAuthorizationCode()
      // Throws (and revokes the session) if a replay of the code came first.
      await codes.recordIssuedSession(redeemed.handle, started.sessionId)
      const idToken = scopes.includes('openid')
        ? idTokens.mintIdToken({
            issuer: issuers.current(),
            sub: user.subject,
            aud: client.clientId,
            nonce: redeemed.nonce,
            authTime: redeemed.authTime,
            // The browser session: what RP-initiated logout ends (OIDC Front-Channel Logout §3 sid).
            sid: redeemed.browserSessionId,
            amr: redeemed.amr,
            // OIDC Core §5.4: profile's claims; the only one AuthGate has is the username.
            extra: scopes.includes('profile') ? { preferred_username: user.username } : undefined,
          })
        : undefined
      audit.record({
        type: 'authorization_code.exchanged',
        outcome: 'success',
        userId: user.id,
        username: user.username,
        ip: from.ip,
        userAgent: from.userAgent,
        detail: { clientId: client.clientId, sessionId: started.sessionId, scope: redeemed.scope },
      })
      return {
        accessToken: started.accessToken,
        expiresIn: started.expiresIn,
        ...(started.refreshToken === undefined ? {} : { refreshToken: started.refreshToken }),
        ...(idToken === undefined ? {} : { idToken }),
        scope: redeemed.scope,
      }
    },
  }
}
