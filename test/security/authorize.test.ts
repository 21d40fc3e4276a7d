// The authorization endpoint and the consent page under attack, through app.inject on both
// dialects: a redirect URI that is not registered exactly is an error page and never a redirect;
// every other error goes back with state and iss; PKCE is required, S256 only; prompt=none never
// shows a page; a code is bound to what was asked and who signed in; a consent is remembered per
// user and client and withdrawn; the consent page cannot be skipped, altered or forged.
import type { LightMyRequestResponse } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { servicesOf } from '../../src/app.js'
import { CONSENT_TTL_MS, LOGIN_ROUND_TRIP_MS, MAX_REQUEST_LENGTH } from '../../src/domain/authorize.js'
import type { Client } from '../../src/domain/clients.js'
import { PAGE_HEADERS } from '../../src/http/plugins/security.js'
import { frozenClock } from '../../src/lib/clock.js'
import { sha256Hex } from '../../src/lib/crypto.js'
import type { Services } from '../../src/services.js'
import { createClientsRepository } from '../../src/storage/clients.repository.js'
import { createDatabase } from '../../src/storage/database.js'
import { auditWritten, buildTestApp, inspect, PASSWORD, type TestApp } from '../helpers/app.js'
import { CHALLENGE, VERIFIER } from '../helpers/authorization-codes.js'
import {
  type Browser,
  consentForm,
  FORM,
  get,
  params,
  postConsent,
  REDIRECT,
  STATE,
  sentBack,
  signIn,
} from '../helpers/authorize.js'
import { bearer, logIn, pairOf, signUp } from '../helpers/http.js'

const OPERATOR = { actor: 'cli', osUser: 'authorize-test' } as const

/** The pages' headers, all of them: frame-ancestors 'none' and X-Frame-Options DENY among them. */
function expectPageHeaders(res: LightMyRequestResponse) {
  expect(res.headers['content-type']).toBe('text/html; charset=utf-8')
  expect(PAGE_HEADERS['content-security-policy']).toContain("frame-ancestors 'none'")
  expect(PAGE_HEADERS['x-frame-options']).toBe('DENY')
  for (const [name, value] of Object.entries(PAGE_HEADERS))
    expect([name, res.headers[name]]).toEqual([name, value])
}

describe('the authorization endpoint', () => {
  let t: TestApp
  let services: Services
  let issuer: string
  let thirdParty: Client
  let firstParty: Client
  let alice: Browser
  let aliceId: number

  const newClient = async (name: string, over: { firstParty?: boolean; scope?: string } = {}) =>
    (await services.clients.create(OPERATOR, { name, redirectUris: [REDIRECT], public: true, ...over }))
      .client

  /** DELETE /auth/consents/{the third-party client} with `token`. */
  const withdraw = (token: string) =>
    t.app.inject({ method: 'DELETE', url: `/auth/consents/${thirdParty.clientId}`, headers: bearer(token) })

  beforeAll(async () => {
    t = await buildTestApp()
    services = servicesOf(t.app) as Services
    issuer = services.issuers.current()
    thirdParty = await newClient('Third <b>Party</b> & Co', {
      scope: 'openid profile offline_access reports:read',
    })
    firstParty = await newClient('Our Dashboard', { firstParty: true })
    await signUp(t.app, 'alice')
    await signUp(t.app, 'bob')
    alice = (await signIn(t.app, 'alice')).browser
    const row = await inspect(t.dbUrl)
      .selectFrom('users')
      .select('id')
      .where('username', '=', 'alice')
      .executeTakeFirst()
    aliceId = Number(row?.id)
  })

  afterAll(async () => {
    await t.close()
  })

  describe('redirect URIs are matched exactly (RFC 9700 §4.1.3): anything else is an error page', () => {
    const MISMATCHED: [string, string | undefined][] = [
      ['a prefix of it', 'https://app.example.com/c'],
      ['it with a suffix', 'https://app.example.com/cb2'],
      ['another host ending like it', 'https://evilapp.example.com/cb'],
      ['another case (host)', 'https://APP.example.com/cb'],
      ['another case (path)', 'https://app.example.com/CB'],
      ['an extra path', 'https://app.example.com/cb/more'],
      ['a dot segment', 'https://app.example.com/x/../cb'],
      ['a trailing slash', 'https://app.example.com/cb/'],
      ['a fragment', 'https://app.example.com/cb#frag'],
      ['an empty fragment', 'https://app.example.com/cb#'],
      ['userinfo before the host', 'https://evil.example@app.example.com/cb'],
      ['the host as userinfo', 'https://app.example.com@evil.example/cb'],
      ['another port', 'https://app.example.com:8443/cb'],
      ['the default port spelled out', 'https://app.example.com:443/cb'],
      ['a query added', 'https://app.example.com/cb?next=/admin'],
      ['an empty query added', 'https://app.example.com/cb?'],
      ['http instead of https', 'http://app.example.com/cb'],
      ['percent-encoding', 'https://app.example.com/%63b'],
      ['none at all', undefined],
    ]

    it.each(MISMATCHED)('%s: 400, the page headers, no Location, nothing issued', async (_name, uri) => {
      const before = await codeCount(t.dbUrl)
      const res = await get(t.app, `/authorize?${params(thirdParty, { redirect_uri: uri })}`, alice)
      expect(res.statusCode).toBe(400)
      expect(res.headers.location).toBeUndefined()
      expectPageHeaders(res)
      expect(res.body).toContain('<h1>This sign-in request cannot be used</h1>')
      expect(res.body).not.toContain('evil.example')
      expect(await codeCount(t.dbUrl)).toBe(before)
    })

    it.each([
      ['an unknown client_id', { client_id: 'no-such-client' }],
      ['no client_id', { client_id: undefined }],
      ['a client_id longer than any', { client_id: 'x'.repeat(300) }],
    ])('%s is an error page too, even with a valid redirect_uri', async (_name, over) => {
      const res = await get(t.app, `/authorize?${params(thirdParty, over)}`, alice)
      expect([res.statusCode, res.headers.location]).toEqual([400, undefined])
      expectPageHeaders(res)
    })

    it('a repeated client_id or redirect_uri is an error page', async () => {
      const twice = (name: string, value: string) =>
        `/authorize?${params(thirdParty)}&${name}=${encodeURIComponent(value)}`
      for (const url of [twice('client_id', firstParty.clientId), twice('redirect_uri', REDIRECT)]) {
        const res = await get(t.app, url, alice)
        expect([res.statusCode, res.headers.location]).toEqual([400, undefined])
      }
    })

    it('the control: the registered URI, exactly, is answered with a redirect to it', async () => {
      const res = await get(t.app, `/authorize?${params(firstParty)}`, alice)
      expect(sentBack(res).get('code')).toEqual(expect.any(String))
    })
  })

  describe('every other error goes back to the client with error, error_description, state and iss (RFC 9207)', () => {
    const ERRORS: [string, Record<string, string | undefined>, string][] = [
      ['no response_type', { response_type: undefined }, 'invalid_request'],
      ['response_type=token (implicit)', { response_type: 'token' }, 'unsupported_response_type'],
      [
        'response_type=code id_token (hybrid)',
        { response_type: 'code id_token' },
        'unsupported_response_type',
      ],
      ['response_mode=fragment', { response_mode: 'fragment' }, 'invalid_request'],
      ['no code_challenge (PKCE)', { code_challenge: undefined }, 'invalid_request'],
      [
        'no code_challenge_method (which means plain)',
        { code_challenge_method: undefined },
        'invalid_request',
      ],
      [
        'code_challenge_method=plain',
        { code_challenge_method: 'plain', code_challenge: VERIFIER },
        'invalid_request',
      ],
      ['a code_challenge that is no SHA-256', { code_challenge: 'too-short' }, 'invalid_request'],
      ['no scope', { scope: undefined }, 'invalid_scope'],
      ['a scope the client may not ask for', { scope: 'openid admin' }, 'invalid_scope'],
      ['a scope that is no scope token', { scope: 'openid "quoted"' }, 'invalid_scope'],
      ['a request object', { request: 'eyJhbGciOiJub25lIn0.e30.' }, 'request_not_supported'],
      ['a request_uri', { request_uri: 'https://app.example.com/req.jwt' }, 'request_uri_not_supported'],
      ['registration', { registration: '{}' }, 'registration_not_supported'],
      ['prompt=none with login', { prompt: 'none login' }, 'invalid_request'],
      ['an unknown prompt', { prompt: 'sideways' }, 'invalid_request'],
      ['a negative max_age', { max_age: '-1' }, 'invalid_request'],
      ['a max_age that is no number', { max_age: 'soon' }, 'invalid_request'],
      [
        'a request too long to come back from the login page',
        { nonce: 'n'.repeat(MAX_REQUEST_LENGTH) },
        'invalid_request',
      ],
    ]

    it.each(ERRORS.map(([name, over, error]) => ({ name, over, error })))(
      '$name: $error',
      async ({ over, error }) => {
        const before = await codeCount(t.dbUrl)
        // Signed in or not, the request is checked first.
        for (const browser of [alice, undefined]) {
          const res = await get(t.app, `/authorize?${params(thirdParty, over)}`, browser)
          const back = sentBack(res)
          expect(back.get('error')).toBe(error)
          expect(back.get('error_description')).toMatch(/^[\x20-\x21\x23-\x5b\x5d-\x7e]+$/)
          expect(back.get('state')).toBe(STATE)
          expect(back.get('iss')).toBe(issuer)
          expect(back.has('code')).toBe(false)
        }
        expect(await codeCount(t.dbUrl)).toBe(before)
      },
    )

    it('leaves state out when the request had none, and keeps the registered URI as it is', async () => {
      const res = await get(
        t.app,
        `/authorize?${params(thirdParty, { state: undefined, response_type: 'token' })}`,
      )
      expect(res.headers.location).toBe(
        `${REDIRECT}?error=unsupported_response_type&error_description=Only+response_type%3Dcode+is+supported&iss=${encodeURIComponent(issuer)}`,
      )
    })

    it('a repeated parameter is an invalid_request (RFC 6749 §3.1), a repeated state sent back as none', async () => {
      const scope = sentBack(await get(t.app, `/authorize?${params(thirdParty)}&scope=openid`, alice))
      expect([scope.get('error'), scope.get('state')]).toEqual(['invalid_request', STATE])
      const state = sentBack(await get(t.app, `/authorize?${params(thirdParty)}&state=other`, alice))
      expect([state.get('error'), state.has('state')]).toEqual(['invalid_request', false])
    })

    it('a client not registered for the code grant: unauthorized_client', async () => {
      // Stored directly: the registry refuses redirect URIs to a client without the code grant.
      const db = createDatabase(t.dbUrl)
      try {
        await createClientsRepository(db).insert({
          ...thirdParty,
          clientId: 'machine-with-uri',
          grantTypes: ['client_credentials'],
          public: false,
          secretHash: sha256Hex('secret'),
        })
      } finally {
        await db.destroy()
      }
      const back = sentBack(
        await get(t.app, `/authorize?${params(thirdParty, { client_id: 'machine-with-uri' })}`, alice),
      )
      expect([back.get('error'), back.get('state'), back.get('iss')]).toEqual([
        'unauthorized_client',
        STATE,
        issuer,
      ])
    })

    it('prompt=none: login_required without a browser session, consent_required without a consent', async () => {
      const out = sentBack(await get(t.app, `/authorize?${params(thirdParty, { prompt: 'none' })}`))
      expect([out.get('error'), out.get('state'), out.get('iss')]).toEqual(['login_required', STATE, issuer])
      // An ended or made-up session is no session.
      const madeUp = { cookie: 'authgate_session=not-a-session' }
      expect(
        sentBack(await get(t.app, `/authorize?${params(thirdParty, { prompt: 'none' })}`, madeUp)).get(
          'error',
        ),
      ).toBe('login_required')
      const bob = (await signIn(t.app, 'bob')).browser
      const noConsent = sentBack(
        await get(t.app, `/authorize?${params(thirdParty, { prompt: 'none' })}`, bob),
      )
      expect([noConsent.get('error'), noConsent.get('state'), noConsent.get('iss')]).toEqual([
        'consent_required',
        STATE,
        issuer,
      ])
      // The control: a first-party client needs no consent, so prompt=none gets its code.
      expect(
        sentBack(await get(t.app, `/authorize?${params(firstParty, { prompt: 'none' })}`, bob)).get('code'),
      ).toEqual(expect.any(String))
    })
  })

  describe('signing in', () => {
    it('not signed in: 303 to the login page, which sends the browser back to the very same request', async () => {
      const query = params(firstParty, { login_hint: 'alice<script>' })
      const url = `/authorize?${query}`
      const res = await get(t.app, url)
      expect(res.statusCode).toBe(303)
      const login = new URL(res.headers.location as string, 'http://localhost')
      expect(login.pathname).toBe('/login')
      expect(login.searchParams.get('return_to')).toBe(url)
      expect(login.searchParams.get('login_hint')).toBe('alice<script>')
      // The login page keeps it in the form, and starts with the hint, escaped.
      const page = await get(t.app, res.headers.location as string)
      expect(page.body).toContain(`name="return_to" value="${url.replaceAll('&', '&amp;')}"`)
      expect(page.body).toContain('value="alice&lt;script&gt;"')
      const { browser, location } = await signIn(t.app, 'alice', url)
      // Byte for byte: the state's '+', '%2B', '%26' and 'é' come back as the client sent them.
      expect(location).toBe(url)
      const back = sentBack(await get(t.app, location as string, browser))
      expect([back.get('state'), back.get('iss')]).toEqual([STATE, issuer])
    })

    it('a POST (OIDC Core §3.1.2.1) is sent on to the GET with the same parameters', async () => {
      const query = params(firstParty)
      const res = await t.app.inject({
        method: 'POST',
        url: '/authorize',
        headers: { 'content-type': FORM },
        payload: query,
      })
      expect(res.statusCode).toBe(303)
      expect(res.headers.location).toBe(`/authorize?${query}`)
    })

    it('issues a code bound to the client, the redirect URI, the challenge, the nonce and the browser session', async () => {
      const res = await get(t.app, `/authorize?${params(firstParty, { scope: 'openid' })}`, alice)
      const back = sentBack(res)
      expect([...back.keys()]).toEqual(['code', 'state', 'iss'])
      expect([back.get('state'), back.get('iss')]).toEqual([STATE, issuer])
      const code = back.get('code') as string
      const row = await inspect(t.dbUrl)
        .selectFrom('authgate_authorization_codes')
        .selectAll()
        .where('code_hash', '=', sha256Hex(code))
        .executeTakeFirstOrThrow()
      const session = await services.browserSessions.resolve(alice.cookie.split('authgate_session=')[1])
      expect(row).toMatchObject({
        client_id: firstParty.clientId,
        user_id: aliceId,
        redirect_uri: REDIRECT,
        scope: 'openid',
        code_challenge: CHALLENGE,
        nonce: 'n-0S6_WzA2Mj',
        amr: '["pwd"]',
        browser_session_id: session?.id,
        auth_time: session?.authTime,
        consumed_at: null,
      })
      expect(Number(row.expires_at) - Number(row.created_at)).toBe(60_000)
      // Redeemed through the domain: the PKCE verifier is what proves it.
      await expect(
        services.authorizationCodes.redeem({
          code,
          clientId: firstParty.clientId,
          redirectUri: REDIRECT,
          codeVerifier: VERIFIER,
        }),
      ).resolves.toMatchObject({
        userId: aliceId,
        scope: 'openid',
        nonce: 'n-0S6_WzA2Mj',
        browserSessionId: session?.id,
      })
    })

    it('prompt=login asks for the password again, even signed in, and takes only a login made after the request', async () => {
      const url = `/authorize?${params(firstParty, { prompt: 'login' })}`
      const requested = Date.now()
      const res = await get(t.app, url, alice)
      const login = new URL(res.headers.location as string, 'http://localhost')
      expect(login.pathname).toBe('/login')
      const returnTo = login.searchParams.get('return_to') as string
      expect(returnTo).toMatch(/^\/authorize\/login\/[0-9]+\.[A-Za-z0-9_-]{43}\?/)
      // The client's query comes back unchanged after the marker.
      expect(returnTo.slice(returnTo.indexOf('?'))).toBe(url.slice(url.indexOf('?')))
      // The old browser session, sent back there, is not enough: the login page again.
      expect(
        new URL((await get(t.app, returnTo, alice)).headers.location as string, 'http://x').pathname,
      ).toBe('/login')
      // A marker that is not this request's, or tampered with, is worth nothing either.
      const tampered = returnTo.replace(
        /\/login\/([0-9]+)\./,
        (_m, since) => `/login/${Number(since) - 60_000}.`,
      )
      const fresh = await signIn(t.app, 'alice', returnTo)
      expect(fresh.location).toBe(returnTo)
      expect(
        new URL((await get(t.app, tampered, fresh.browser)).headers.location as string, 'http://x').pathname,
      ).toBe('/login')
      const code = sentBack(await get(t.app, returnTo, fresh.browser)).get('code') as string
      const row = await inspect(t.dbUrl)
        .selectFrom('authgate_authorization_codes')
        .select('auth_time')
        .where('code_hash', '=', sha256Hex(code))
        .executeTakeFirstOrThrow()
      expect(Number(row.auth_time)).toBeGreaterThanOrEqual(requested)
      // prompt=select_account is taken as login.
      const select = await get(
        t.app,
        `/authorize?${params(firstParty, { prompt: 'select_account' })}`,
        fresh.browser,
      )
      expect(new URL(select.headers.location as string, 'http://x').pathname).toBe('/login')
    })

    it('max_age: a login older than that many seconds asks for the password; a recent one does not', async () => {
      expect(
        sentBack(await get(t.app, `/authorize?${params(firstParty, { max_age: '3600' })}`, alice)).has(
          'code',
        ),
      ).toBe(true)
      const res = await get(t.app, `/authorize?${params(firstParty, { max_age: '0' })}`, alice)
      const returnTo = new URL(res.headers.location as string, 'http://x').searchParams.get(
        'return_to',
      ) as string
      expect(returnTo).toMatch(/^\/authorize\/login\//)
      // max_age=0 after a login made for it: the code, not another login (no loop).
      const fresh = await signIn(t.app, 'alice', returnTo)
      expect(sentBack(await get(t.app, returnTo, fresh.browser)).has('code')).toBe(true)
      // prompt=none with max_age exceeded: login_required.
      expect(
        sentBack(
          await get(t.app, `/authorize?${params(firstParty, { max_age: '0', prompt: 'none' })}`, alice),
        ).get('error'),
      ).toBe('login_required')
    })

    it('ignores ui_locales, display, claims_locales, acr_values, id_token_hint and claims', async () => {
      const over = {
        ui_locales: 'fr-CA fr en',
        display: 'touch',
        claims_locales: 'de',
        acr_values: 'urn:mace:incommon:iap:silver',
        id_token_hint: 'eyJ.not.checked',
        claims: '{"id_token":{"email":null}}',
      }
      expect(sentBack(await get(t.app, `/authorize?${params(firstParty, over)}`, alice)).has('code')).toBe(
        true,
      )
    })

    it('plain OAuth: a request without openid is taken (no ID token will follow)', async () => {
      expect(
        sentBack(await get(t.app, `/authorize?${params(firstParty, { scope: 'profile' })}`, alice)).has(
          'code',
        ),
      ).toBe(true)
    })
  })

  describe('consent', () => {
    it('asks a client that is not first-party, in words, with the name escaped; framing refused', async () => {
      const [carol, carolId] = await freshUser('carol')
      const res = await get(
        t.app,
        `/authorize?${params(thirdParty, { scope: 'openid profile offline_access reports:read' })}`,
        carol,
      )
      expect(res.statusCode).toBe(200)
      expectPageHeaders(res)
      expect(res.body).toContain(
        '<h1>Allow Third &lt;b&gt;Party&lt;/b&gt; &amp; Co to use your account?</h1>',
      )
      expect(res.body).not.toContain('<b>Party</b>')
      expect(res.body).toContain('<li>Confirm who you are</li>')
      expect(res.body).toContain('<li>See your username</li>')
      expect(res.body).toContain(
        '<li>Stay signed in to Third &lt;b&gt;Party&lt;/b&gt; &amp; Co (refresh tokens)</li>',
      )
      expect(res.body).toContain('<li>Use <code>reports:read</code></li>')
      expect(res.body).toContain('<button type="submit" name="consent" value="allow">Allow</button>')
      expect(res.body).toContain(
        '<button type="submit" name="consent" value="deny" class="secondary">Deny</button>',
      )
      expect(res.body).toContain('You are signed in as <strong>carol</strong>')
      // No code exists until the user answers.
      expect(await codeCount(t.dbUrl, carolId)).toBe(0)
    })

    it('deny: access_denied with state and iss, and nothing remembered', async () => {
      const [dave, daveId] = await freshUser('dave')
      const form = consentForm(await get(t.app, `/authorize?${params(thirdParty)}`, dave))
      const back = sentBack(await postConsent(t.app, dave, { ...form, consent: 'deny' }))
      expect([back.get('error'), back.get('state'), back.get('iss'), back.has('code')]).toEqual([
        'access_denied',
        STATE,
        issuer,
        false,
      ])
      expect(await consentRows(t.dbUrl)).not.toContainEqual(
        expect.objectContaining({ client_id: thirdParty.clientId, user_id: daveId }),
      )
    })

    it('allow: a code, the consent remembered per user and client (listed, audited), withdrawn with DELETE', async () => {
      const [erin, erinId] = await freshUser('erin')
      const first = consentForm(await get(t.app, `/authorize?${params(thirdParty)}`, erin))
      const back = sentBack(await postConsent(t.app, erin, { ...first, consent: 'allow' }))
      expect([back.get('state'), back.get('iss')]).toEqual([STATE, issuer])
      const row = await inspect(t.dbUrl)
        .selectFrom('authgate_authorization_codes')
        .selectAll()
        .where('code_hash', '=', sha256Hex(back.get('code') as string))
        .executeTakeFirstOrThrow()
      expect(row).toMatchObject({ client_id: thirdParty.clientId, user_id: erinId, scope: 'openid profile' })

      // Remembered: the same request, or one within its scopes, goes straight to a code.
      expect(
        sentBack(await get(t.app, `/authorize?${params(thirdParty, { scope: 'openid' })}`, erin)).has('code'),
      ).toBe(true)
      // ...but not a wider one, nor prompt=consent, nor another user.
      expect(
        (await get(t.app, `/authorize?${params(thirdParty, { scope: 'openid offline_access' })}`, erin))
          .statusCode,
      ).toBe(200)
      expect(
        (await get(t.app, `/authorize?${params(thirdParty, { prompt: 'consent' })}`, erin)).statusCode,
      ).toBe(200)
      const [frank] = await freshUser('frank')
      expect((await get(t.app, `/authorize?${params(thirdParty)}`, frank)).statusCode).toBe(200)

      const token = (await pairOf(await logIn(t.app, 'erin'))).access_token
      const listed = await t.app.inject({ url: '/auth/consents', headers: bearer(token) })
      expect(listed.statusCode).toBe(200)
      expect(listed.json()).toEqual([
        {
          client_id: thirdParty.clientId,
          client_name: 'Third <b>Party</b> & Co',
          scopes: ['openid', 'profile'],
          granted_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
        },
      ])
      // Another user's list is their own.
      const frankToken = (await pairOf(await logIn(t.app, 'frank'))).access_token
      expect((await t.app.inject({ url: '/auth/consents', headers: bearer(frankToken) })).json()).toEqual([])
      expect((await withdraw(frankToken)).statusCode).toBe(404)

      expect((await withdraw(token)).statusCode).toBe(204)
      expect((await t.app.inject({ url: '/auth/consents', headers: bearer(token) })).json()).toEqual([])
      expect(
        (await get(t.app, `/authorize?${params(thirdParty, { scope: 'openid' })}`, erin)).statusCode,
      ).toBe(200)
      expect((await withdraw(token)).statusCode).toBe(404)
      expect((await t.app.inject({ url: '/auth/consents' })).statusCode).toBe(401)

      await auditWritten(t.app)
      const events = await inspect(t.dbUrl)
        .selectFrom('authgate_audit_log')
        .select(['type', 'outcome', 'detail'])
        .where('user_id', '=', erinId)
        .where('type', 'like', 'consent.%')
        .orderBy('seq')
        .execute()
      expect(events.map((e) => [e.type, e.outcome, JSON.parse(e.detail ?? '{}')])).toEqual([
        ['consent.granted', 'success', { clientId: thirdParty.clientId, scope: 'openid profile' }],
        ['consent.withdrawn', 'success', { clientId: thirdParty.clientId, endedSessions: 0 }],
      ])
    })

    it('a second allow adds its scopes to those allowed before', async () => {
      const [gina, ginaId] = await freshUser('gina')
      const a = consentForm(await get(t.app, `/authorize?${params(thirdParty, { scope: 'openid' })}`, gina))
      sentBack(await postConsent(t.app, gina, { ...a, consent: 'allow' }))
      const b = consentForm(
        await get(t.app, `/authorize?${params(thirdParty, { scope: 'offline_access' })}`, gina),
      )
      sentBack(await postConsent(t.app, gina, { ...b, consent: 'allow' }))
      const rows = await consentRows(t.dbUrl)
      expect(rows.find((r) => r.user_id === ginaId)?.scopes).toBe('["openid","offline_access"]')
    })

    it('withdrawing a consent ends the sessions the client holds for the user', async () => {
      const [hugo] = await freshUser('hugo')
      const form = consentForm(await get(t.app, `/authorize?${params(thirdParty)}`, hugo))
      sentBack(await postConsent(t.app, hugo, { ...form, consent: 'allow' }))
      // A token session of that client (what a code exchange will start), and one of the
      // first-party password grant, which must stay.
      const session = await services.browserSessions.resolve(hugo.cookie.split('authgate_session=')[1])
      const verified = await services.users.authenticate('hugo', PASSWORD)
      if (!verified) throw new Error('hugo cannot sign in')
      const clientPair = await services.sessions.start(
        verified,
        { ip: '127.0.0.1', userAgent: null },
        {
          clientId: thirdParty.clientId,
          browserSessionId: session?.id ?? null,
          scope: 'openid profile',
          authTime: 1,
          amr: ['pwd'],
          subject: 'subject-of-hugo',
          refresh: true,
        },
      )
      const own = (await pairOf(await logIn(t.app, 'hugo'))).access_token
      expect(clientPair).toBeDefined()
      expect((await withdraw(own)).statusCode).toBe(204)
      expect(
        (await t.app.inject({ url: '/', headers: bearer(clientPair?.accessToken as string) })).statusCode,
      ).toBe(401)
      expect((await t.app.inject({ url: '/', headers: bearer(own) })).statusCode).toBe(200)
      // The browser session is AuthGate's, not the client's: it stays.
      expect(await services.browserSessions.resolve(hugo.cookie.split('authgate_session=')[1])).toBeDefined()
    })

    describe('the consent form cannot be forged, altered or skipped', () => {
      it('a crafted request in the form (another scope, redirect URI, client or challenge): an error page, no code', async () => {
        const [ivan, ivanId] = await freshUser('ivan')
        const form = consentForm(
          await get(t.app, `/authorize?${params(thirdParty, { scope: 'openid' })}`, ivan),
        )
        const [until, sid, query, tag] = form.request.split('.') as [string, string, string, string]
        const decoded = Buffer.from(query, 'base64url').toString()
        const altered = (next: string) => `${until}.${sid}.${Buffer.from(next).toString('base64url')}.${tag}`
        const crafted = [
          altered(decoded.replace('scope=openid', 'scope=openid+offline_access+reports%3Aread')),
          altered(
            decoded.replace(encodeURIComponent(REDIRECT), encodeURIComponent('https://evil.example/cb')),
          ),
          altered(decoded.replace(CHALLENGE, 'A'.repeat(43))),
          altered(decoded.replace(thirdParty.clientId, firstParty.clientId)),
          `${Number(until) + 3_600_000}.${sid}.${query}.${tag}`,
          `${until}.${sid}.${query}.${'A'.repeat(43)}`,
          form.request.slice(0, -1),
          '',
        ]
        const before = await codeCount(t.dbUrl, ivanId)
        for (const request of crafted) {
          const res = await postConsent(t.app, ivan, {
            csrf_token: form.csrf_token,
            request,
            consent: 'allow',
          })
          expect([res.statusCode, res.headers.location]).toEqual([400, undefined])
          expectPageHeaders(res)
        }
        const missing = await postConsent(t.app, ivan, { csrf_token: form.csrf_token, consent: 'allow' })
        expect([missing.statusCode, missing.headers.location]).toEqual([400, undefined])
        expect(await codeCount(t.dbUrl, ivanId)).toBe(before)
        // The control: the form as the page made it.
        expect(sentBack(await postConsent(t.app, ivan, { ...form, consent: 'allow' })).has('code')).toBe(true)
      })

      it('a form made for another browser session is refused, whoever posts it', async () => {
        const [judy] = await freshUser('judy')
        const form = consentForm(await get(t.app, `/authorize?${params(thirdParty)}`, judy))
        // Judy signs in again: the form was for the session she had.
        const again = await signIn(t.app, 'judy', undefined, judy)
        const res = await postConsent(t.app, again.browser, { ...form, consent: 'allow' })
        expect([res.statusCode, res.headers.location]).toEqual([400, undefined])
        // Another user, with the form and Judy's CSRF binding.
        const [kim] = await freshUser('kim')
        const csrfOnly = judy.cookie.split('; ')[0] as string
        const kimSession = kim.cookie.split('; ')[1] as string
        const other = await postConsent(
          t.app,
          { cookie: `${csrfOnly}; ${kimSession}` },
          { ...form, consent: 'allow' },
        )
        expect([other.statusCode, other.headers.location]).toEqual([400, undefined])
        // Nobody signed in.
        const nobody = await postConsent(t.app, { cookie: csrfOnly }, { ...form, consent: 'allow' })
        expect([nobody.statusCode, nobody.headers.location]).toEqual([400, undefined])
      })

      it('no consent without the consent page: a consent field on /authorize changes nothing', async () => {
        const [liam, liamId] = await freshUser('liam')
        const res = await t.app.inject({
          method: 'POST',
          url: '/authorize',
          headers: { 'content-type': FORM, cookie: liam.cookie },
          payload: `${params(thirdParty)}&consent=allow`,
        })
        const next = await get(t.app, res.headers.location as string, liam)
        expect(next.statusCode).toBe(200)
        expect(next.body).toContain('name="consent" value="allow"')
        expect(await codeCount(t.dbUrl, liamId)).toBe(0)
      })

      it('CSRF: no token, a wrong one, or another origin is a 403 page, and nothing happens', async () => {
        const [mia, miaId] = await freshUser('mia')
        const form = consentForm(await get(t.app, `/authorize?${params(thirdParty)}`, mia))
        const forged: [Record<string, string>, Record<string, string>][] = [
          [{ request: form.request, consent: 'allow' }, {}],
          [{ ...form, csrf_token: `${form.csrf_token.slice(0, -2)}AA`, consent: 'allow' }, {}],
          [{ ...form, consent: 'allow' }, { origin: 'https://evil.example' }],
          [{ ...form, consent: 'allow' }, { 'sec-fetch-site': 'cross-site' }],
          [{ ...form, consent: 'deny' }, { origin: 'null' }],
        ]
        for (const [fields, headers] of forged) {
          const res = await postConsent(t.app, mia, fields, headers)
          expect([res.statusCode, res.headers.location]).toEqual([403, undefined])
          expect(res.body).toContain('<h1>This form cannot be accepted</h1>')
        }
        // Without the CSRF cookie, the token is nobody's.
        const session = mia.cookie.split('; ')[1] as string
        expect(
          (await postConsent(t.app, { cookie: session }, { ...form, consent: 'allow' })).statusCode,
        ).toBe(403)
        expect(await codeCount(t.dbUrl, miaId)).toBe(0)
        expect(await consentRows(t.dbUrl)).not.toContainEqual(expect.objectContaining({ user_id: miaId }))
        // A decision that is neither allow nor deny.
        expect((await postConsent(t.app, mia, { ...form, consent: 'maybe' })).statusCode).toBe(400)
      })
    })
  })

  it('discovery advertises the endpoint and what it takes', async () => {
    const meta = (await t.app.inject({ url: '/.well-known/openid-configuration' })).json()
    expect(meta).toMatchObject({
      authorization_endpoint: `${t.config.publicUrl}/authorize`,
      response_types_supported: ['code'],
      response_modes_supported: ['query'],
      code_challenge_methods_supported: ['S256'],
      authorization_response_iss_parameter_supported: true,
      scopes_supported: ['openid', 'profile', 'offline_access'],
      prompt_values_supported: ['none', 'login', 'consent', 'select_account'],
    })
    expect(meta.claims_supported).toEqual(expect.arrayContaining(['sub', 'auth_time', 'nonce', 'sid', 'amr']))
    expect(meta).not.toHaveProperty('ui_locales_supported')
  })

  /** A new user, signed in in a browser of their own. */
  async function freshUser(name: string): Promise<[Browser, number]> {
    await signUp(t.app, name)
    const row = await inspect(t.dbUrl)
      .selectFrom('users')
      .select('id')
      .where('username', '=', name)
      .executeTakeFirst()
    return [(await signIn(t.app, name)).browser, Number(row?.id)]
  }
})

describe('what expires', () => {
  const clock = frozenClock()
  let t: TestApp
  let client: Client

  beforeAll(async () => {
    t = await buildTestApp({}, { clock })
    const services = servicesOf(t.app) as Services
    client = (
      await services.clients.create(OPERATOR, { name: 'Slow App', redirectUris: [REDIRECT], public: true })
    ).client
    await signUp(t.app, 'slow')
  })

  afterAll(async () => {
    await t.close()
  })

  it(`a consent form is good for ${CONSENT_TTL_MS / 60_000} minutes`, async () => {
    const { browser } = await signIn(t.app, 'slow')
    const form = consentForm(await get(t.app, `/authorize?${params(client)}`, browser))
    clock.advance(CONSENT_TTL_MS)
    const late = await postConsent(t.app, browser, { ...form, consent: 'allow' })
    expect([late.statusCode, late.headers.location]).toEqual([400, undefined])
    // Shown again, it can be answered.
    const again = consentForm(await get(t.app, `/authorize?${params(client)}`, browser))
    clock.advance(CONSENT_TTL_MS - 1)
    expect(sentBack(await postConsent(t.app, browser, { ...again, consent: 'allow' })).has('code')).toBe(true)
  })

  it('max_age counts from the login, and a login round trip is good for a while only', async () => {
    const { browser } = await signIn(t.app, 'slow')
    clock.advance(30_000)
    expect(
      sentBack(await get(t.app, `/authorize?${params(client, { max_age: '30' })}`, browser)).has('code'),
    ).toBe(true)
    clock.advance(1)
    const res = await get(t.app, `/authorize?${params(client, { max_age: '30' })}`, browser)
    const returnTo = new URL(res.headers.location as string, 'http://x').searchParams.get(
      'return_to',
    ) as string
    expect(returnTo).toMatch(/^\/authorize\/login\//)
    // A login after the marker went stale is not taken as the one asked for.
    clock.advance(LOGIN_ROUND_TRIP_MS + 1)
    const late = await signIn(t.app, 'slow', returnTo)
    clock.advance(31_000)
    expect(
      new URL((await get(t.app, returnTo, late.browser)).headers.location as string, 'http://x').pathname,
    ).toBe('/login')
  })
})

async function codeCount(dbUrl: string, userId?: number): Promise<number> {
  const rows = await inspect(dbUrl)
    .selectFrom('authgate_authorization_codes')
    .select('code_hash')
    .$if(userId !== undefined, (q) => q.where('user_id', '=', userId as number))
    .execute()
  return rows.length
}

const consentRows = (dbUrl: string) => inspect(dbUrl).selectFrom('authgate_consents').selectAll().execute()
