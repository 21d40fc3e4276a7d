// The pages' CSRF defences at the HTTP edge (OWASP CSRF Prevention Cheat Sheet; OWASP ASVS 5.0
// 3.5.1): the pre-session cookie that a form's token is bound to (domain/csrf.ts makes and checks
// the token), and the origin of a POST, read from the headers browsers set and scripts cannot.
import type { CookieSerializeOptions } from '@fastify/cookie'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { CsrfTokens } from '../../domain/csrf.js'

export interface PageCookie {
  name: string
  options: CookieSerializeOptions
}

/**
 * A cookie of the pages: HttpOnly, on the whole site, SameSite=Lax (sent on a top-level
 * navigation from another site, such as a client's redirect to /authorize, never on another
 * site's POST), and behind https Secure with the `__Host-` prefix, which a sibling subdomain
 * cannot set or overwrite (RFC 6265bis §4.1.3.2). No Max-Age: it ends with the browser session.
 */
export function pageCookie(name: string, secure: boolean): PageCookie {
  return {
    name: secure ? `__Host-${name}` : name,
    options: { path: '/', httpOnly: true, sameSite: 'lax', secure },
  }
}

/** A token for a form on this answer, bound to the browser's pre-session cookie (set now if absent). */
export function csrfTokenFor(
  request: FastifyRequest,
  reply: FastifyReply,
  csrf: CsrfTokens,
  cookie: PageCookie,
): string {
  let binding = request.cookies[cookie.name]
  if (!csrf.isBinding(binding)) {
    binding = csrf.newBinding()
    reply.setCookie(cookie.name, binding, cookie.options)
  }
  return csrf.tokenFor(binding)
}

/**
 * Whether a POST was sent by a page of this site (OWASP CSRF Prevention Cheat Sheet, "Fetch
 * Metadata headers" and "Verifying origin with standard headers"). `Sec-Fetch-Site`, when the
 * browser sends it, must be same-origin: our forms are only ever posted from our own pages. Then
 * `Origin`, which browsers send with every form POST: it must be PUBLIC_URL's origin or the one
 * the request was sent to (scheme and Host, which a victim's browser sets truthfully); `null`
 * (what an attacker's page gets by sending no referrer, or a sandboxed frame) is refused, which
 * the pages' Referrer-Policy: same-origin allows (security.ts). A request with neither header
 * (a script, a very old browser) is left to the token, which it cannot have without the cookie.
 */
export function sentFromOurPages(request: FastifyRequest, publicOrigin: string): boolean {
  const site = request.headers['sec-fetch-site']
  if (site !== undefined && site !== 'same-origin') return false
  const origin = request.headers.origin
  if (origin === undefined) return true
  return origin === publicOrigin || origin === `${request.protocol}://${request.host}`
}

/** The pre-session cookie's name (before the `__Host-` prefix pageCookie adds behind https). */
export const CSRF_COOKIE = 'authgate_csrf'

/** Whether a form POST is ours: sent from our own page, with the token bound to this browser's cookie. */
export function isOurForm(
  request: FastifyRequest,
  { csrf, cookie, publicOrigin }: { csrf: CsrfTokens; cookie: PageCookie; publicOrigin: string },
  token: string | undefined,
): boolean {
  return sentFromOurPages(request, publicOrigin) && csrf.verify(request.cookies[cookie.name], token)
}
