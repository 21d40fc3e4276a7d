// POST /auth/ (sign up) and POST /auth/token (OAuth2 password grant), where the seed has them.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { DomainError, ErrorCode } from '../../domain/errors.js'
import type { TokenService } from '../../domain/tokens.js'
import { INCORRECT_CREDENTIALS, type UserService } from '../../domain/users.js'
import { CreateUserRequest, TokenRequest, TokenResponse } from '../schemas/auth.js'
import { errorRef, MessageResponse, validationErrorRef } from '../schemas/common.js'

const FORM = /^application\/x-www-form-urlencoded\b/i
// Credentials fit in far less; a bigger body is refused before it is parsed or hashed.
const AUTH_BODY_LIMIT = 16 * 1024

export interface AuthRoutesOptions {
  users: UserService
  tokens: TokenService
}

export const authRoutes: FastifyPluginAsyncTypebox<AuthRoutesOptions> = async (app, { users, tokens }) => {
  app.post(
    '/auth/',
    {
      bodyLimit: AUTH_BODY_LIMIT,
      schema: {
        tags: ['auth'],
        summary: 'Create User',
        description:
          'Registers a user. The username is unique after Unicode NFKC normalisation and case folding; ' +
          'the password must meet the policy (length, not a common password).',
        body: CreateUserRequest,
        response: {
          201: { ...MessageResponse, description: 'The user was created.' },
          409: { ...errorRef, description: 'The username is taken.' },
          422: {
            ...validationErrorRef,
            description: 'The body is invalid or the password breaks the policy.',
          },
        },
      },
    },
    async (request, reply) => {
      await users.register(request.body.username, request.body.password)
      return reply.code(201).send({ message: 'User created successfully' })
    },
  )

  app.post(
    '/auth/token',
    {
      bodyLimit: AUTH_BODY_LIMIT,
      schema: {
        tags: ['auth'],
        summary: 'Login For Access Token',
        description:
          'OAuth2 password grant (RFC 6749 §4.3), sent as a form. Returns a bearer access token. ' +
          'Unknown users and wrong passwords get the same answer, in the same time.',
        consumes: ['application/x-www-form-urlencoded'],
        body: TokenRequest,
        response: {
          200: { ...TokenResponse, description: 'An access token.' },
          401: { ...errorRef, description: 'Incorrect username or password.' },
          415: { ...errorRef, description: 'The body is not a form.' },
          422: { ...validationErrorRef, description: 'A form field is missing or invalid.' },
        },
      },
      // RFC 6749 §4.3.2: the token request is a form; a JSON body is refused, not half-read.
      preValidation: async (request) => {
        if (request.body !== undefined && !FORM.test(request.headers['content-type'] ?? '')) {
          throw new DomainError(
            ErrorCode.unsupportedMediaType,
            'Send the form as application/x-www-form-urlencoded',
          )
        }
      },
    },
    async (request, reply) => {
      const user = await users.authenticate(request.body.username, request.body.password)
      if (!user) throw new DomainError(ErrorCode.invalidCredentials, INCORRECT_CREDENTIALS)
      const issued = tokens.issue(user)
      // RFC 6749 §5.1: token responses must not be cached.
      reply.header('cache-control', 'no-store').header('pragma', 'no-cache')
      return { access_token: issued.accessToken, token_type: 'bearer' as const, expires_in: issued.expiresIn }
    },
  )
}
