// The signed-in user's own account, sessions and consents: /auth/me, /auth/password, /auth/logout,
// /auth/sessions, /auth/consents, and the second factor's /auth/mfa (routes/mfa.ts).
import fastifyCookie from '@fastify/cookie'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyRequest } from 'fastify'
import { Type } from 'typebox'
import type { AccountService, Caller } from '../../domain/account.js'
import type { ConsentService } from '../../domain/consents.js'
import { DomainError, ErrorCode } from '../../domain/errors.js'
import type { MfaService } from '../../domain/mfa.js'
import type { PasskeyService } from '../../domain/passkeys.js'
import type { VerifiedToken } from '../../domain/tokens.js'
import { sendError } from '../plugins/errors.js'
import {
  ChangePasswordRequest,
  Consent,
  ConsentParams,
  DeleteAccountRequest,
  MAX_SESSIONS_PAGE,
  Me,
  Session,
  SessionListQuery,
  SessionParams,
} from '../schemas/account.js'
import {
  BEARER_SECURITY,
  bearerUnauthorized,
  errorAnswer,
  serviceUnavailable,
  tooManyRequests,
  validationErrorRef,
} from '../schemas/common.js'
import { DEVICE_COOKIE, deviceCookieOptions, type SameSite } from './auth.js'
import { routeFamily } from './family.js'
import { mfaRoutes } from './mfa.js'
import { passkeyAccountRoutes } from './webauthn.js'

const security = BEARER_SECURITY
const unauthorized = bearerUnauthorized()
const throttled = tooManyRequests('Too many wrong passwords: counted with the logins of POST /auth/token.')
const BODY_LIMIT = 16 * 1024

const routes: FastifyPluginAsyncTypebox<{
  account: AccountService
  /** Remembered consents (domain/consents.ts). */
  consents: ConsentService
  /** The second factor (domain/mfa.ts): its routes share these token checks. */
  mfa: MfaService
  /** Passkeys: registration and the list share these token checks too. */
  passkeys: PasskeyService
  /** Mark the device cookie Secure (the server is reached over https). */
  secureCookies: boolean
  /** The device cookie's SameSite (DEVICE_COOKIE_SAMESITE); Strict when omitted. */
  sameSite?: SameSite
}> = async (app, { account, consents, mfa, passkeys, secureCookies, sameSite }) => {
  // Every route here needs a valid, unrevoked access token.
  app.addHook('onRequest', app.authenticate)
  // ...and one whose session the database still has live: the in-memory view may be a moment
  // behind a change made on another instance, and these routes read and change account data
  // (issue 9 item 3). GET / keeps the view alone: it is the hot path.
  app.addHook('onRequest', async (request, reply) => {
    if (!(await account.isCurrent(request.user as VerifiedToken)))
      return sendError(reply, 401, ErrorCode.invalidToken, 'Could not validate credentials')
  })
  // In this plugin's own context, after the token checks: only these routes parse cookies.
  await app.register(fastifyCookie)
  const deviceCookieAttributes = deviceCookieOptions(secureCookies, sameSite)
  const caller = (request: FastifyRequest): Caller => ({
    ...(request.user as VerifiedToken),
    ip: request.ip,
    userAgent: request.headers['user-agent'] ?? null,
    deviceCookie: request.cookies[DEVICE_COOKIE],
  })

  mfaRoutes(app, mfa, caller)
  passkeyAccountRoutes(app, passkeys, caller)

  app.get(
    '/auth/me',
    {
      schema: {
        tags: ['account'],
        summary: 'Current User',
        security,
        response: {
          200: Me,
          401: unauthorized,
          404: errorAnswer('The account is gone.', ErrorCode.notFound),
          503: serviceUnavailable,
        },
      },
    },
    async (request) => {
      const me = await account.profile(caller(request))
      if (!me) throw new DomainError(ErrorCode.notFound, 'User not found')
      return { id: me.id, username: me.username, created_at: me.createdAt }
    },
  )

  app.post(
    '/auth/password',
    {
      bodyLimit: BODY_LIMIT,
      schema: {
        tags: ['account'],
        summary: 'Change Password',
        description:
          'Needs the current password. Every other session of the user ends, in the same transaction as ' +
          'the change, so a login racing it with the old password gets 401; this session stays. Every ' +
          'device cookie of the old password is void; this client gets a new one (Set-Cookie).',
        security,
        body: ChangePasswordRequest,
        response: {
          204: Type.Null({ description: 'Changed.' }),
          400: errorAnswer(
            'The current password is wrong (or was changed meanwhile).',
            ErrorCode.wrongPassword,
          ),
          401: unauthorized,
          422: { ...validationErrorRef, description: 'The new password breaks the policy.' },
          429: throttled,
          503: serviceUnavailable,
        },
      },
    },
    async (request, reply) => {
      const deviceCookie = await account.changePassword(
        caller(request),
        request.body.current_password,
        request.body.new_password,
      )
      // Every device cookie of the old password is void; this device gets one for the new.
      reply.setCookie(DEVICE_COOKIE, deviceCookie, deviceCookieAttributes)
      return reply.code(204).send(null)
    },
  )

  app.delete(
    '/auth/me',
    {
      bodyLimit: BODY_LIMIT,
      schema: {
        tags: ['account'],
        summary: 'Delete Account',
        description:
          'Needs the password. Every session ends with the account, in one transaction; the username can ' +
          'be registered again, under a new id (ids are never reused).',
        security,
        body: DeleteAccountRequest,
        response: {
          204: Type.Null({ description: 'Deleted.' }),
          400: errorAnswer('The password is wrong.', ErrorCode.wrongPassword),
          401: unauthorized,
          422: { ...validationErrorRef, description: 'The password field is missing.' },
          429: throttled,
          503: serviceUnavailable,
        },
      },
    },
    async (request, reply) => {
      await account.deleteAccount(caller(request), request.body.password)
      return reply.code(204).send(null)
    },
  )

  app.post(
    '/auth/logout',
    {
      schema: {
        tags: ['account'],
        summary: 'Logout',
        description:
          "Ends this token's session: its access and refresh tokens stop working at once. A token the " +
          'seed app issued has no session: one with a `jti` ends alone; one without (the seed issues ' +
          'none) cannot be told apart from the others, so every token without a session that this user ' +
          'was issued before now ends with it. Sessions of AuthGate are not touched.',
        security,
        response: {
          204: Type.Null({ description: 'Logged out.' }),
          401: unauthorized,
          503: serviceUnavailable,
        },
      },
    },
    async (request, reply) => {
      await account.logout(caller(request))
      return reply.code(204).send(null)
    },
  )

  app.get(
    '/auth/sessions',
    {
      schema: {
        tags: ['account'],
        summary: 'List Sessions',
        description:
          "The user's live sessions, newest first, a page at a time (at most MAX_SESSIONS_PER_USER " +
          'are alive), each with its kind (`token`, or `browser` for a sign-in at AuthGate in a ' +
          'browser) and the client it was issued to (`client_id`, null for the first-party password ' +
          'grant). When more follow, a `Link: <...>; rel="next"` header (RFC 8288) gives the next page.',
        security,
        querystring: SessionListQuery,
        response: {
          200: Type.Array(Session),
          401: unauthorized,
          422: { ...validationErrorRef, description: 'A limit or cursor that is not valid.' },
          503: serviceUnavailable,
        },
      },
    },
    async (request, reply) => {
      const limit = Number(request.query.limit ?? MAX_SESSIONS_PAGE)
      const page = await account.listSessions(caller(request), { limit, cursor: request.query.cursor })
      if (page.next !== undefined) {
        const next = new URLSearchParams({ limit: String(limit), cursor: page.next })
        reply.header('link', `</auth/sessions?${next}>; rel="next"`)
      }
      return page.sessions.map((s) => ({
        id: s.id,
        created_at: s.createdAt,
        last_used_at: s.lastUsedAt,
        user_agent: s.userAgent,
        ip: s.ip,
        current: s.current,
        kind: s.kind,
        client_id: s.clientId,
      }))
    },
  )

  app.delete(
    '/auth/sessions/:id',
    {
      schema: {
        tags: ['account'],
        summary: 'End Session',
        description:
          'Ends one of your sessions: its tokens stop working at once. Ending a browser session ends ' +
          'every session it started too.',
        security,
        params: SessionParams,
        response: {
          204: Type.Null({ description: 'Ended.' }),
          401: unauthorized,
          404: errorAnswer('No such live session of yours.', ErrorCode.sessionNotFound),
          503: serviceUnavailable,
        },
      },
    },
    async (request, reply) => {
      if (!(await account.endSession(caller(request), request.params.id))) {
        throw new DomainError(ErrorCode.sessionNotFound, 'Session not found')
      }
      return reply.code(204).send(null)
    },
  )

  app.get(
    '/auth/consents',
    {
      schema: {
        tags: ['account'],
        summary: 'List Consents',
        description:
          'The clients you have allowed on the consent page, and with which scopes, the earliest last ' +
          '"allow" first. A client with a consent that covers a request is not asked for again. ' +
          'First-party clients are never asked, so they have none unless a request said prompt=consent.',
        security,
        response: { 200: Type.Array(Consent), 401: unauthorized, 503: serviceUnavailable },
      },
    },
    async (request) => {
      const listed = await consents.list(caller(request).id)
      return listed.map((c) => ({
        client_id: c.clientId,
        client_name: c.clientName,
        scopes: c.scopes,
        granted_at: new Date(c.grantedAt).toISOString(),
      }))
    },
  )

  app.delete(
    '/auth/consents/:client_id',
    {
      schema: {
        tags: ['account'],
        summary: 'Withdraw Consent',
        description:
          'Forgets your consent for the client, so its next request shows the consent page again, and ends your sessions of that client: its access and refresh tokens stop working at once.',
        security,
        params: ConsentParams,
        response: {
          204: Type.Null({ description: 'Withdrawn.' }),
          401: unauthorized,
          404: errorAnswer('You have no consent for that client.', ErrorCode.notFound),
          503: serviceUnavailable,
        },
      },
    },
    async (request, reply) => {
      const who = caller(request)
      if (!(await consents.withdraw(who.id, request.params.client_id, who)))
        throw new DomainError(ErrorCode.notFound, 'Consent not found')
      return reply.code(204).send(null)
    },
  )
}

export const accountRoutes = routeFamily(
  { name: 'authgate-account-routes', needs: ['authgate-authenticate'] },
  routes,
)
