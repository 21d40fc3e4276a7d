// GET /.well-known/jwks.json (RFC 7517) and the server metadata (RFC 8414, OpenID discovery), so
// other services verify AuthGate's tokens with its public keys and never hold a secret.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { PKCE_METHOD } from '../../domain/authorization-codes.js'
import { PROMPT_VALUES } from '../../domain/authorize.js'
import { CLIENT_AUTH_METHODS } from '../../domain/client-auth.js'
import type { AsymmetricAlgorithm, KeyRing } from '../../domain/keys.js'
import { JwksResponse, ServerMetadataResponse } from '../schemas/well-known.js'
import { routeFamily } from './family.js'

export interface WellKnownOptions {
  keys: KeyRing
  /** The deployment's issuer now (domain/deployment.ts: recorded in the database). */
  issuer: () => string
  /** What ID tokens can be signed with (domain/id-tokens.ts), RS256 first. */
  idTokenAlgorithms: () => AsymmetricAlgorithm[]
  /** PUBLIC_URL (or the listen address), without a trailing slash. */
  publicUrl: string
  /** JWKS_MAX_AGE_SECONDS. */
  jwksMaxAgeSeconds: number
}

// Short: `keys rotate` publishes the next key this long plus the reload interval before it signs
// (KEY_ACTIVATION_DELAY_SECONDS derives from it), so every cache has it by then; a retired key
// stays published until its tokens have expired, so a stale copy is harmless.
const METADATA_CACHE = 'public, max-age=300'

const routes: FastifyPluginAsyncTypebox<WellKnownOptions> = async (
  app,
  { keys, issuer, idTokenAlgorithms, publicUrl, jwksMaxAgeSeconds },
) => {
  const jwksCache = `public, max-age=${jwksMaxAgeSeconds}`
  const metadata: Omit<ServerMetadataResponse, 'issuer' | 'id_token_signing_alg_values_supported'> = {
    authorization_endpoint: `${publicUrl}/authorize`,
    jwks_uri: `${publicUrl}/.well-known/jwks.json`,
    token_endpoint: `${publicUrl}/auth/token`,
    userinfo_endpoint: `${publicUrl}/userinfo`,
    end_session_endpoint: `${publicUrl}/logout`,
    revocation_endpoint: `${publicUrl}/auth/revoke`,
    introspection_endpoint: `${publicUrl}/auth/introspect`,
    grant_types_supported: ['authorization_code', 'refresh_token', 'client_credentials', 'password'],
    // The code flow only (RFC 9700 §2.1.2: no implicit, no hybrid), answered in the query.
    response_types_supported: ['code'],
    response_modes_supported: ['query'],
    // RFC 7636 §4.3 and RFC 9700 §2.1.1: S256 only, required of every client.
    code_challenge_methods_supported: [PKCE_METHOD],
    // RFC 9207 §3: every authorization response, success or error, carries iss.
    authorization_response_iss_parameter_supported: true,
    // The scopes the consent page has words for; a client may be registered with others too
    // (RFC 8414 §2: a server may leave some out).
    scopes_supported: ['openid', 'profile', 'offline_access'],
    // What an ID token may carry (OpenID Connect Core §2; preferred_username with profile, §5.4).
    claims_supported: [
      'iss',
      'sub',
      'aud',
      'exp',
      'iat',
      'auth_time',
      'nonce',
      'sid',
      'amr',
      'preferred_username',
    ],
    // Initiating User Registration via OpenID Connect 1.0 §4.2; select_account shows the login page.
    prompt_values_supported: [...PROMPT_VALUES],
    // OIDC Core §9 and RFC 6749 §2.3.1; `none` for public clients (and the first-party flow).
    token_endpoint_auth_methods_supported: [...CLIENT_AUTH_METHODS],
    revocation_endpoint_auth_methods_supported: [...CLIENT_AUTH_METHODS],
    // RFC 7662 §2.1: only clients that authenticate; a public client is refused.
    introspection_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
    subject_types_supported: ['public'],
  }

  app.get(
    '/.well-known/jwks.json',
    {
      schema: {
        tags: ['keys'],
        summary: 'Public keys (JWKS)',
        description:
          'The public keys that verify tokens: the current ones and retired ones whose tokens may still ' +
          'be valid, for access tokens and, beside them, the RS256 key of ID tokens and client tokens. ' +
          'A token names its key with the `kid` header. With HS256 access tokens (a shared secret, never ' +
          'published) only the RS256 key is here.',
        response: { 200: JwksResponse },
      },
    },
    async (_request, reply) => {
      reply.header('cache-control', jwksCache)
      return { keys: keys.jwks() }
    },
  )

  for (const url of ['/.well-known/openid-configuration', '/.well-known/oauth-authorization-server']) {
    app.get(
      url,
      {
        schema: {
          tags: ['keys'],
          summary:
            url === '/.well-known/openid-configuration'
              ? 'Discovery (OpenID configuration)'
              : 'Authorization server metadata (RFC 8414)',
          description:
            'Issuer, endpoints, grant types, client authentication methods and signing algorithms, for ' +
            'libraries that configure themselves from it: the authorization endpoint (code flow with PKCE, ' +
            'S256), the token, userinfo, end-session (logout), revocation and introspection endpoints.',
          response: { 200: ServerMetadataResponse },
        },
      },
      async (_request, reply) => {
        reply.header('cache-control', METADATA_CACHE)
        return { issuer: issuer(), ...metadata, id_token_signing_alg_values_supported: idTokenAlgorithms() }
      },
    )
  }
}

export const wellKnownRoutes = routeFamily({ name: 'authgate-well-known-routes' }, routes)
