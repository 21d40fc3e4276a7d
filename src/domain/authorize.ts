// The authorization endpoint's rules (issue 12 items 2 and 3): what an authorization request may
// ask, and what comes next for the browser that sent it: an error page, an error sent back to
// the client, the login page, the consent page, or a code.
// Sources: OpenID Connect Core 1.0 §3.1.2 (the authorization endpoint), RFC 6749 §3.1 and §4.1
// (OAuth 2.0), RFC 7636 (PKCE), RFC 9700 (the OAuth 2.0 Security BCP), RFC 9207 (iss).
//
// Two things travel through the browser and come back, and both are signed (HMAC-SHA-256 under
// a secret kept in the database) rather than trusted:
// - the login round trip of a request that asks for a fresh login (prompt=login, max_age): the
//   path the login page sends the browser back to carries the time of the request, signed with
//   the request itself, so the login that satisfies it is one made after it (and no loop follows);
// - the consent page's form: the request it answers, signed and bound to the browser session
//   that saw it and to a short expiry, so a crafted post can change neither the client, the
//   redirect URI, the scope nor the PKCE challenge, nor stand for a consent page never shown.
import { createHmac } from 'node:crypto'
import type { Clock } from '../lib/clock.js'
import { constantTimeEqual } from '../lib/crypto.js'
import { type AuthorizationCodeService, isS256Challenge, PKCE_METHOD } from './authorization-codes.js'
import type { BrowserSession } from './browser-sessions.js'
import { type Client, type ClientService, parseScope } from './clients.js'
import type { ConsentFrom, ConsentService } from './consents.js'

/**
 * The longest request (its query string) taken: the login page's return_to holds at most 2048
 * characters (http/pages/return-to.ts), and the path back to this endpoint needs the rest.
 */
export const MAX_REQUEST_LENGTH = 1900
/** How long after a request the login it asked for may come: the user types a password meanwhile. */
export const LOGIN_ROUND_TRIP_MS = 10 * 60_000
/** How long a consent page may be answered; a page left open longer is shown again. */
export const CONSENT_TTL_MS = 10 * 60_000

/** OpenID Connect Core 1.0 §3.1.2.1: the prompt values; select_account is taken as login. */
export const PROMPT_VALUES = ['none', 'login', 'consent', 'select_account'] as const

/** The error codes an authorization response carries (RFC 6749 §4.1.2.1, OIDC Core §3.1.2.6). */
export type AuthorizeError =
  | 'invalid_request'
  | 'unauthorized_client'
  | 'access_denied'
  | 'unsupported_response_type'
  | 'invalid_scope'
  | 'login_required'
  | 'consent_required'
  | 'request_not_supported'
  | 'request_uri_not_supported'
  | 'registration_not_supported'

/** A request the endpoint takes: every parameter checked. */
export interface AuthorizationRequest {
  client: Client
  /** One of the client's registered redirect URIs, exactly as sent. */
  redirectUri: string
  state: string | undefined
  scopes: string[]
  nonce: string | undefined
  codeChallenge: string
  prompt: { none: boolean; login: boolean; consent: boolean }
  maxAgeSeconds: number | undefined
  loginHint: string | undefined
  /** The request as a query string, normalised as a browser sends it. */
  query: string
}

export type AuthorizeAnswer =
  /** RFC 6749 §4.1.2.1: no client or no redirect URI to trust, so nothing is sent anywhere. */
  | { kind: 'error_page'; problem: string }
  /** To the client's redirect URI: a code or an error, with state and iss. */
  | { kind: 'redirect'; location: string }
  /** The login page, then back to `returnTo` (a path on this server). */
  | { kind: 'login'; returnTo: string; loginHint: string | undefined }
  /** The consent page; `ticket` goes in its form, and comes back to decide(). */
  | { kind: 'consent'; client: Client; scopes: string[]; ticket: string }

export interface AuthorizeService {
  /**
   * GET /authorize (a POST arrives as its query, OIDC Core §3.1.2.1). `session`: the browser's
   * live browser session, if any. `loginMarker`: the signed time the login round trip carries.
   */
  authorize(
    query: string,
    session: BrowserSession | undefined,
    loginMarker?: string,
  ): Promise<AuthorizeAnswer>
  /** The consent page's answer: `ticket` as the page carried it. */
  decide(
    ticket: string | undefined,
    decision: 'allow' | 'deny',
    session: BrowserSession | undefined,
    from: ConsentFrom,
  ): Promise<AuthorizeAnswer>
}

export interface AuthorizeDeps {
  clients: Pick<ClientService, 'show'>
  codes: Pick<AuthorizationCodeService, 'issue'>
  consents: Pick<ConsentService, 'covers' | 'grant'>
  clock: Clock
  /** The deployment's issuer now: the `iss` of every response (RFC 9207 §2). */
  issuer: () => string
  /** The HMAC key for what travels through the browser (32 random bytes or more). */
  secret: string
}

// A base no real request has, to read a query as a browser would send it.
const BASE = 'https://authgate.invalid'
const MAX_CLIENT_ID = 256
const MAX_AGE = /^[0-9]{1,10}$/
// RFC 6749 §4.1.2.1: error_description = 1*( %x20-21 / %x23-5B / %x5D-7E ). Ours are written so.
const DESCRIPTION = /^[\x20-\x21\x23-\x5b\x5d-\x7e]+$/

/** `query` as the WHATWG URL parser serialises it: the form the login page sends back (return-to.ts). */
export function normaliseQuery(query: string): string {
  return new URL(`/?${query}`, BASE).search.slice(1)
}

/** `uri` with `params` added to its query, keeping the query it has (RFC 6749 §3.1.2: "MUST be retained"). */
export function withParams(uri: string, params: Record<string, string | undefined>): string {
  const added = new URLSearchParams()
  for (const [name, value] of Object.entries(params)) if (value !== undefined) added.append(name, value)
  // Appended as text: re-serialising the registered query through URLSearchParams would change it.
  const separator = !uri.includes('?') ? '?' : uri.endsWith('?') || uri.endsWith('&') ? '' : '&'
  return `${uri}${separator}${added}`
}

type Checked = { request: AuthorizationRequest } | { answer: AuthorizeAnswer }

export function createAuthorizeService(deps: AuthorizeDeps): AuthorizeService {
  const { clients, codes, consents, clock, issuer, secret } = deps
  const mac = (purpose: string, ...parts: string[]) =>
    createHmac('sha256', secret)
      .update([`authgate-${purpose}-v1`, ...parts].join('!'))
      .digest('base64url')

  /** RFC 6749 §4.1.2.1 and RFC 9207 §2: an error sent back to the client, with state and iss. */
  function error(
    to: { redirectUri: string; state: string | undefined },
    code: AuthorizeError,
    description: string,
  ): AuthorizeAnswer {
    if (!DESCRIPTION.test(description)) throw new Error(`error_description out of range: ${description}`)
    return {
      kind: 'redirect',
      location: withParams(to.redirectUri, {
        error: code,
        error_description: description,
        state: to.state,
        iss: issuer(),
      }),
    }
  }

  const page = (problem: string): Checked => ({ answer: { kind: 'error_page', problem } })

  /** Every check of the request, in the order that decides where an error may go. */
  async function check(rawQuery: string): Promise<Checked> {
    const query = normaliseQuery(rawQuery)
    const params = new URLSearchParams(query)
    /** RFC 6749 §3.1: a parameter without a value is as if omitted. */
    const all = (name: string) => params.getAll(name).filter((v) => v !== '')
    const one = (name: string) => all(name)[0]

    // RFC 6749 §4.1.2.1 and RFC 9700 §4.1.3: until the client and its redirect URI are known
    // to match exactly, nothing is sent to the URI: an error page, never a redirect.
    const clientIds = all('client_id')
    if (clientIds.length === 0)
      return page('The request does not say which application it is from (client_id).')
    if (clientIds.length > 1) return page('The request names more than one application (client_id).')
    const clientId = clientIds[0] as string
    const client = clientId.length > MAX_CLIENT_ID ? undefined : await clients.show(clientId)
    if (!client) return page('The request names an application that is not registered here (client_id).')
    const redirectUris = all('redirect_uri')
    // OpenID Connect Core §3.1.2.1: redirect_uri is required (RFC 6749 would let a client with one
    // registered URI leave it out).
    if (redirectUris.length !== 1)
      return page('The request must name exactly one address to return to (redirect_uri).')
    const redirectUri = redirectUris[0] as string
    // RFC 9700 §4.1.3: exact string matching, no normalisation: case, a trailing slash, a port
    // spelled out, a query or a fragment all make another URI.
    if (!client.redirectUris.includes(redirectUri))
      return page('The address to return to (redirect_uri) is not one registered for this application.')

    const states = all('state')
    const to = { redirectUri, state: states.length === 1 ? states[0] : undefined }
    const fail = (code: AuthorizeError, description: string): Checked => ({
      answer: error(to, code, description),
    })

    if (query.length > MAX_REQUEST_LENGTH)
      return fail('invalid_request', `The request is longer than ${MAX_REQUEST_LENGTH} characters`)
    // OpenID Connect Core §6 (request objects) and §3.1.2.6 (dynamic registration): not offered.
    if (one('request') !== undefined)
      return fail('request_not_supported', 'Request objects (request) are not supported')
    if (one('request_uri') !== undefined)
      return fail('request_uri_not_supported', 'request_uri is not supported')
    if (one('registration') !== undefined)
      return fail('registration_not_supported', 'The registration parameter is not supported')
    // RFC 6749 §3.1: "Request and response parameters MUST NOT be included more than once."
    const repeated = [...new Set(params.keys())].find((name) => all(name).length > 1)
    if (repeated !== undefined) return fail('invalid_request', `${repeated} is given more than once`)

    // RFC 9700 §2.1.2 and issue 12: the code flow only, no implicit or hybrid response.
    const responseType = one('response_type')
    if (responseType === undefined) return fail('invalid_request', 'response_type is required')
    if (responseType !== 'code')
      return fail('unsupported_response_type', 'Only response_type=code is supported')
    const responseMode = one('response_mode')
    if (responseMode !== undefined && responseMode !== 'query')
      return fail('invalid_request', 'Only response_mode=query is supported')
    if (!client.grantTypes.includes('authorization_code'))
      return fail('unauthorized_client', 'This client may not use the authorization code grant')

    // RFC 9700 §2.1.1: PKCE for every client, public or not; S256 only (no method means plain,
    // RFC 7636 §4.3, and plain is refused).
    const codeChallenge = one('code_challenge')
    if (codeChallenge === undefined)
      return fail('invalid_request', 'code_challenge is required (PKCE, RFC 7636; RFC 9700 section 2.1.1)')
    if (one('code_challenge_method') !== PKCE_METHOD)
      return fail('invalid_request', 'code_challenge_method must be S256 (plain is not supported)')
    if (!isS256Challenge(codeChallenge))
      return fail(
        'invalid_request',
        'code_challenge must be the BASE64URL of a SHA-256 (RFC 7636 section 4.2)',
      )

    // RFC 6749 §3.3: no scope is an invalid_scope here (there is no default to fall back on);
    // openid is not required: a request without it is plain OAuth, and gets no ID token.
    const scope = one('scope')
    if (scope === undefined) return fail('invalid_scope', 'scope is required')
    const parsed = parseScope(scope)
    if ('problem' in parsed) return fail('invalid_scope', 'The scope is not a list of scope tokens')
    const notAllowed = parsed.scopes.find((s) => !client.scopes.includes(s))
    if (notAllowed !== undefined)
      return fail('invalid_scope', `The scope ${notAllowed} is not one this client may ask for`)

    // OpenID Connect Core §3.1.2.1: none must stand alone; unknown values are refused rather
    // than guessed at. select_account: one account per browser session here, so choosing one is
    // signing in again, and the login page is shown.
    const prompts = (one('prompt') ?? '').split(' ').filter((p) => p !== '')
    const unknown = prompts.find((p) => !(PROMPT_VALUES as readonly string[]).includes(p))
    if (unknown !== undefined) return fail('invalid_request', `prompt=${unknown} is not supported`)
    const none = prompts.includes('none')
    if (none && prompts.length > 1)
      return fail('invalid_request', 'prompt=none cannot be combined with other values')
    const maxAge = one('max_age')
    if (maxAge !== undefined && !MAX_AGE.test(maxAge))
      return fail('invalid_request', 'max_age must be a number of seconds')

    // Ignored, as OIDC Core §3.1.2.1 allows: display, ui_locales, claims_locales, acr_values,
    // id_token_hint (no ID token is checked here), claims.
    return {
      request: {
        client,
        redirectUri,
        state: to.state,
        scopes: parsed.scopes,
        nonce: one('nonce'),
        codeChallenge,
        prompt: {
          none,
          login: prompts.includes('login') || prompts.includes('select_account'),
          consent: prompts.includes('consent'),
        },
        maxAgeSeconds: maxAge === undefined ? undefined : Number(maxAge),
        loginHint: one('login_hint'),
        query,
      },
    }
  }

  /** The path the login page sends the browser back to, with the request's time signed. */
  function loginRoundTrip(request: AuthorizationRequest): string {
    const since = String(clock.now())
    return `/authorize/login/${since}.${mac('login', since, request.query)}?${request.query}`
  }

  /** When the login round trip of this request began, if `marker` is its own and recent. */
  function loginSince(request: AuthorizationRequest, marker: string | undefined): number | undefined {
    const [since, tag] = marker?.split('.') ?? []
    if (since === undefined || tag === undefined || !/^[0-9]{1,16}$/.test(since)) return undefined
    if (!constantTimeEqual(tag, mac('login', since, request.query))) return undefined
    const at = Number(since)
    const now = clock.now()
    return at <= now && now - at <= LOGIN_ROUND_TRIP_MS ? at : undefined
  }

  /**
   * OpenID Connect Core §3.1.2.1: whether the browser session's login is fresh enough. prompt=login
   * asks for one made after the request (the login page's round trip); max_age for one at most
   * that many seconds old, or made for this request.
   */
  function freshEnough(request: AuthorizationRequest, session: BrowserSession, marker: string | undefined) {
    const since = loginSince(request, marker)
    const madeForThis = since !== undefined && session.authTime >= since
    if (request.prompt.login) return madeForThis
    if (request.maxAgeSeconds === undefined) return true
    return madeForThis || clock.now() - session.authTime <= request.maxAgeSeconds * 1000
  }

  async function issueCode(request: AuthorizationRequest, session: BrowserSession): Promise<AuthorizeAnswer> {
    const code = await codes.issue({
      clientId: request.client.clientId,
      userId: session.userId,
      redirectUri: request.redirectUri,
      scope: request.scopes.join(' '),
      codeChallenge: request.codeChallenge,
      codeChallengeMethod: PKCE_METHOD,
      nonce: request.nonce,
      authTime: session.authTime,
      amr: session.amr,
      browserSessionId: session.id,
    })
    // RFC 6749 §4.1.2, RFC 9207 §2: the code, the state as sent, and who issued it.
    return {
      kind: 'redirect',
      location: withParams(request.redirectUri, { code, state: request.state, iss: issuer() }),
    }
  }

  /** The consent page's ticket: the request and the browser session it was shown to, signed, until when. */
  function ticketFor(request: AuthorizationRequest, session: BrowserSession): string {
    const until = String(clock.now() + CONSENT_TTL_MS)
    const query = Buffer.from(request.query).toString('base64url')
    return `${until}.${session.id}.${query}.${mac('consent', until, session.id, query)}`
  }

  /** The request a ticket carries, if it is ours, unexpired and shown to this browser session. */
  function ticketRequest(
    ticket: string | undefined,
    session: BrowserSession | undefined,
  ): string | undefined {
    const [until, sessionId, query, tag, ...more] = ticket?.split('.') ?? []
    if (until === undefined || sessionId === undefined || query === undefined || tag === undefined)
      return undefined
    if (more.length > 0 || !/^[0-9]{1,16}$/.test(until)) return undefined
    if (!constantTimeEqual(tag, mac('consent', until, sessionId, query))) return undefined
    if (session === undefined || session.id !== sessionId || clock.now() >= Number(until)) return undefined
    return Buffer.from(query, 'base64url').toString()
  }

  return {
    async authorize(rawQuery, session, marker) {
      const checked = await check(rawQuery)
      if ('answer' in checked) return checked.answer
      const { request } = checked
      const to = { redirectUri: request.redirectUri, state: request.state }
      if (session === undefined || !freshEnough(request, session, marker)) {
        // OIDC Core §3.1.2.6: prompt=none shows no page; the client learns a login is needed.
        if (request.prompt.none) return error(to, 'login_required', 'The user is not signed in')
        const fresh = request.prompt.login || request.maxAgeSeconds !== undefined
        return {
          kind: 'login',
          returnTo: fresh ? loginRoundTrip(request) : `/authorize?${request.query}`,
          loginHint: request.loginHint,
        }
      }
      // Issue 12 item 1: first-party clients skip the consent page, unless the request asks for
      // it (prompt=consent, OIDC Core §3.1.2.1); others are asked once per scope, then remembered.
      const asked =
        request.prompt.consent ||
        (!request.client.firstParty &&
          !(await consents.covers(session.userId, request.client.clientId, request.scopes)))
      if (!asked) return issueCode(request, session)
      if (request.prompt.none) return error(to, 'consent_required', 'The user has not allowed this client')
      return {
        kind: 'consent',
        client: request.client,
        scopes: request.scopes,
        ticket: ticketFor(request, session),
      }
    },

    async decide(ticket, decision, session, from) {
      const query = ticketRequest(ticket, session)
      if (query === undefined || session === undefined)
        return {
          kind: 'error_page',
          problem:
            'This consent form has expired, or was not shown to this browser. Go back to the application and sign in again.',
        }
      // Checked again: the client, its redirect URIs and its scopes as they are now.
      const checked = await check(query)
      if ('answer' in checked) return checked.answer
      const { request } = checked
      if (decision === 'deny') return error(request, 'access_denied', 'The user did not allow this client')
      await consents.grant(session.userId, request.client.clientId, request.scopes, from)
      return issueCode(request, session)
    },
  }
}
