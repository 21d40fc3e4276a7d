// Every error leaves as FastAPI's `{"detail": ...}` plus a stable `code`. 5xx bodies never carry
// the internal message; the log does (OWASP ASVS 7.4.1).
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { DomainError, ErrorCode, type FieldError, ValidationError } from '../../domain/errors.js'
import { Throttled } from '../../domain/throttle.js'
import { isDatabaseUnavailable } from '../../storage/database.js'

const STATUS: Record<string, number> = {
  [ErrorCode.validation]: 422,
  [ErrorCode.usernameTaken]: 409,
  [ErrorCode.invalidCredentials]: 401,
  [ErrorCode.notAuthenticated]: 401,
  [ErrorCode.invalidToken]: 401,
  [ErrorCode.unsupportedMediaType]: 415,
  [ErrorCode.invalidGrant]: 400,
  [ErrorCode.invalidRequest]: 400,
  [ErrorCode.unsupportedGrantType]: 400,
  [ErrorCode.wrongPassword]: 400,
  [ErrorCode.notFound]: 404,
  [ErrorCode.sessionNotFound]: 404,
  [ErrorCode.tooManyRequests]: 429,
}

// RFC 6749 §5.2: token endpoint errors also carry `error` and `error_description`.
const OAUTH_ERRORS = new Set<string>([
  ErrorCode.invalidGrant,
  ErrorCode.invalidRequest,
  ErrorCode.unsupportedGrantType,
])

// RFC 6750 §3: a 401 for a bearer-protected resource names the scheme.
const BEARER_CHALLENGE = new Set<string>([
  ErrorCode.invalidCredentials,
  ErrorCode.notAuthenticated,
  ErrorCode.invalidToken,
])

export function sendError(reply: FastifyReply, status: number, code: string, detail: string | FieldError[]) {
  if (BEARER_CHALLENGE.has(code)) reply.header('www-authenticate', 'Bearer')
  const body = OAUTH_ERRORS.has(code)
    ? { error: code, error_description: detail, detail, code }
    : { detail, code }
  return reply.code(status).type('application/json').send(body)
}

const LOCATION: Record<string, string> = {
  body: 'body',
  querystring: 'query',
  params: 'path',
  headers: 'header',
}

/** Ajv errors in pydantic's words, so FastAPI clients parse them unchanged. */
function toFieldErrors(error: FastifyError, body: unknown): FieldError[] {
  const where = LOCATION[error.validationContext ?? 'body'] ?? 'body'
  return (error.validation ?? []).map((v) => {
    const path = v.instancePath.split('/').filter(Boolean)
    const params = v.params as Record<string, unknown>
    switch (v.keyword) {
      case 'required':
        return {
          loc: [where, ...path, String(params.missingProperty)],
          msg: 'Field required',
          type: 'missing',
        }
      case 'type':
        if (path.length === 0 && (body === undefined || body === null)) {
          return { loc: [where], msg: 'Field required', type: 'missing' }
        }
        return params.type === 'object'
          ? { loc: [where, ...path], msg: 'Input should be a valid dictionary', type: 'dict_type' }
          : {
              loc: [where, ...path],
              msg: `Input should be a valid ${params.type}`,
              type: `${params.type}_type`,
            }
      case 'minLength':
        return {
          loc: [where, ...path],
          msg: `String should have at least ${params.limit} character${params.limit === 1 ? '' : 's'}`,
          type: 'string_too_short',
        }
      case 'maxLength':
        return {
          loc: [where, ...path],
          msg: `String should have at most ${params.limit} characters`,
          type: 'string_too_long',
        }
      case 'pattern':
        return {
          loc: [where, ...path],
          msg: `String should match pattern '${params.pattern}'`,
          type: 'string_pattern_mismatch',
        }
      default:
        return { loc: [where, ...path], msg: v.message ?? 'Invalid value', type: 'value_error' }
    }
  })
}

export function registerErrorHandlers(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
    // RFC 6585 §4: a 429 says when to come back.
    if (error instanceof Throttled) reply.header('retry-after', String(error.retryAfterSeconds))
    if (error instanceof DomainError) {
      return sendError(reply, STATUS[error.code] ?? 400, error.code, error.detail)
    }
    if (error instanceof ValidationError) return sendError(reply, 422, error.code, error.errors)
    if (error.validation)
      return sendError(reply, 422, ErrorCode.validation, toFieldErrors(error, request.body))
    switch (error.code) {
      case 'FST_ERR_CTP_INVALID_JSON_BODY':
        return sendError(reply, 422, ErrorCode.validation, [
          { loc: ['body'], msg: 'JSON decode error', type: 'json_invalid' },
        ])
      case 'FST_ERR_CTP_EMPTY_JSON_BODY':
        return sendError(reply, 422, ErrorCode.validation, [
          { loc: ['body'], msg: 'Field required', type: 'missing' },
        ])
      case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
        return sendError(reply, 415, ErrorCode.unsupportedMediaType, 'Unsupported Media Type')
      case 'FST_ERR_CTP_BODY_TOO_LARGE':
        return sendError(reply, 413, ErrorCode.payloadTooLarge, 'Request body is too large')
    }
    const status = error.statusCode ?? 500
    if (status >= 400 && status < 500) {
      // Fastify's own 4xx messages describe the request, never our internals.
      return sendError(reply, status, ErrorCode.badRequest, error.message)
    }
    if (isDatabaseUnavailable(error)) {
      // The database is down, cut off, or (SQLite) locked by another writer: a retryable 503, not
      // a 500; the pool reconnects by itself, the lock is released.
      request.log.warn({ err: error }, 'database unavailable')
      reply.header('retry-after', '5')
      return sendError(reply, 503, ErrorCode.unavailable, 'Service temporarily unavailable')
    }
    request.log.error({ err: error }, 'unhandled error')
    return sendError(reply, 500, ErrorCode.internal, 'Internal Server Error')
  })
}
