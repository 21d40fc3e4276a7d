// Every error leaves as FastAPI's `{"detail": ...}` plus a stable `code`, including those Node and
// Fastify answer themselves. 5xx bodies never carry the internal message; the log does (OWASP ASVS
// 7.4.1); no error body echoes the request (a reflected path or header is an injection vector).
import { STATUS_CODES } from 'node:http'
import type { Duplex } from 'node:stream'
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import {
  DomainError,
  ErrorCode,
  type FieldError,
  InvalidClient,
  ValidationError,
} from '../../domain/errors.js'
import { Throttled } from '../../domain/throttle.js'

/** The status each error code answers with; every code has one, or this does not type-check. */
export const ERROR_STATUS = {
  [ErrorCode.validation]: 422,
  [ErrorCode.usernameTaken]: 409,
  [ErrorCode.invalidCredentials]: 401,
  [ErrorCode.notAuthenticated]: 401,
  [ErrorCode.invalidToken]: 401,
  [ErrorCode.unsupportedMediaType]: 415,
  [ErrorCode.invalidGrant]: 400,
  [ErrorCode.invalidRequest]: 400,
  [ErrorCode.unsupportedGrantType]: 400,
  [ErrorCode.invalidClient]: 401,
  [ErrorCode.unauthorizedClient]: 400,
  [ErrorCode.invalidScope]: 400,
  [ErrorCode.insufficientScope]: 403,
  [ErrorCode.wrongPassword]: 400,
  [ErrorCode.mfaRequired]: 401,
  [ErrorCode.invalidOtp]: 400,
  [ErrorCode.mfaAlreadyEnabled]: 409,
  [ErrorCode.mfaNotEnrolled]: 409,
  [ErrorCode.mfaUnavailable]: 503,
  [ErrorCode.invalidPasskey]: 400,
  [ErrorCode.passkeyExists]: 409,
  [ErrorCode.webauthnUnavailable]: 503,
  [ErrorCode.invalidLink]: 400,
  [ErrorCode.emailTaken]: 409,
  [ErrorCode.mailUnavailable]: 503,
  [ErrorCode.badRequest]: 400,
  [ErrorCode.notFound]: 404,
  [ErrorCode.sessionNotFound]: 404,
  [ErrorCode.methodNotAllowed]: 405,
  [ErrorCode.requestTimeout]: 408,
  [ErrorCode.payloadTooLarge]: 413,
  [ErrorCode.uriTooLong]: 414,
  [ErrorCode.tooManyRequests]: 429,
  [ErrorCode.headersTooLarge]: 431,
  [ErrorCode.internal]: 500,
  [ErrorCode.unavailable]: 503,
} as const satisfies Record<ErrorCode, number>

// RFC 6749 §5.2: token endpoint errors also carry `error` and `error_description`.
const OAUTH_ERRORS = new Set<string>([
  ErrorCode.invalidGrant,
  ErrorCode.invalidRequest,
  ErrorCode.unsupportedGrantType,
  ErrorCode.invalidClient,
  ErrorCode.unauthorizedClient,
  ErrorCode.invalidScope,
])

// RFC 6749 §5.2 (and RFC 7617 §2, which requires the realm): the scheme a client authenticates with.
export const BASIC_CHALLENGE = 'Basic realm="authgate", charset="UTF-8"'

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

// ---- before a request exists: Node's parser and Fastify's router ----------------------------

/** A whole HTTP/1.1 answer for a raw socket, built once at load: no work per bad request. */
function rawAnswer(status: number, code: ErrorCode, detail: string): string {
  const body = JSON.stringify({ detail, code })
  return (
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\n` +
    'Content-Type: application/json\r\n' +
    `Content-Length: ${Buffer.byteLength(body)}\r\n` +
    'X-Content-Type-Options: nosniff\r\n' +
    'Connection: close\r\n\r\n' +
    body
  )
}

// The same statuses Node's own handler picks (lib/_http_server.js socketOnError), in our shape.
const CLIENT_ERROR_ANSWERS: Record<string, string> = {
  HPE_HEADER_OVERFLOW: rawAnswer(431, ErrorCode.headersTooLarge, 'Request header fields too large'),
  HPE_CHUNK_EXTENSIONS_OVERFLOW: rawAnswer(413, ErrorCode.payloadTooLarge, 'Request body is too large'),
  ERR_HTTP_REQUEST_TIMEOUT: rawAnswer(408, ErrorCode.requestTimeout, 'Request timeout'),
}
const MALFORMED_ANSWER = rawAnswer(400, ErrorCode.badRequest, 'Malformed HTTP request')

/**
 * The server's `clientError` handler (Fastify's clientErrorHandler): the request could not be
 * parsed (oversized headers, a garbage request line, a bad chunk) or did not arrive in time
 * (headersTimeout, requestTimeout). Answers and closes the connection, as Node would.
 */
export function answerClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
  // A reset or already closed connection: there is nobody left to answer (Node's clientError docs).
  if (err.code === 'ECONNRESET' || socket.destroyed) return
  // Like Node: never write into a response already under way on this socket; that would corrupt it.
  const inFlight = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } })._httpMessage
  if (socket.writable && !inFlight?.headersSent) {
    socket.write((err.code && CLIENT_ERROR_ANSWERS[err.code]) || MALFORMED_ANSWER)
  }
  socket.destroy()
}

/** Fastify's frameworkErrors: what its router meets before any route or hook runs. */
export function answerFrameworkError(error: FastifyError, request: FastifyRequest, reply: FastifyReply) {
  switch (error.code) {
    // Fastify's own bodies quote the path back; ours name the fault only.
    case 'FST_ERR_BAD_URL':
      return sendError(reply, 400, ErrorCode.badRequest, 'The URL is not validly percent-encoded')
    case 'FST_ERR_MAX_PARAM_LENGTH':
      return sendError(reply, 414, ErrorCode.uriTooLong, 'A path segment is too long')
  }
  request.log.error({ err: error }, 'router error')
  return sendError(reply, 500, ErrorCode.internal, 'Internal Server Error')
}

// ---- errors thrown while handling a request ------------------------------------------------

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

export interface ErrorHandlerOptions {
  /**
   * Whether an error means the database is down, cut off or (SQLite) locked by another writer:
   * storage's classifier, passed in by app.ts so that http/ imports no storage.
   */
  isDatabaseUnavailable: (err: unknown) => boolean
}

/** What an error thrown while handling a request answers: the JSON handler's and the pages'. */
export interface ErrorAnswer {
  status: number
  code: string
  detail: string | FieldError[]
  /** Seconds for Retry-After (RFC 6585 §4, RFC 9110 §10.2.3), when the client should come back. */
  retryAfter?: number
}

/**
 * Classifies an error thrown while handling a request, once for every renderer: a domain error's
 * code and status, a validation error in pydantic's words, Fastify's body errors, and otherwise a
 * 503 for an unavailable database or a 500 (logged, never told).
 */
export function describeError(
  error: FastifyError,
  request: FastifyRequest,
  isDatabaseUnavailable: (err: unknown) => boolean,
): ErrorAnswer {
  // RFC 6585 §4: a 429 says when to come back.
  if (error instanceof Throttled)
    return { status: 429, code: error.code, detail: error.detail, retryAfter: error.retryAfterSeconds }
  if (error instanceof DomainError)
    return { status: ERROR_STATUS[error.code], code: error.code, detail: error.detail }
  if (error instanceof ValidationError) return { status: 422, code: error.code, detail: error.errors }
  if (error.validation)
    return { status: 422, code: ErrorCode.validation, detail: toFieldErrors(error, request.body) }
  switch (error.code) {
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return {
        status: 422,
        code: ErrorCode.validation,
        detail: [{ loc: ['body'], msg: 'JSON decode error', type: 'json_invalid' }],
      }
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return {
        status: 422,
        code: ErrorCode.validation,
        detail: [{ loc: ['body'], msg: 'Field required', type: 'missing' }],
      }
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return { status: 415, code: ErrorCode.unsupportedMediaType, detail: 'Unsupported Media Type' }
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return { status: 413, code: ErrorCode.payloadTooLarge, detail: 'Request body is too large' }
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return {
        status: 400,
        code: ErrorCode.badRequest,
        detail: 'Request body size did not match Content-Length',
      }
  }
  const status = error.statusCode ?? 500
  if (status >= 400 && status < 500) {
    // Some 4xx messages of Fastify and its plugins quote the request (a method, a path): the
    // status text says enough, and the log keeps the message.
    request.log.debug({ err: error }, 'client error')
    return { status, code: ErrorCode.badRequest, detail: STATUS_CODES[status] ?? 'Bad Request' }
  }
  if (isDatabaseUnavailable(error)) {
    // The database is down, cut off, or (SQLite) locked by another writer: a retryable 503, not
    // a 500; the pool reconnects by itself, the lock is released.
    request.log.warn({ err: error }, 'database unavailable')
    return {
      status: 503,
      code: ErrorCode.unavailable,
      detail: 'Service temporarily unavailable',
      retryAfter: 5,
    }
  }
  request.log.error({ err: error }, 'unhandled error')
  return { status: 500, code: ErrorCode.internal, detail: 'Internal Server Error' }
}

function registerErrorHandlers(app: FastifyInstance, { isDatabaseUnavailable }: ErrorHandlerOptions): void {
  app.setErrorHandler((error: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
    const { status, code, detail, retryAfter } = describeError(error, request, isDatabaseUnavailable)
    if (retryAfter !== undefined) reply.header('retry-after', String(retryAfter))
    // RFC 6749 §5.2: a client that tried Basic (or sent nothing) is told to use it.
    if (error instanceof InvalidClient && error.basicChallenge)
      reply.header('www-authenticate', BASIC_CHALLENGE)
    return sendError(reply, status, code, detail)
  })
}

/** The app's error handler; a route or plugin registered before it would answer in Fastify's shape. */
export const errorsPlugin = fp(
  async (app, options: ErrorHandlerOptions) => registerErrorHandlers(app, options),
  {
    name: 'authgate-errors',
  },
)
