// Security headers (helmet's, worked out once), CORS from CORS_ORIGINS, and 405 for a known path
// with the wrong method.
import type { IncomingMessage, ServerResponse } from 'node:http'
import cors from '@fastify/cors'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import helmet, { type HelmetOptions } from 'helmet'
import { ErrorCode } from '../../domain/errors.js'
import { sendError } from './errors.js'

// The headers the OWASP REST Security Cheat Sheet asks of an API (and ASVS 14.4): nosniff,
// no framing (CSP frame-ancestors and X-Frame-Options), HSTS, no referrer, same-origin
// resources. JSON answers need no scripts at all (default-src 'none'); the docs pages send
// their own, narrower CSP (plugins/docs.ts), and AuthGate's pages theirs (PAGE_HEADERS). helmet's
// browser-page extras (X-XSS-Protection, X-DNS-Prefetch-Control, X-Download-Options, ...) are
// left out: each costs every response.
const API_HELMET: HelmetOptions = {
  contentSecurityPolicy: {
    useDefaults: false,
    directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] },
  },
  crossOriginResourcePolicy: { policy: 'same-origin' },
  xFrameOptions: { action: 'deny' },
  crossOriginOpenerPolicy: false,
  originAgentCluster: false,
  xDnsPrefetchControl: false,
  xDownloadOptions: false,
  xPermittedCrossDomainPolicies: false,
  xXssProtection: false,
}

/**
 * The headers of AuthGate's own HTML pages (http/pages), worked out once like the API's and set
 * over them. The CSP lets a page load its stylesheet, images and scripts from this server and
 * nothing else: no inline script, no eval (OWASP ASVS 5.0 V3.4), no framing (frame-ancestors, and
 * X-Frame-Options for browsers without CSP 2), no <base>. No `form-action`: Chromium checks it
 * against every redirect that follows a form submission, and a login POST goes on to /authorize
 * and from there to a client's redirect URI on another origin, which `form-action 'self'` would
 * block (test/e2e/pages-browser.test.ts shows both); the forms are ours, and markup cannot be
 * injected into them (http/pages/html.ts escapes every value). Never cached (a page carries a
 * CSRF token and a user's name). Referrer-Policy `same-origin`, not the API's `no-referrer`: with
 * no-referrer a browser sends `Origin: null` on the page's own form posts (Fetch standard,
 * "append a request `Origin` header"), and the CSRF check could no longer tell our pages from
 * anyone's; same-origin sends no referrer to any other origin either, so a return_to never leaks.
 */
export const PAGE_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  ...helmetHeaders({
    ...API_HELMET,
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        defaultSrc: ["'none'"],
        styleSrc: ["'self'"],
        imgSrc: ["'self'"],
        // The login page's passkey script, a file of ours (http/pages/assets.ts), and its fetch
        // of the sign-in options: never an inline script, never another origin's.
        scriptSrc: ["'self'"],
        connectSrc: ["'self'"],
        frameAncestors: ["'none'"],
        baseUri: ["'none'"],
      },
    },
    referrerPolicy: { policy: 'same-origin' },
  }),
  'cache-control': 'no-store',
})

/** Sets PAGE_HEADERS on every answer of `app`'s routes: call it inside the pages' route family. */
export function usePageHeaders(app: FastifyInstance): void {
  app.addHook('onRequest', (_request, reply, done) => {
    reply.headers(PAGE_HEADERS)
    done()
  })
}

/** Sets the security headers on every answer and registers CORS; call before the routes. */
async function registerSecurity(
  app: FastifyInstance,
  { corsOrigins }: { corsOrigins: string[] },
): Promise<void> {
  const headers = helmetHeaders(API_HELMET)
  app.addHook('onRequest', (_request, reply, done) => {
    reply.headers(headers)
    done()
  })
  // No origin is allowed unless configured: a browser app on another origin must be listed.
  if (corsOrigins.length > 0) {
    const listed = new Set(corsOrigins)
    await app.register(cors, {
      // Exact matches only, never `*` (config.ts refuses it) and never a reflected unlisted origin:
      // with credentials allowed, that would hand any site the user's cookies (Fetch standard
      // §3.2.5; OWASP ASVS 5.0 3.4.2). An unlisted origin, or none, gets no CORS header at all.
      origin: (origin, callback) => callback(null, origin !== undefined && listed.has(origin)),
      // The app may send credentials (fetch's `credentials: 'include'`): the device cookie that
      // keeps its users on their own throttling allowance (domain/throttle.ts). Tokens stay in the
      // Authorization header; no cookie here authenticates a request.
      credentials: true,
      methods: ['GET', 'POST', 'DELETE'],
      allowedHeaders: ['authorization', 'content-type', 'x-request-id'],
      // Not CORS-safelisted, so hidden from scripts unless exposed: when to retry (429, 503), the
      // bearer challenge (401), and the next page of sessions (GET /auth/sessions).
      exposedHeaders: ['retry-after', 'www-authenticate', 'link'],
      maxAge: 600,
    })
  }
}

/**
 * The headers helmet would set, worked out once. @fastify/helmet runs helmet's middleware on every
 * request, re-deriving the same dozen headers: 14 µs of a GET / that costs 40 µs in all, measured
 * with bench/run.mjs. Our options are static, so the result is too.
 */
export function helmetHeaders(options: HelmetOptions): Record<string, string> {
  const headers: Record<string, string> = {}
  const response = {
    setHeader(name: string, value: unknown) {
      headers[name.toLowerCase()] = String(value)
    },
    removeHeader(name: string) {
      delete headers[name.toLowerCase()]
    },
  }
  helmet(options)({} as IncomingMessage, response as unknown as ServerResponse, () => {})
  return headers
}

/**
 * Remembers every route's method and path, so the not-found handler can tell "no such path"
 * (404) from "no such method here" (405, with Allow, RFC 9110 §15.5.6).
 */
function trackMethods(app: FastifyInstance): (method: string, url: string) => string[] {
  const routes: { method: string; pattern: RegExp }[] = []
  app.addHook('onRoute', (route) => {
    // A catch-all (@fastify/cors answers preflights on `*`) would make every path known, and
    // every 404 a 405 with Allow: OPTIONS.
    if (route.url === '*' || route.url === '/*') return
    const methods = Array.isArray(route.method) ? route.method : [route.method]
    // A `:param` is one segment; a wildcard (`/docs/static/*`) is the rest of the path, slashes
    // and all, as in the router (find-my-way).
    const pattern = new RegExp(
      `^${route.url
        .replace(/\/$/, '')
        .replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
        .replace(/:[^/]+/g, '[^/]+')
        .replaceAll('\\*', '.*')}/?$`,
    )
    for (const method of methods) routes.push({ method, pattern })
  })
  return (method, url) => {
    const path = url.split('?', 1)[0] ?? ''
    const allowed = routes.filter((r) => r.pattern.test(path)).map((r) => r.method)
    return allowed.includes(method) ? [] : [...new Set(allowed)]
  }
}

function registerNotFound(app: FastifyInstance, allowedFor: (method: string, url: string) => string[]) {
  app.setNotFoundHandler((request, reply) => {
    const allowed = allowedFor(request.method, request.url)
    if (allowed.length > 0) {
      reply.header('allow', allowed.join(', '))
      return sendError(reply, 405, ErrorCode.methodNotAllowed, 'Method Not Allowed')
    }
    return sendError(reply, 404, ErrorCode.notFound, 'Not Found')
  })
}

/**
 * Security headers, CORS, and the 404/405 answers. Every route must be registered after it (its
 * onRoute hook records them for the 405); Fastify gives the not-found handler the app's hooks and
 * error handler when it starts, so setting it here, before the routes, changes nothing.
 */
export const securityPlugin = fp<{ corsOrigins: string[] }>(
  async (app, options) => {
    const allowedMethods = trackMethods(app)
    await registerSecurity(app, options)
    registerNotFound(app, allowedMethods)
  },
  { name: 'authgate-security', dependencies: ['authgate-errors'] },
)
