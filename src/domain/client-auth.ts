// Client authentication at the token, introspection and revocation endpoints (issue 12 items 2
// and 5): which method a request used, and whether it proves the client. Sources: RFC 6749 §2.3
// (client authentication) and §5.2 (invalid_client), OpenID Connect Core 1.0 §9
// (client_secret_basic, client_secret_post, none), RFC 7009 §2.1, RFC 7662 §2.1.
import type { AuditLog } from './audit.js'
import type { Client, ClientService } from './clients.js'
import { DomainError, ErrorCode, InvalidClient } from './errors.js'

export const CLIENT_AUTH_METHODS = ['client_secret_basic', 'client_secret_post', 'none'] as const
export type ClientAuthMethod = (typeof CLIENT_AUTH_METHODS)[number]

/** What a request carried that could authenticate a client; http/ reads it off the request. */
export interface PresentedClientCredentials {
  /**
   * `Authorization: Basic`, decoded (RFC 6749 §2.3.1: form-urlencoded id and secret); 'malformed'
   * when the header named Basic but did not decode to an id and a secret. Absent without one.
   */
  basic?: { clientId: string; secret: string } | 'malformed' | undefined
  /** The form's client_id and client_secret (client_secret_post, or none with client_id alone). */
  clientId?: string | undefined
  clientSecret?: string | undefined
}

export interface AuthenticatedClient {
  client: Client
  method: ClientAuthMethod
}

/** Where a request came from, for the audit trail. */
export interface RequestOrigin {
  ip: string
  userAgent: string | null
}

export interface ClientAuthenticator {
  /**
   * The client the request authenticates, or undefined when it carries no client credentials at
   * all (the caller decides whether that is allowed). Throws InvalidClient when they do not prove
   * the client, and invalid_request when they are contradictory.
   */
  authenticate(
    presented: PresentedClientCredentials,
    origin: RequestOrigin,
  ): Promise<AuthenticatedClient | undefined>
  /**
   * The same, for endpoints only confidential clients may use (client_credentials, introspection):
   * no credentials, or a public client's `none`, are invalid_client too.
   */
  authenticateConfidential(
    presented: PresentedClientCredentials,
    origin: RequestOrigin,
  ): Promise<AuthenticatedClient>
}

// What invalid_client says. One message for an unknown client, a wrong secret and a public client
// sending a secret: which of them it was would help only someone guessing (OWASP ASVS 5.0 6.3.8).
export const CLIENT_AUTH_FAILED = 'Client authentication failed'
// Ids longer than ours are cut in the audit trail: a Basic header can carry kilobytes.
const AUDIT_ID_MAX = 64

export function createClientAuthenticator({
  clients,
  audit,
}: {
  clients: Pick<ClientService, 'verifySecret' | 'show'>
  audit: AuditLog
}): ClientAuthenticator {
  function fail(
    origin: RequestOrigin,
    method: ClientAuthMethod | 'unknown',
    clientId: string | undefined,
    reason: string,
    basicChallenge: boolean,
  ): never {
    // A client can repeat this at will: bounded per address (domain/audit-summary.ts).
    audit.recordRepeated(
      {
        type: 'client.authentication_failed',
        outcome: 'failure',
        ip: origin.ip,
        userAgent: origin.userAgent,
        detail: { clientId: clientId?.slice(0, AUDIT_ID_MAX) ?? null, method, reason },
      },
      { key: origin.ip, keepFirst: 5 },
    )
    throw new InvalidClient(CLIENT_AUTH_FAILED, basicChallenge)
  }

  async function authenticate(
    { basic, clientId, clientSecret }: PresentedClientCredentials,
    origin: RequestOrigin,
  ): Promise<AuthenticatedClient | undefined> {
    if (basic !== undefined) {
      // RFC 6749 §2.3: "The client MUST NOT use more than one authentication method in each request."
      if (clientSecret !== undefined) {
        throw new DomainError(
          ErrorCode.invalidRequest,
          'Authenticate with one method: the Authorization header or client_secret in the body, not both',
        )
      }
      if (basic === 'malformed') return fail(origin, 'client_secret_basic', undefined, 'malformed', true)
      // RFC 6749 §3.2.1 lets a client name itself with client_id; it must be the same client.
      if (clientId !== undefined && clientId !== basic.clientId) {
        throw new DomainError(
          ErrorCode.invalidRequest,
          'client_id in the body names another client than the Authorization header',
        )
      }
      const client = await clients.verifySecret(basic.clientId, basic.secret)
      if (!client) return fail(origin, 'client_secret_basic', basic.clientId, 'wrong_secret', true)
      return { client, method: 'client_secret_basic' }
    }
    if (clientSecret !== undefined) {
      if (clientId === undefined) {
        throw new DomainError(ErrorCode.invalidRequest, 'client_secret needs client_id (RFC 6749 §2.3.1)')
      }
      // One hash and one constant-time compare whatever the client (domain/clients.ts).
      const client = await clients.verifySecret(clientId, clientSecret)
      if (!client) return fail(origin, 'client_secret_post', clientId, 'wrong_secret', false)
      return { client, method: 'client_secret_post' }
    }
    if (clientId === undefined) return undefined
    // `none` (OIDC Core §9): only a public client, which has no secret; a confidential client
    // must prove itself (RFC 6749 §3.2.1), and an unknown one gets the same answer.
    const client = await clients.show(clientId)
    if (!client?.public) return fail(origin, 'none', clientId, client ? 'secret_required' : 'unknown', false)
    return { client, method: 'none' }
  }

  return {
    authenticate,
    async authenticateConfidential(presented, origin) {
      const found = await authenticate(presented, origin)
      // RFC 6749 §4.4 and RFC 7662 §2.1: these endpoints are for clients that can authenticate.
      if (!found) return fail(origin, 'unknown', undefined, 'no_credentials', true)
      if (found.method === 'none') return fail(origin, 'none', found.client.clientId, 'public_client', false)
      return found
    },
  }
}
