// The requests most tests make, written once: the form and bearer headers, signing up, logging in,
// refreshing and greeting (GET /), each on an app (through app.inject) or on a running server
// (through fetch, given its base URL); and jose's decoders, to read a token's header and claims
// without verifying it.
import type { FastifyInstance, HTTPMethods, LightMyRequestResponse } from 'fastify'

export { decodeJwt, decodeProtectedHeader } from 'jose'

/** The password of the tests' accounts, unless a test is about passwords. */
export const PASSWORD = 'correct horse battery staple'

/**
 * An app, reached through app.inject(); or a running server, reached through fetch: its base URL
 * (`http://127.0.0.1:3000`) or anything with one (a ServerProcess).
 */
export type Target = FastifyInstance | string | { url: string }
/** What a request on `T` answers: light-my-request's response from an app, fetch's from a server. */
export type Answer<T extends Target> = T extends FastifyInstance ? LightMyRequestResponse : Response

export const form: Readonly<{ 'content-type': string }> = Object.freeze({
  'content-type': 'application/x-www-form-urlencoded',
})

export const bearer = (token: string) => ({ authorization: `Bearer ${token}` })

/** The body of a 200 from POST /auth/token (RFC 6749 §5.1). */
export interface TokenPair {
  access_token: string
  refresh_token: string
  token_type: 'bearer'
  expires_in: number
}

export interface RequestOptions {
  /** Extra headers (a user agent, a device cookie, an Origin). */
  headers?: Record<string, string>
  /** On an app only: the client's address (light-my-request's is 127.0.0.1). */
  remoteAddress?: string
}

interface Request extends RequestOptions {
  method: HTTPMethods
  path: string
  /** An object is sent as JSON, a string as it is. */
  payload?: string | object
}

function send<T extends Target>(on: T, { method, path, headers = {}, payload, remoteAddress }: Request) {
  const json = typeof payload === 'object'
  const allHeaders = { ...(json ? { 'content-type': 'application/json' } : {}), ...headers }
  const body = json ? JSON.stringify(payload) : payload
  const answer =
    typeof on === 'object' && 'inject' in on
      ? on.inject({
          method,
          url: path,
          headers: allHeaders,
          ...(body === undefined ? {} : { payload: body }),
          ...(remoteAddress ? { remoteAddress } : {}),
        })
      : fetch(`${typeof on === 'string' ? on : on.url}${path}`, { method, headers: allHeaders, body })
  return answer as Promise<Answer<T>>
}

/** POST /auth/ (JSON): 201 for a new account. */
export const signUp = <T extends Target>(
  on: T,
  username: string,
  password = PASSWORD,
  options: RequestOptions = {},
) => send(on, { method: 'POST', path: '/auth/', payload: { username, password }, ...options })

/** POST /auth/token with `fields` as a form (RFC 6749 §4.3.2, §6). */
export const tokenRequest = <T extends Target>(
  on: T,
  fields: Record<string, string>,
  { headers, ...options }: RequestOptions = {},
) =>
  send(on, {
    method: 'POST',
    path: '/auth/token',
    headers: { ...form, ...headers },
    payload: new URLSearchParams(fields).toString(),
    ...options,
  })

/** A password login: 200 and a token pair. */
export const logIn = <T extends Target>(
  on: T,
  username: string,
  password = PASSWORD,
  options: RequestOptions = {},
) => tokenRequest(on, { username, password }, options)

/** A refresh (grant_type=refresh_token): 200 and a new pair. */
export const refresh = <T extends Target>(on: T, refreshToken: string, options: RequestOptions = {}) =>
  tokenRequest(on, { grant_type: 'refresh_token', refresh_token: refreshToken }, options)

/** GET / with the token: 200 and "Hello, <name> with ID: <id>!" while its session lives, else 401. */
export const greet = <T extends Target>(on: T, token: string) =>
  send(on, { method: 'GET', path: '/', headers: bearer(token) })

async function read(res: Response | LightMyRequestResponse): Promise<[status: number, body: string]> {
  return 'statusCode' in res ? [res.statusCode, res.body] : [res.status, await res.text()]
}

/** The token pair of a login or refresh; anything but a 200 throws, with the answer. */
export async function pairOf(res: Response | LightMyRequestResponse): Promise<TokenPair> {
  const [status, body] = await read(res)
  if (status !== 200) throw new Error(`expected a token pair, got ${status} ${body}`)
  return JSON.parse(body) as TokenPair
}

/** Signs up (expecting 201) and logs in (expecting 200): the new account's token pair. */
export async function account(on: Target, username: string, password = PASSWORD): Promise<TokenPair> {
  const [status, body] = await read(await signUp(on, username, password))
  if (status !== 201) throw new Error(`sign-up of ${username}: ${status} ${body}`)
  return pairOf(await logIn(on, username, password))
}

/** Signs up (whatever the answer: the account may exist already) and logs in: the access token. */
export async function tokenFor(on: Target, username: string, password = PASSWORD): Promise<string> {
  await read(await signUp(on, username, password))
  return (await pairOf(await logIn(on, username, password))).access_token
}
