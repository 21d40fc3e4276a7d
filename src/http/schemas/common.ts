// Shared response shapes: FastAPI's `{"detail": ...}` errors and a plain message, and each error
// code's real answer, so /docs shows what a client will see.
import { type TSchema, Type } from 'typebox'
import { CLIENT_AUTH_FAILED } from '../../domain/client-auth.js'
import { MAIL_UNAVAILABLE } from '../../domain/email.js'
import { ErrorCode } from '../../domain/errors.js'
import {
  MFA_ALREADY_ENABLED,
  MFA_NOT_CONFIGURED,
  MFA_NOT_PENDING,
  MFA_REQUIRED,
  WRONG_CODE,
} from '../../domain/mfa.js'
import { PASSKEYS_UNAVAILABLE } from '../../domain/passkeys.js'
import { INCORRECT_CREDENTIALS, USERNAME_TAKEN, WRONG_PASSWORD } from '../../domain/users.js'

export const ErrorResponse = Type.Object(
  {
    detail: Type.String({ description: 'What went wrong, for people.' }),
    code: Type.String({
      description: 'A stable machine-readable error code (domain/errors.ts).',
      // Documents the registry; serialised as any string, so a new code never breaks a response.
      enum: Object.values(ErrorCode),
    }),
  },
  {
    $id: 'ErrorResponse',
    description: "An error, in FastAPI's shape plus a stable code.",
    examples: [{ detail: 'Not authenticated', code: ErrorCode.notAuthenticated }],
  },
)

export const ValidationErrorResponse = Type.Object(
  {
    detail: Type.Array(
      Type.Object({
        loc: Type.Array(Type.Union([Type.String(), Type.Integer()])),
        msg: Type.String(),
        type: Type.String(),
      }),
    ),
    code: Type.Literal('validation_error'),
  },
  {
    $id: 'ValidationErrorResponse',
    description: "Request validation failed (FastAPI's 422 shape).",
    examples: [
      {
        detail: [{ loc: ['body', 'password'], msg: 'Field required', type: 'missing' }],
        code: ErrorCode.validation,
      },
    ],
  },
)

export const MessageResponse = Type.Object({ message: Type.String() })

export const errorRef = Type.Ref('ErrorResponse')
export const validationErrorRef = Type.Ref('ValidationErrorResponse')

export const oauthErrorRef = Type.Ref('OAuthErrorResponse')

/** Each code's `detail` as the server words it (the domain's constants where it has them). */
const DETAIL: Partial<Record<ErrorCode, string>> = {
  [ErrorCode.usernameTaken]: USERNAME_TAKEN,
  [ErrorCode.invalidCredentials]: INCORRECT_CREDENTIALS,
  [ErrorCode.wrongPassword]: WRONG_PASSWORD,
  [ErrorCode.notAuthenticated]: 'Not authenticated',
  [ErrorCode.invalidToken]: 'Could not validate credentials',
  [ErrorCode.tooManyRequests]: 'Too many attempts; try again later',
  [ErrorCode.unsupportedMediaType]: 'Send the form as application/x-www-form-urlencoded',
  [ErrorCode.notFound]: 'User not found',
  [ErrorCode.sessionNotFound]: 'Session not found',
  [ErrorCode.unavailable]: 'Service temporarily unavailable',
  [ErrorCode.invalidOtp]: WRONG_CODE,
  [ErrorCode.mfaAlreadyEnabled]: MFA_ALREADY_ENABLED,
  [ErrorCode.mfaNotEnrolled]: MFA_NOT_PENDING,
  [ErrorCode.mfaUnavailable]: MFA_NOT_CONFIGURED,
  [ErrorCode.webauthnUnavailable]: PASSKEYS_UNAVAILABLE,
  [ErrorCode.mailUnavailable]: MAIL_UNAVAILABLE,
}

/**
 * A documented error answer: the shared ErrorResponse, what the status means on this route, and
 * one real example per code it can carry (named examples, which Swagger UI offers in a list).
 */
export function errorAnswer(description: string, ...codes: (ErrorCode | [ErrorCode, string])[]): TSchema {
  return answer(description, errorRef, examples(codes))
}

function examples(codes: (ErrorCode | [ErrorCode, string])[]): Record<string, unknown> {
  return Object.fromEntries(
    codes.map((entry) => {
      const [code, detail] = Array.isArray(entry) ? entry : [entry, DETAIL[entry] ?? entry]
      return [code, { value: { detail, code } }]
    }),
  )
}

// An entry's third element is the `error` when it is not the code itself.
type OAuthExample = [ErrorCode, string] | [ErrorCode, string, string]
const oauthExamples = (entries: OAuthExample[]) =>
  Object.fromEntries(
    entries.map(([code, detail, error = code]) => [
      code,
      { value: { error, error_description: detail, detail, code } },
    ]),
  )

/** The same for the token endpoint's RFC 6749 §5.2 errors, which carry `error` too. */
export function oauthErrorAnswer(description: string, ...entries: OAuthExample[]): TSchema {
  return answer(description, oauthErrorRef, oauthExamples(entries))
}

// What every failed client authentication says.
const INVALID_CLIENT: [ErrorCode, string] = [ErrorCode.invalidClient, CLIENT_AUTH_FAILED]
const BASIC_CHALLENGE_HEADER = {
  'www-authenticate': {
    type: 'string',
    description:
      'With invalid_client, when the client sent Authorization: Basic, or nothing (RFC 6749 §5.2).',
  },
}

/** 401 invalid_client at the introspection and revocation endpoints. */
export const invalidClientAnswer = (description: string): TSchema =>
  answer(description, oauthErrorRef, oauthExamples([INVALID_CLIENT]), BASIC_CHALLENGE_HEADER)

/** The token endpoint's 401: the seed's wrong password, or a client that failed to authenticate. */
export const tokenUnauthorizedAnswer = (description: string): TSchema =>
  answer(
    description,
    Type.Ref('TokenUnauthorizedResponse'),
    {
      ...examples([ErrorCode.invalidCredentials]),
      [ErrorCode.mfaRequired]: {
        value: { detail: MFA_REQUIRED, code: ErrorCode.mfaRequired, mfa_token: 'L3Jc…' },
      },
      ...oauthExamples([INVALID_CLIENT]),
    },
    BASIC_CHALLENGE_HEADER,
  )

// Fastify serialises with content[type].schema; @fastify/swagger copies the media type as it is,
// named examples and all (beside a bare $ref it would drop them).
function answer(
  description: string,
  schema: TSchema,
  examples: Record<string, unknown>,
  headers?: Record<string, unknown>,
): TSchema {
  return {
    description,
    ...(headers ? { headers } : {}),
    content: { 'application/json': { schema, examples } },
  } as unknown as TSchema
}

const retryAfter = (description: string) => ({
  'retry-after': { type: 'integer', minimum: 1, description },
})

/** 429: a throttle (domain/throttle.ts) said no; Retry-After says when to come back (RFC 6585 §4). */
export const tooManyRequests = (what: string): TSchema =>
  answer(
    what,
    errorRef,
    examples([ErrorCode.tooManyRequests]),
    retryAfter('Seconds until the throttle lets this client try again.'),
  )

/** 503: the database is down, cut off or locked a moment; Retry-After: 5 (http/plugins/errors.ts). */
export const serviceUnavailable: TSchema = answer(
  'The database is unavailable for a moment (down, cut off, or a SQLite lock held); retry.',
  errorRef,
  examples([ErrorCode.unavailable]),
  retryAfter('Seconds to wait before retrying (5).'),
)

/** 503 on a route that also needs a setting: the database's 503 first, then `codes`' own. */
export const serviceUnavailableOr = (description: string, ...codes: ErrorCode[]): TSchema =>
  answer(
    `The database is unavailable for a moment; or ${description}`,
    errorRef,
    examples([ErrorCode.unavailable, ...codes]),
    retryAfter('Seconds to wait before retrying (5).'),
  )

/** What a route behind a bearer token says about it (the account routes, /auth/mfa, /auth/webauthn). */
export const BEARER_SECURITY = [{ OAuth2PasswordBearer: [] }]
/** Its 401: no token, or one that is invalid, expired or revoked. */
export const bearerUnauthorized = (): TSchema =>
  errorAnswer(
    'No bearer token, or one that is invalid, expired or revoked.',
    ErrorCode.notAuthenticated,
    ErrorCode.invalidToken,
  )
