// GET /.well-known/jwks.json (RFC 7517) and the server metadata (RFC 8414, OpenID discovery), so
// other services verify AuthGate's tokens with its public keys and never hold a secret.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { KeyRing } from '../../domain/keys.js'
import { JwksResponse, ServerMetadataResponse } from '../schemas/well-known.js'
import { routeFamily } from './family.js'

export interface WellKnownOptions {
  keys: KeyRing
  /** The deployment's issuer now (domain/deployment.ts: recorded in the database). */
  issuer: () => string
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
  { keys, issuer, publicUrl, jwksMaxAgeSeconds },
) => {
  const jwksCache = `public, max-age=${jwksMaxAgeSeconds}`
  const metadata: Omit<ServerMetadataResponse, 'issuer'> = {
    jwks_uri: `${publicUrl}/.well-known/jwks.json`,
    token_endpoint: `${publicUrl}/auth/token`,
    revocation_endpoint: `${publicUrl}/auth/revoke`,
    grant_types_supported: ['password', 'refresh_token'],
    // RFC 8414 §2 requires the member; there is no authorization endpoint, so it lists nothing.
    response_types_supported: [],
    // Public clients only: the token and revocation endpoints take no client authentication.
    token_endpoint_auth_methods_supported: ['none'],
    revocation_endpoint_auth_methods_supported: ['none'],
    id_token_signing_alg_values_supported: [keys.algorithm],
    subject_types_supported: ['public'],
  }

  app.get(
    '/.well-known/jwks.json',
    {
      schema: {
        tags: ['keys'],
        summary: 'Public keys (JWKS)',
        description:
          'The public keys that verify access tokens: the current one and retired ones whose tokens may ' +
          'still be valid. A token names its key with the `kid` header. Empty when tokens are HS256 ' +
          '(a shared secret, never published).',
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
            'Issuer, endpoints, grant types and the token signing algorithm, for libraries that configure ' +
            'themselves from it. AuthGate issues access tokens only: no ID tokens, no authorization endpoint.',
          response: { 200: ServerMetadataResponse },
        },
      },
      async (_request, reply) => {
        reply.header('cache-control', METADATA_CACHE)
        return { issuer: issuer(), ...metadata }
      },
    )
  }
}

export const wellKnownRoutes = routeFamily({ name: 'authgate-well-known-routes' }, routes)
