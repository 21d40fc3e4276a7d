// The signed-in user's second factor: GET /auth/mfa, POST and DELETE /auth/mfa/totp, POST
// /auth/mfa/totp/confirm. Registered inside the account routes, behind their token checks.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyRequest } from 'fastify'
import { Type } from 'typebox'
import type { Caller } from '../../domain/account.js'
import { ErrorCode, type FieldError, ValidationError } from '../../domain/errors.js'
import type { MfaService } from '../../domain/mfa.js'
import {
  BEARER_SECURITY,
  bearerUnauthorized,
  errorAnswer,
  serviceUnavailable,
  serviceUnavailableOr,
  tooManyRequests,
  validationErrorRef,
} from '../schemas/common.js'
import {
  BeginTotpRequest,
  BeginTotpResponse,
  ConfirmTotpRequest,
  ConfirmTotpResponse,
  MfaStatusResponse,
  RemoveTotpRequest,
} from '../schemas/mfa.js'

type App = Parameters<FastifyPluginAsyncTypebox>[0]

const security = BEARER_SECURITY
const BODY_LIMIT = 16 * 1024
const unauthorized = bearerUnauthorized()
const unconfigured = serviceUnavailableOr(
  'MFA_ENCRYPTION_KEY is not set on this server (`mfa_unavailable`).',
  ErrorCode.mfaUnavailable,
)
const wrongCode = errorAnswer('The code is wrong, or was already used.', ErrorCode.invalidOtp)
const codesThrottled = tooManyRequests('Too many wrong codes for this account (10 per window).')

export function mfaRoutes(app: App, mfa: MfaService, caller: (request: FastifyRequest) => Caller): void {
  app.get(
    '/auth/mfa',
    {
      schema: {
        tags: ['mfa'],
        summary: 'Second Factor Status',
        security,
        response: { 200: MfaStatusResponse, 401: unauthorized, 503: serviceUnavailable },
      },
    },
    async (request) => {
      const status = await mfa.status(caller(request).id)
      return { totp: status.totp, recovery_codes_left: status.recoveryCodesLeft }
    },
  )

  app.post(
    '/auth/mfa/totp',
    {
      bodyLimit: BODY_LIMIT,
      schema: {
        tags: ['mfa'],
        summary: 'Begin TOTP Enrolment',
        description:
          'Needs the current password (throttled like a login). Answers a new TOTP secret (RFC 6238: ' +
          'SHA-1, 30 s, 6 digits) and its otpauth:// URI, shown once. Nothing is enforced until ' +
          '`POST /auth/mfa/totp/confirm` sends a code from the app; beginning again replaces an ' +
          'unconfirmed secret. The secret is stored sealed under MFA_ENCRYPTION_KEY.',
        security,
        body: BeginTotpRequest,
        response: {
          200: BeginTotpResponse,
          400: errorAnswer('The password is wrong.', ErrorCode.wrongPassword),
          401: unauthorized,
          409: errorAnswer('TOTP is already enabled: remove it first.', ErrorCode.mfaAlreadyEnabled),
          422: { ...validationErrorRef, description: 'The password field is missing.' },
          429: tooManyRequests('Too many wrong passwords: counted with the logins of POST /auth/token.'),
          503: unconfigured,
        },
      },
    },
    async (request, reply) => {
      const begun = await mfa.beginTotp(caller(request), request.body.password)
      reply.header('cache-control', 'no-store')
      return { secret: begun.secret, otpauth_uri: begun.otpauthUri }
    },
  )

  app.post(
    '/auth/mfa/totp/confirm',
    {
      bodyLimit: BODY_LIMIT,
      schema: {
        tags: ['mfa'],
        summary: 'Confirm TOTP Enrolment',
        description:
          'The first code from the app turns TOTP on: from now on the password grant answers ' +
          '`mfa_required`, and the login page asks for a code. Answers ten recovery codes, shown once.',
        security,
        body: ConfirmTotpRequest,
        response: {
          200: ConfirmTotpResponse,
          400: wrongCode,
          401: unauthorized,
          409: errorAnswer('No enrolment is waiting to be confirmed.', ErrorCode.mfaNotEnrolled),
          422: { ...validationErrorRef, description: 'The code field is missing.' },
          429: codesThrottled,
          503: unconfigured,
        },
      },
    },
    async (request, reply) => {
      const codes = await mfa.confirmTotp(caller(request), request.body.code)
      reply.header('cache-control', 'no-store')
      return { recovery_codes: codes }
    },
  )

  app.delete(
    '/auth/mfa/totp',
    {
      bodyLimit: BODY_LIMIT,
      schema: {
        tags: ['mfa'],
        summary: 'Remove TOTP',
        description:
          'Needs the current password or a current TOTP code (`{"password": ...}` or `{"code": ...}`). ' +
          'Removes the secret and every recovery code; the password alone signs in again.',
        security,
        body: RemoveTotpRequest,
        response: {
          204: Type.Null({ description: 'Removed.' }),
          400: errorAnswer(
            'The password or the code is wrong (or the code was used).',
            ErrorCode.wrongPassword,
            ErrorCode.invalidOtp,
          ),
          401: unauthorized,
          409: errorAnswer('TOTP is not enabled.', ErrorCode.mfaNotEnrolled),
          422: { ...validationErrorRef, description: 'Neither or both of password and code.' },
          429: codesThrottled,
          503: unconfigured,
        },
      },
    },
    async (request, reply) => {
      const { password, code } = request.body
      if ((password === undefined) === (code === undefined)) {
        const error: FieldError = {
          loc: ['body'],
          msg: 'Send either password or code',
          type: 'value_error',
        }
        throw new ValidationError([error])
      }
      await mfa.removeTotp(caller(request), password !== undefined ? { password } : { code: code as string })
      return reply.code(204).send(null)
    },
  )
}
