// Email links (issue 13 item 3): POST /auth/email/verify, POST /auth/password/forgot and POST
// /auth/password/reset, JSON, for apps; the pages behind the mailed links are in routes/pages.ts.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyRequest } from 'fastify'
import { Type } from 'typebox'
import { EMAIL_TAKEN, type EmailService, FORGOT_ANSWER, INVALID_LINK } from '../../domain/email.js'
import { ErrorCode, type FieldError, ValidationError } from '../../domain/errors.js'
import { errorAnswer, MessageResponse, serviceUnavailableOr, validationErrorRef } from '../schemas/common.js'

type App = Parameters<FastifyPluginAsyncTypebox>[0]

const BODY_LIMIT = 16 * 1024
const TOKEN = Type.String({ minLength: 1, maxLength: 128, description: 'The `token` of the mailed link.' })
const invalidLink = errorAnswer('The link is invalid, expired or already used.', [
  ErrorCode.invalidLink,
  INVALID_LINK,
])
const unavailable = serviceUnavailableOr(
  'SMTP_URL is not set on a production server (`mail_unavailable`).',
  ErrorCode.mailUnavailable,
)

export function emailRoutes(
  app: App,
  email: EmailService,
  from: (request: FastifyRequest) => { ip: string; userAgent: string | null },
): void {
  app.post(
    '/auth/email/verify',
    {
      bodyLimit: BODY_LIMIT,
      schema: {
        tags: ['email'],
        summary: 'Verify Email',
        description:
          'The token of the link mailed at sign-up: the address is verified (once; the link works for 24 h). ' +
          'A verified address can receive password reset links.',
        body: Type.Object({ token: TOKEN }),
        response: {
          204: Type.Null({ description: 'Verified.' }),
          400: invalidLink,
          409: errorAnswer('Another account has that address verified.', [ErrorCode.emailTaken, EMAIL_TAKEN]),
          422: { ...validationErrorRef, description: 'No token.' },
          503: unavailable,
        },
      },
    },
    async (request, reply) => {
      await email.verify(request.body.token, from(request))
      return reply.code(204).send(null)
    },
  )

  app.post(
    '/auth/password/forgot',
    {
      bodyLimit: BODY_LIMIT,
      schema: {
        tags: ['email'],
        summary: 'Forgot Password',
        description:
          'By `email` or `username`. Always 202 with the same body, at once: whether or not such an account ' +
          'exists and has a verified address, and before anything is looked up. If one does, a link to ' +
          'set a new password is mailed to that address (valid 1 h, single use). At most 5 mails per account ' +
          'and 30 per client address an hour; beyond, nothing is sent, and the answer stays the same.',
        body: Type.Object({
          email: Type.Optional(Type.String({ maxLength: 320 })),
          username: Type.Optional(Type.String({ maxLength: 256 })),
        }),
        response: {
          202: {
            ...MessageResponse,
            description: 'Accepted, whatever the account.',
            examples: [{ message: FORGOT_ANSWER }],
          },
          422: { ...validationErrorRef, description: 'Neither or both of email and username.' },
          503: unavailable,
        },
      },
    },
    async (request, reply) => {
      const { email: address, username } = request.body
      if ((address === undefined) === (username === undefined)) {
        const error: FieldError = { loc: ['body'], msg: 'Send either email or username', type: 'value_error' }
        throw new ValidationError([error])
      }
      email.forgot(
        address !== undefined ? { email: address } : { username: username as string },
        from(request),
      )
      return reply.code(202).send({ message: FORGOT_ANSWER })
    },
  )

  app.post(
    '/auth/password/reset',
    {
      bodyLimit: BODY_LIMIT,
      schema: {
        tags: ['email'],
        summary: 'Reset Password',
        description:
          "The token of a reset link and the new password: the policy applies, and every session of the account ends (the link's own too).",
        body: Type.Object({
          token: TOKEN,
          new_password: Type.String({
            minLength: 1,
            maxLength: 1024,
            description: 'The password policy applies.',
          }),
        }),
        response: {
          204: Type.Null({ description: 'Changed; every session ended.' }),
          400: invalidLink,
          422: { ...validationErrorRef, description: 'The new password breaks the policy.' },
          503: unavailable,
        },
      },
    },
    async (request, reply) => {
      await email.reset(request.body.token, request.body.new_password, from(request))
      return reply.code(204).send(null)
    },
  )
}
