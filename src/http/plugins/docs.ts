// OpenAPI 3.1 generated from the route schemas, at /openapi.json (and /docs/json), and Swagger UI at
// /docs.
// Every docs asset is served from node_modules: no CDN.
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { OAuthErrorResponse, TokenUnauthorizedResponse } from '../schemas/auth.js'
import { ErrorResponse, ValidationErrorResponse } from '../schemas/common.js'
import { INITIALIZER_JS, SPEC_URL, THEME_CSS } from './docs-page.js'

const DOCS_PATH = '/docs'

// Swagger UI resolves the relative tokenUrl "auth/token" against the page's URL (the spec has no
// `servers`), exactly as FastAPI's does: from /docs it posts to /auth/token, but from /docs/ to
// /docs/auth/token, a 404, so the Authorize button would fail. The router's ignoreTrailingSlash serves
// /docs/ too; send it to /docs instead, with the 307 FastAPI's redirect_slashes answers there.
// The plugin's swagger-initializer.js is answered with ours (docs-page.ts): it finds the spec at
// /openapi.json wherever the page is, names the top bar AuthGate and explains a failed Authorize.
async function docsHooks(request: FastifyRequest, reply: FastifyReply) {
  const query = request.url.indexOf('?')
  const path = query === -1 ? request.url : request.url.slice(0, query)
  if (path === `${DOCS_PATH}/`) {
    return reply.redirect(`${DOCS_PATH}${query === -1 ? '' : request.url.slice(query)}`, 307)
  }
  if (path === `${DOCS_PATH}/static/swagger-initializer.js`) {
    return reply.type('application/javascript; charset=utf-8').send(INITIALIZER_JS)
  }
}

async function registerDocs(app: FastifyInstance, version: string): Promise<void> {
  app.addSchema(ErrorResponse)
  app.addSchema(ValidationErrorResponse)
  app.addSchema(OAuthErrorResponse)
  app.addSchema(TokenUnauthorizedResponse)
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'AuthGate',
        version,
        description:
          'A drop-in replacement for the FastAPI JWT tutorial service. Sign up with `POST /auth/`, ' +
          'log in with `POST /auth/token` (or the Authorize button), then call `GET /`.',
      },
      components: {
        securitySchemes: {
          // The seed's OAuth2PasswordBearer(tokenUrl="auth/token"), relative as FastAPI writes it.
          OAuth2PasswordBearer: {
            type: 'oauth2',
            flows: { password: { tokenUrl: 'auth/token', scopes: {} } },
          },
          // A client's access token from a code exchange (RFC 9068), for GET /userinfo.
          ClientAccessToken: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' },
        },
      },
    },
    refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => String(json.$id ?? `def-${i}`) },
  })
  await app.register(swaggerUi, {
    routePrefix: DOCS_PATH,
    uiHooks: { onRequest: docsHooks },
    theme: {
      title: 'AuthGate API docs',
      css: [{ filename: 'authgate.css', content: THEME_CSS }],
    },
    // The docs pages get a CSP of their own that lets Swagger UI's scripts and styles load, from
    // this server only: the plugin's default minus the outside hosts it allows (https:, the
    // swagger.io validator) and minus upgrade-insecure-requests, which breaks plain-http serving.
    staticCSP: true,
    transformStaticCSP: (header) =>
      header.replace(/\s*upgrade-insecure-requests;?/, '').replace(/ (https:|validator\.swagger\.io)/g, ''),
  })
  // The spec, where Swagger UI's top bar shows it; /docs/json (the plugin's own) serves it too.
  app.get(SPEC_URL, { schema: { hide: true } }, async () => app.swagger())
}

/**
 * The shared error schemas the routes refer to, and the OpenAPI collector that sees only the routes
 * registered after it: every route family names 'authgate-docs'. Its own pages get the security
 * headers and the 405 answers, so it comes after 'authgate-security'.
 */
export const docsPlugin = fp<{ version: string }>(async (app, { version }) => registerDocs(app, version), {
  name: 'authgate-docs',
  dependencies: ['authgate-errors', 'authgate-security'],
})
