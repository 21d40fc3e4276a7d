// OpenAPI 3.1 generated from the route schemas, at /openapi.json, and Swagger UI at /docs.
// Every docs asset is served from node_modules: no CDN.
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import type { FastifyInstance } from 'fastify'
import { ErrorResponse, ValidationErrorResponse } from '../schemas/common.js'

export async function registerDocs(app: FastifyInstance, version: string): Promise<void> {
  app.addSchema(ErrorResponse)
  app.addSchema(ValidationErrorResponse)
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
        },
      },
    },
    refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => String(json.$id ?? `def-${i}`) },
  })
  await app.register(swaggerUi, { routePrefix: '/docs', uiConfig: { persistAuthorization: false } })
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger())
}
