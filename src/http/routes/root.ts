// GET /: the seed's protected greeting. The hot path: one HMAC check, no database.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { ErrorCode } from '../../domain/errors.js'
import { errorAnswer, MessageResponse } from '../schemas/common.js'
import { routeFamily } from './family.js'

const routes: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/',
    {
      onRequest: app.authenticate,
      schema: {
        summary: 'User',
        description: 'Greets the user the bearer token belongs to.',
        security: [{ OAuth2PasswordBearer: [] }],
        response: {
          200: {
            ...MessageResponse,
            description: 'The greeting.',
            examples: [{ message: 'Hello, grace.hopper with ID: 1!' }],
          },
          401: errorAnswer(
            '`Not authenticated` without a token, `Could not validate credentials` for a bad one.',
            ErrorCode.notAuthenticated,
            ErrorCode.invalidToken,
          ),
        },
      },
    },
    async (request) => {
      const user = request.user as NonNullable<typeof request.user>
      return { message: `Hello, ${user.username} with ID: ${user.id}!` }
    },
  )
}

export const rootRoutes = routeFamily(
  { name: 'authgate-root-routes', needs: ['authgate-authenticate'] },
  routes,
)
