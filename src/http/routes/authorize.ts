// The authorization endpoint and the consent page (issue 12 items 2 and 3): GET and POST
// /authorize, the login round trip's way back (/authorize/login/...), and POST /consent. The
// rules are domain/authorize.ts's; these handlers read the request, find the browser session,
// and turn the answer into a page or a redirect.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { Type } from 'typebox'
import type { AuthorizeAnswer, AuthorizeService } from '../../domain/authorize.js'
import {
  BROWSER_SESSION_COOKIE,
  type BrowserSession,
  type BrowserSessionService,
} from '../../domain/browser-sessions.js'
import type { CsrfTokens } from '../../domain/csrf.js'
import { consentPage } from '../pages/consent.js'
import { CSRF_COOKIE, csrfTokenFor, isOurForm, pageCookie } from '../pages/csrf.js'
import { sendPage, servePages } from '../pages/serve.js'
import { errorPage, errorPageFor, withReturnTo } from '../pages/views.js'
import { routeFamily } from './family.js'

export interface AuthorizeRoutesOptions {
  authorize: AuthorizeService
  browserSessions: BrowserSessionService
  csrf: CsrfTokens
  /** PUBLIC_URL: its origin is where the consent form is posted from. */
  publicUrl: string
  /** Secure cookies with the `__Host-` prefix (PUBLIC_URL is https). */
  secureCookies: boolean
  isDatabaseUnavailable: (err: unknown) => boolean
}

// A request fits in MAX_REQUEST_LENGTH characters; a consent form in its ticket and a token.
const FORM_BODY_LIMIT = 8 * 1024
const MAX_LOGIN_HINT = 256

const LoginMarker = Type.Object({ marker: Type.String({ maxLength: 64 }) })
const ConsentForm = Type.Object({
  csrf_token: Type.Optional(Type.String({ maxLength: 256 })),
  request: Type.Optional(Type.String({ maxLength: 4096 })),
  consent: Type.Optional(Type.String({ maxLength: 16 })),
})

/** The query string of a request URL, as sent. */
const queryOf = (url: string) => {
  const at = url.indexOf('?')
  return at === -1 ? '' : url.slice(at + 1)
}

/** A parsed form body as a query string, repeated fields repeated (the domain refuses them). */
function formAsQuery(body: unknown): string {
  const query = new URLSearchParams()
  for (const [name, value] of Object.entries((body ?? {}) as Record<string, unknown>))
    for (const v of Array.isArray(value) ? value : [value]) query.append(name, String(v))
  return query.toString()
}

const routes: FastifyPluginAsyncTypebox<AuthorizeRoutesOptions> = async (app, options) => {
  const { authorize, browserSessions, csrf, secureCookies } = options
  const publicOrigin = new URL(options.publicUrl).origin
  const sessionCookie = pageCookie(BROWSER_SESSION_COOKIE, secureCookies)
  const csrfCookie = pageCookie(CSRF_COOKIE, secureCookies)
  await servePages(app, options.isDatabaseUnavailable)

  const sessionOf = (request: FastifyRequest) => browserSessions.resolve(request.cookies[sessionCookie.name])

  /** The domain's answer as the browser gets it. RFC 9700 §4.12: 303, so a POST is not repeated. */
  function answer(
    request: FastifyRequest,
    reply: FastifyReply,
    next: AuthorizeAnswer,
    session: BrowserSession | undefined,
  ) {
    switch (next.kind) {
      case 'error_page':
        return sendPage(
          reply,
          400,
          errorPage({ title: 'This sign-in request cannot be used', message: next.problem }),
        )
      case 'redirect':
        return reply.redirect(next.location, 303)
      case 'login': {
        const hint =
          next.loginHint !== undefined && next.loginHint.length <= MAX_LOGIN_HINT ? next.loginHint : undefined
        const login = withReturnTo('/login', next.returnTo)
        return reply.redirect(
          hint === undefined ? login : `${login}&${new URLSearchParams({ login_hint: hint })}`,
          303,
        )
      }
      case 'consent':
        return sendPage(
          reply,
          200,
          consentPage({
            clientName: next.client.name,
            username: session?.username ?? '',
            scopes: next.scopes,
            ticket: next.ticket,
            csrfToken: csrfTokenFor(request, reply, csrf, csrfCookie),
            switchAccountHref: withReturnTo('/login', `/authorize?${queryOf(request.url)}`),
          }),
        )
    }
  }

  async function authorizeRequest(request: FastifyRequest, reply: FastifyReply, marker?: string) {
    const session = await sessionOf(request)
    return answer(request, reply, await authorize.authorize(queryOf(request.url), session, marker), session)
  }

  app.get('/authorize', { schema: { hide: true } }, (request, reply) => authorizeRequest(request, reply))

  // Where the login page sends the browser back when the request asked for a fresh login.
  app.get('/authorize/login/:marker', { schema: { hide: true, params: LoginMarker } }, (request, reply) =>
    authorizeRequest(request, reply, request.params.marker),
  )

  // OIDC Core §3.1.2.1: the same request, form-encoded. A client's page posts it from its own
  // site, and a SameSite=Lax cookie is not sent with another site's POST, so the browser is sent
  // on to the GET (a top-level navigation, which carries it) with the same parameters.
  app.post('/authorize', { bodyLimit: FORM_BODY_LIMIT, schema: { hide: true } }, async (request, reply) =>
    reply.redirect(`/authorize?${formAsQuery(request.body)}`, 303),
  )

  app.post(
    '/consent',
    {
      bodyLimit: FORM_BODY_LIMIT,
      schema: { hide: true, body: ConsentForm },
      // From our own page and with the token bound to this browser's cookie, before anything else.
      preHandler: async (request, reply) => {
        if (!isOurForm(request, { csrf, cookie: csrfCookie, publicOrigin }, request.body?.csrf_token))
          return sendPage(reply, 403, errorPage(errorPageFor(403)))
      },
    },
    async (request, reply) => {
      const { consent } = request.body
      if (consent !== 'allow' && consent !== 'deny') return sendPage(reply, 400, errorPage(errorPageFor(400)))
      const session = await sessionOf(request)
      const from = { ip: request.ip, userAgent: request.headers['user-agent'] ?? null }
      return answer(
        request,
        reply,
        await authorize.decide(request.body.request, consent, session, from),
        session,
      )
    },
  )
}

export const authorizeRoutes = routeFamily(
  { name: 'authgate-authorize-routes', needs: ['@fastify/formbody'] },
  routes,
)
