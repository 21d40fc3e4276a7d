// GET and POST /logout: the end_session_endpoint (OpenID Connect RP-Initiated Logout 1.0). The
// checks are domain/logout.ts's; ending is the browser session service's (the session and every
// session it started, at once on every instance). These handlers read the request, find the
// browser session, and answer with a page or a redirect.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { Type } from 'typebox'
import { BROWSER_SESSION_COOKIE, type BrowserSessionService } from '../../domain/browser-sessions.js'
import type { CsrfTokens } from '../../domain/csrf.js'
import type { LogoutRequest, LogoutService } from '../../domain/logout.js'
import { CSRF_COOKIE, csrfTokenFor, isOurForm, pageCookie } from '../pages/csrf.js'
import { logoutConfirmPage, signedOutPage } from '../pages/logout.js'
import { sendPage, servePages } from '../pages/serve.js'
import { errorPage } from '../pages/views.js'
import { routeFamily } from './family.js'

export interface LogoutRoutesOptions {
  logout: LogoutService
  browserSessions: BrowserSessionService
  csrf: CsrfTokens
  /** PUBLIC_URL: its origin is where the confirmation form is posted from. */
  publicUrl: string
  secureCookies: boolean
  isDatabaseUnavailable: (err: unknown) => boolean
}

const FORM_BODY_LIMIT = 16 * 1024
// One of each (a repeated parameter is not a string, so the schema refuses it with a 400 page).
const parameterFields = {
  id_token_hint: Type.Optional(Type.String({ maxLength: 8192 })),
  client_id: Type.Optional(Type.String({ maxLength: 256 })),
  post_logout_redirect_uri: Type.Optional(Type.String({ maxLength: 2000 })),
  state: Type.Optional(Type.String({ maxLength: 2048 })),
  ui_locales: Type.Optional(Type.String({ maxLength: 256 })),
}
const LogoutParameters = Type.Object(parameterFields)
const LogoutForm = Type.Object({
  ...parameterFields,
  csrf_token: Type.Optional(Type.String({ maxLength: 256 })),
  confirm: Type.Optional(Type.String({ maxLength: 16 })),
})

const PARAMETERS = ['id_token_hint', 'client_id', 'post_logout_redirect_uri', 'state'] as const

/** The logout parameters alone, as sent (ui_locales is accepted and ignored, §2). */
function parametersOf(source: Partial<Record<string, string>>): LogoutRequest {
  const request: Record<string, string> = {}
  for (const name of PARAMETERS) {
    const value = source[name]
    if (value !== undefined) request[name] = value
  }
  return request
}

const routes: FastifyPluginAsyncTypebox<LogoutRoutesOptions> = async (app, options) => {
  const { logout, browserSessions, csrf, secureCookies } = options
  const publicOrigin = new URL(options.publicUrl).origin
  const sessionCookie = pageCookie(BROWSER_SESSION_COOKIE, secureCookies)
  const csrfCookie = pageCookie(CSRF_COOKIE, secureCookies)
  await servePages(app, options.isDatabaseUnavailable)

  /**
   * Checks the request; then, when `confirmed` (our own confirmation form) or when its
   * id_token_hint names this very browser session, ends the session and sends the browser on;
   * otherwise asks first (§6: a logout request anyone can link to must not sign people out).
   */
  async function handle(
    request: FastifyRequest,
    reply: FastifyReply,
    parameters: LogoutRequest,
    confirmed: boolean,
  ) {
    const checked = await logout.check(parameters)
    if (!checked.ok) {
      // Never a redirect here: the URI was not shown to be the client's (RFC 9700 §4.11).
      return sendPage(
        reply,
        400,
        errorPage({ title: 'This sign-out request cannot be used', message: checked.problem }),
      )
    }
    const cookie = request.cookies[sessionCookie.name]
    const session = await browserSessions.resolve(cookie)
    const done = () =>
      checked.redirectTo === undefined
        ? sendPage(reply, 200, signedOutPage())
        : reply.redirect(checked.redirectTo, 303)
    // Nobody is signed in here: nothing to end, and the URI is the client's own.
    if (!session || cookie === undefined) {
      reply.clearCookie(sessionCookie.name, sessionCookie.options)
      return done()
    }
    if (!confirmed && checked.hint?.sid !== session.id) {
      return sendPage(
        reply,
        200,
        logoutConfirmPage({
          username: session.username,
          clientName: checked.client?.name,
          csrfToken: csrfTokenFor(request, reply, csrf, csrfCookie),
          fields: parameters as Record<string, string>,
        }),
      )
    }
    const ended = await browserSessions.end(cookie, 'logout')
    logout.loggedOut({
      userId: session.userId,
      sessionId: session.id,
      clientId: checked.client?.clientId,
      ended,
    })
    reply.clearCookie(sessionCookie.name, sessionCookie.options)
    return done()
  }

  app.get('/logout', { schema: { hide: true, querystring: LogoutParameters } }, (request, reply) =>
    handle(request, reply, parametersOf(request.query), false),
  )

  app.post(
    '/logout',
    { bodyLimit: FORM_BODY_LIMIT, schema: { hide: true, body: LogoutForm } },
    async (request, reply) => {
      const parameters = parametersOf(request.body)
      // A client's own form (§2 allows POST): sent from its site, so the SameSite=Lax cookie is
      // not with it. Sent on to the GET, a top-level navigation, which carries it.
      if (request.body.csrf_token === undefined) {
        return reply.redirect(`/logout?${new URLSearchParams(parameters as Record<string, string>)}`, 303)
      }
      // Our confirmation form: from our own page, with the token bound to this browser's cookie.
      if (!isOurForm(request, { csrf, cookie: csrfCookie, publicOrigin }, request.body.csrf_token)) {
        return sendPage(
          reply,
          403,
          errorPage({
            title: 'This form cannot be accepted',
            message:
              'The form was not sent from this site’s own page, or it has expired. You are still signed in.',
          }),
        )
      }
      return handle(request, reply, parameters, true)
    },
  )
}

export const logoutRoutes = routeFamily(
  { name: 'authgate-logout-routes', needs: ['@fastify/formbody'] },
  routes,
)
