// Endpoints that take forms only (RFC 6749 §4.3.2 and §6, RFC 7009 §2.1, RFC 7662 §2.1): a JSON
// body is refused, not half-read.
import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import { DomainError, ErrorCode } from '../domain/errors.js'

const FORM = /^application\/x-www-form-urlencoded\b/i

/** preValidation: 415 for a body that is not a form. A callback hook: no promise per request. */
export function requireForm(request: FastifyRequest, _reply: FastifyReply, done: HookHandlerDoneFunction) {
  if (request.body !== undefined && !FORM.test(request.headers['content-type'] ?? '')) {
    done(
      new DomainError(ErrorCode.unsupportedMediaType, 'Send the form as application/x-www-form-urlencoded'),
    )
    return
  }
  done()
}

// Credentials fit in far less; a bigger body is refused before it is parsed or hashed.
export const AUTH_BODY_LIMIT = 16 * 1024

/** RFC 6749 §5.1 and RFC 7662 §2.2 (a token's claims): nothing here may be cached. */
export const noStore = (reply: FastifyReply) =>
  reply.header('cache-control', 'no-store').header('pragma', 'no-cache')
