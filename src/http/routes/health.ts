// Liveness and readiness probes.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { ErrorCode } from '../../domain/errors.js'
import { sendError } from '../plugins/errors.js'
import { errorAnswer } from '../schemas/common.js'
import { routeFamily } from './family.js'

const Status = Type.Object({ status: Type.String() })

const routes: FastifyPluginAsyncTypebox<{ ready: () => Promise<boolean> }> = async (app, { ready }) => {
  app.get(
    '/healthz',
    { schema: { tags: ['health'], summary: 'Liveness: the process answers.', response: { 200: Status } } },
    async () => ({ status: 'ok' }),
  )
  app.get(
    '/readyz',
    {
      schema: {
        tags: ['health'],
        summary: 'Readiness: the database answers.',
        response: {
          200: Status,
          503: errorAnswer('The database does not answer.', [ErrorCode.unavailable, 'Database unavailable']),
        },
      },
    },
    async (_request, reply) => {
      if (await ready()) return { status: 'ready' }
      return sendError(reply, 503, ErrorCode.unavailable, 'Database unavailable')
    },
  )
}

export const healthRoutes = routeFamily({ name: 'authgate-health-routes' }, routes)
