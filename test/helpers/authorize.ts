// The authorization endpoint through app.inject, as a browser would use it: the login page (its
// CSRF cookie and token), an authorization request's parameters, the consent page's form, and the
// redirect back to the client. Shared by the authorization endpoint's and the code exchange's tests.
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { expect } from 'vitest'
import type { Client } from '../../src/domain/clients.js'
import { PASSWORD } from './app.js'
import { CHALLENGE } from './authorization-codes.js'

export const FORM = 'application/x-www-form-urlencoded'
export const REDIRECT = 'https://app.example.com/cb'
export const STATE = 'st+a/te=1&x;é'

export interface Browser {
  /** The Cookie header: the CSRF binding and, once signed in, the browser session. */
  cookie: string
}

/** GETs the login page as a browser would first: its CSRF cookie and the form's token. */
export async function openForm(app: FastifyInstance, url: string, browser?: Browser) {
  const res = await app.inject({ url, ...(browser ? { headers: { cookie: browser.cookie } } : {}) })
  const set = res.cookies.find((c) => c.name === 'authgate_csrf')
  const token = /name="csrf_token" value="([^"]+)"/.exec(res.body)?.[1]
  return { res, token, cookie: set ? `authgate_csrf=${set.value}` : browser?.cookie }
}

/** Signs in through the login page: the browser's cookies, and where the login sent it. */
export async function signIn(app: FastifyInstance, username: string, returnTo?: string, browser?: Browser) {
  // Signed in already, the login page shows its form only on the way somewhere.
  const page = await openForm(app, browser ? '/login?return_to=%2Flogin' : '/login', browser)
  const csrf = page.cookie?.split('; ').find((c) => c.startsWith('authgate_csrf=')) as string
  const res = await app.inject({
    method: 'POST',
    url: '/login',
    headers: { 'content-type': FORM, cookie: csrf },
    payload: new URLSearchParams({
      csrf_token: page.token as string,
      username,
      password: PASSWORD,
      ...(returnTo ? { return_to: returnTo } : {}),
    }).toString(),
  })
  expect(res.statusCode).toBe(303)
  const session = res.cookies.find((c) => c.name === 'authgate_session')
  return {
    browser: { cookie: `${csrf}; authgate_session=${session?.value}` },
    location: res.headers.location,
  }
}

/** The parameters of a good request from `client`, with `over` changed (undefined: left out). */
export function params(client: Client, over: Record<string, string | undefined> = {}): string {
  const all: Record<string, string | undefined> = {
    response_type: 'code',
    client_id: client.clientId,
    redirect_uri: REDIRECT,
    scope: 'openid profile',
    state: STATE,
    nonce: 'n-0S6_WzA2Mj',
    code_challenge: CHALLENGE,
    code_challenge_method: 'S256',
    ...over,
  }
  const query = new URLSearchParams()
  for (const [name, value] of Object.entries(all)) if (value !== undefined) query.append(name, value)
  return query.toString()
}

export const get = (app: FastifyInstance, url: string, browser?: Browser) =>
  app.inject({ url, ...(browser ? { headers: { cookie: browser.cookie } } : {}) })

/** The response parameters of a redirect to REDIRECT. */
export function sentBack(res: LightMyRequestResponse): URLSearchParams {
  expect(res.statusCode).toBe(303)
  const location = res.headers.location as string
  expect(location.startsWith(`${REDIRECT}?`)).toBe(true)
  return new URL(location).searchParams
}

/** The consent page's form fields, as a browser would post them back. */
export function consentForm(res: LightMyRequestResponse) {
  expect(res.statusCode).toBe(200)
  expect(res.body).toContain('name="consent" value="allow"')
  return {
    csrf_token: /name="csrf_token" value="([^"]+)"/.exec(res.body)?.[1] as string,
    request: /name="request" value="([^"]+)"/.exec(res.body)?.[1] as string,
  }
}

export function postConsent(
  app: FastifyInstance,
  browser: Browser,
  fields: Record<string, string>,
  headers: Record<string, string> = {},
) {
  return app.inject({
    method: 'POST',
    url: '/consent',
    headers: { 'content-type': FORM, cookie: browser.cookie, ...headers },
    payload: new URLSearchParams(fields).toString(),
  })
}
