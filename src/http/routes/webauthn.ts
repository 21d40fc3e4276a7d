// Passkeys (issue 13 item 2): registration and the credential list behind the account routes'
// token checks (passkeyAccountRoutes), and passwordless sign-in beside the token endpoint
// (passkeyLoginRoutes): POST /auth/webauthn/login/options and /verify, which answer a token pair.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { Type } from 'typebox'
import type { Caller } from '../../domain/account.js'
import type { AuthService, Client } from '../../domain/auth.js'
import { DomainError, ErrorCode } from '../../domain/errors.js'
import { PASSKEY_EXISTS, PASSKEY_REFUSED, type PasskeyService } from '../../domain/passkeys.js'
import { TokenResponse } from '../schemas/auth.js'
import {
  BEARER_SECURITY,
  bearerUnauthorized,
  errorAnswer,
  serviceUnavailable,
  serviceUnavailableOr,
  validationErrorRef,
} from '../schemas/common.js'
import {
  AuthenticationRequest,
  CredentialOptions,
  Passkey,
  PasskeyParams,
  RegistrationRequest,
} from '../schemas/webauthn.js'

type App = Parameters<FastifyPluginAsyncTypebox>[0]

const security = BEARER_SECURITY
const BODY_LIMIT = 16 * 1024
const unauthorized = bearerUnauthorized()
const refused = errorAnswer(
  "The authenticator's answer was refused: a wrong, spent or expired challenge, another origin, no user verification, a signature that does not verify, or a counter that did not move on (a possibly cloned authenticator).",
  [ErrorCode.invalidPasskey, PASSKEY_REFUSED],
)
const unavailable = serviceUnavailableOr(
  'PUBLIC_URL names no domain, which WebAuthn needs (`webauthn_unavailable`).',
  ErrorCode.webauthnUnavailable,
)
const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString())

export function passkeyAccountRoutes(
  app: App,
  passkeys: PasskeyService,
  caller: (request: FastifyRequest) => Caller,
): void {
  app.post(
    '/auth/webauthn/register/options',
    {
      schema: {
        tags: ['passkeys'],
        summary: 'Passkey Registration Options',
        description:
          'Options for `navigator.credentials.create()`: a discoverable credential (resident key) ' +
          "with user verification required, for this server as relying party (PUBLIC_URL's host), " +
          'excluding the passkeys you have. The challenge works once, for 5 minutes.',
        security,
        response: { 200: CredentialOptions, 401: unauthorized, 503: unavailable },
      },
    },
    async (request, reply) => {
      reply.header('cache-control', 'no-store')
      return passkeys.registrationOptions(caller(request))
    },
  )

  app.post(
    '/auth/webauthn/register/verify',
    {
      bodyLimit: BODY_LIMIT,
      schema: {
        tags: ['passkeys'],
        summary: 'Register Passkey',
        description:
          "The browser's answer to the registration options (`credential.toJSON()`), with an optional " +
          '`name`. The passkey then signs in without a password (`POST /auth/webauthn/login/verify`, ' +
          'or the login page).',
        security,
        body: RegistrationRequest,
        response: {
          201: Passkey,
          400: refused,
          401: unauthorized,
          409: errorAnswer('That passkey is registered already.', [ErrorCode.passkeyExists, PASSKEY_EXISTS]),
          422: { ...validationErrorRef, description: 'Not the shape of a registration response.' },
          503: unavailable,
        },
      },
    },
    async (request, reply) => {
      const { name, ...response } = request.body
      const passkey = await passkeys.register(caller(request), response as never, name)
      return reply.code(201).send(present(passkey))
    },
  )

  app.get(
    '/auth/webauthn/credentials',
    {
      schema: {
        tags: ['passkeys'],
        summary: 'List Passkeys',
        security,
        response: { 200: Type.Array(Passkey), 401: unauthorized, 503: serviceUnavailable },
      },
    },
    async (request) => (await passkeys.list(caller(request).id)).map(present),
  )

  app.delete(
    '/auth/webauthn/credentials/:id',
    {
      schema: {
        tags: ['passkeys'],
        summary: 'Remove Passkey',
        description: 'The passkey stops signing in at once. Your sessions stay.',
        security,
        params: PasskeyParams,
        response: {
          204: Type.Null({ description: 'Removed.' }),
          401: unauthorized,
          404: errorAnswer('You have no passkey with that id.', [ErrorCode.notFound, 'Passkey not found']),
          503: serviceUnavailable,
        },
      },
    },
    async (request, reply) => {
      if (!(await passkeys.remove(caller(request), request.params.id)))
        throw new DomainError(ErrorCode.notFound, 'Passkey not found')
      return reply.code(204).send(null)
    },
  )
}

function present(p: Awaited<ReturnType<PasskeyService['list']>>[number]) {
  return {
    id: p.id,
    name: p.name,
    device_type: p.deviceType,
    backed_up: p.backedUp,
    created_at: iso(p.createdAt) as string,
    last_used_at: iso(p.lastUsedAt),
  }
}

export function passkeyLoginRoutes(
  app: App,
  deps: {
    auth: AuthService
    passkeys: PasskeyService
    client: (request: FastifyRequest) => Client
    /** Sets the device cookie a sign-in earns (routes/auth.ts). */
    setDeviceCookie: (reply: FastifyReply, cookie: string) => void
  },
): void {
  const { auth, passkeys, client, setDeviceCookie } = deps
  app.post(
    '/auth/webauthn/login/options',
    {
      schema: {
        tags: ['passkeys'],
        summary: 'Passkey Sign-in Options',
        description:
          'Options for `navigator.credentials.get()`: any passkey of this site, user verification ' +
          'required (no username needed). The challenge works once, for 5 minutes; nothing is ' +
          'stored until it is used (it carries its expiry under a MAC).',
        response: { 200: CredentialOptions, 503: unavailable },
      },
    },
    async (_request, reply) => {
      reply.header('cache-control', 'no-store')
      return passkeys.loginOptions()
    },
  )

  app.post(
    '/auth/webauthn/login/verify',
    {
      bodyLimit: BODY_LIMIT,
      schema: {
        tags: ['passkeys'],
        summary: 'Sign In With Passkey',
        description:
          "The browser's answer to the sign-in options (`credential.toJSON()`). A verified passkey " +
          'signs in without the password and without TOTP (with user verification it is two factors ' +
          'itself): the usual token pair, `amr` `hwk` (or `swk`, synced) and `user`.',
        body: AuthenticationRequest,
        response: {
          200: TokenResponse,
          400: refused,
          401: errorAnswer('The account changed meanwhile.', ErrorCode.invalidCredentials),
          422: { ...validationErrorRef, description: 'Not the shape of an authentication response.' },
          503: unavailable,
        },
      },
    },
    async (request, reply) => {
      const { pair, deviceCookie } = await auth.passkeyLogin(request.body as never, client(request))
      setDeviceCookie(reply, deviceCookie)
      reply.header('cache-control', 'no-store').header('pragma', 'no-cache')
      return {
        access_token: pair.accessToken,
        token_type: 'bearer' as const,
        expires_in: pair.expiresIn,
        refresh_token: pair.refreshToken,
      }
    },
  )
}
