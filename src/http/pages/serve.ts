// What every route family that answers with AuthGate's pages sets up in its own context: cookies,
// the pages' headers, forms only, and errors as pages in words; and how a page is sent.
import fastifyCookie from '@fastify/cookie'
import type { FastifyError, FastifyInstance, FastifyReply } from 'fastify'
import { describeError } from '../plugins/errors.js'
import { usePageHeaders } from '../plugins/security.js'
import { type Html, htmlText } from './html.js'
import { errorPage, errorPageFor } from './views.js'

export function sendPage(reply: FastifyReply, status: number, page: Html) {
  return reply.code(status).type('text/html; charset=utf-8').send(htmlText(page))
}

/** Call first in a pages route family: it sets up the family's own (encapsulated) context. */
export async function servePages(
  app: FastifyInstance,
  isDatabaseUnavailable: (err: unknown) => boolean,
): Promise<void> {
  await app.register(fastifyCookie)
  usePageHeaders(app)
  // Forms only: a JSON or text body is a 415 page, never half-read.
  app.removeContentTypeParser(['application/json', 'text/plain'])
  app.setErrorHandler((error: FastifyError, request, reply) => {
    const answer = describeError(error, request, isDatabaseUnavailable)
    if (answer.retryAfter !== undefined) reply.header('retry-after', String(answer.retryAfter))
    return sendPage(reply, answer.status, errorPage(errorPageFor(answer.status, answer.retryAfter)))
  })
}
