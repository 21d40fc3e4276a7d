// RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0) at GET and POST /logout, through
// app.inject on both dialects: a good request ends the browser session and every session it
// started (their tokens inactive at once) and goes back to the registered URI with state; and the
// attacks: open redirects through post_logout_redirect_uri (unregistered, prefix, suffix, case,
// other port, extra path, userinfo, fragment, another client's URI), a forged or foreign
// id_token_hint, a client_id that is not the hint's, a logout link anyone can send (it only asks),
// and the confirmation form posted without its CSRF token or from another site.
import { generateKeyPair, SignJWT } from 'jose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { servicesOf } from '../../src/app.js'
import type { Client } from '../../src/domain/clients.js'
import { frozenClock } from '../../src/lib/clock.js'
import type { Services } from '../../src/services.js'
import { auditWritten, buildTestApp, inspect, type TestApp } from '../helpers/app.js'
import { VERIFIER } from '../helpers/authorization-codes.js'
import { type Browser, FORM, get, params, REDIRECT, sentBack, signIn } from '../helpers/authorize.js'
import { introspect, registerClient } from '../helpers/clients.js'
import { bearer, decodeJwt, form, signUp } from '../helpers/http.js'

const OPERATOR = { actor: 'cli', osUser: 'logout-test' } as const
const BYE = 'https://app.example.com/bye'
const BYE_WITH_QUERY = 'https://app.example.com/bye?from=app'
const STATE = 'lo+g/out=1&x;é'

describe('RP-initiated logout', () => {
  const clock = frozenClock()
  let t: TestApp
  let services: Services
  let app: Client
  let other: Client
  let resourceServer: { id: string; secret: string }

  /** A signed-in browser and what a code exchange gave the client in it. */
  const signedIn = async (username: string) => {
    const { browser } = await signIn(t.app, username)
    const back = sentBack(await get(t.app, `/authorize?${params(app)}`, browser))
    const res = await t.app.inject({
      method: 'POST',
      url: '/auth/token',
      headers: form,
      payload: new URLSearchParams({
        grant_type: 'authorization_code',
        client_id: app.clientId,
        code: back.get('code') as string,
        redirect_uri: REDIRECT,
        code_verifier: VERIFIER,
      }).toString(),
    })
    expect(res.statusCode).toBe(200)
    const tokens = res.json() as { access_token: string; refresh_token: string; id_token: string }
    return { browser, ...tokens }
  }

  const logoutGet = (query: Record<string, string>, browser?: Browser) =>
    get(t.app, `/logout?${new URLSearchParams(query)}`, browser)

  const logoutPost = (
    fields: Record<string, string>,
    browser?: Browser,
    headers: Record<string, string> = {},
  ) =>
    t.app.inject({
      method: 'POST',
      url: '/logout',
      headers: { 'content-type': FORM, ...(browser ? { cookie: browser.cookie } : {}), ...headers },
      payload: new URLSearchParams(fields).toString(),
    })

  const active = async (token: string) =>
    (await introspect(t.app, { basic: resourceServer }, token)).json().active as boolean

  /** Whether the browser is still signed in: prompt=none answers a code only then. */
  const stillSignedIn = async (browser: Browser) => {
    const back = sentBack(await get(t.app, `/authorize?${params(app, { prompt: 'none' })}`, browser))
    if (back.get('code')) return true
    expect(back.get('error')).toBe('login_required')
    return false
  }

  const refreshes = async (refreshToken: string) =>
    (
      await t.app.inject({
        method: 'POST',
        url: '/auth/token',
        headers: form,
        payload: new URLSearchParams({
          grant_type: 'refresh_token',
          client_id: app.clientId,
          refresh_token: refreshToken,
        }).toString(),
      })
    ).statusCode === 200

  /** A refused request: our error page with a 400, no redirect anywhere, nothing ended. */
  const expectRefused = async (
    res: { statusCode: number; headers: Record<string, unknown>; body: string },
    session: { browser: Browser; access_token: string },
    says: string,
  ) => {
    expect([res.statusCode, res.headers.location]).toEqual([400, undefined])
    expect(res.headers['content-type']).toMatch(/^text\/html/)
    expect(res.body).toContain(says)
    expect(await active(session.access_token)).toBe(true)
    expect(await stillSignedIn(session.browser)).toBe(true)
  }

  beforeAll(async () => {
    t = await buildTestApp({}, { clock })
    services = servicesOf(t.app) as Services
    const make = async (name: string, postLogoutRedirectUris: string[]) =>
      (
        await services.clients.create(OPERATOR, {
          name,
          redirectUris: [REDIRECT],
          postLogoutRedirectUris,
          public: true,
          firstParty: true,
          scope: 'openid profile offline_access',
        })
      ).client
    app = await make('Logout app', [BYE, BYE_WITH_QUERY])
    other = await make('Other app', ['https://other.example.com/bye'])
    const registered = await registerClient(t.app, { name: 'Resource server' })
    resourceServer = { id: registered.id, secret: registered.secret ?? '' }
    for (const name of ['alice', 'bob', 'carol', 'dave', 'erin', 'frank']) await signUp(t.app, name)
  }, 30_000)
  afterAll(() => t?.close())

  it('is advertised in discovery', async () => {
    const metadata = (await t.app.inject('/.well-known/openid-configuration')).json()
    expect(metadata.end_session_endpoint).toBe(`${metadata.issuer}/logout`)
  })

  it('with the ID token of this browser session: ends it and what it started, back to the registered URI with state', async () => {
    const s = await signedIn('alice')
    const { sid, sub } = decodeJwt(s.id_token) as { sid: string; sub: string }
    expect(await active(s.access_token)).toBe(true)
    const res = await logoutGet(
      { id_token_hint: s.id_token, post_logout_redirect_uri: BYE, state: STATE },
      s.browser,
    )
    expect(res.statusCode).toBe(303)
    // §3: the URI as registered, with state as sent.
    expect(res.headers.location).toBe(`${BYE}?${new URLSearchParams({ state: STATE })}`)
    expect(new URL(res.headers.location as string).searchParams.get('state')).toBe(STATE)
    const cleared = res.cookies.find((c) => c.name === 'authgate_session')
    expect(cleared?.value).toBe('')
    // The client's tokens end with the browser session that started them, at once.
    expect(await active(s.access_token)).toBe(false)
    expect((await t.app.inject({ url: '/userinfo', headers: bearer(s.access_token) })).statusCode).toBe(401)
    expect(await refreshes(s.refresh_token)).toBe(false)
    expect(await stillSignedIn(s.browser)).toBe(false)
    await auditWritten(t.app)
    const rows = await inspect(t.dbUrl)
      .selectFrom('authgate_audit_log')
      .select(['detail', 'outcome'])
      .where('type', '=', 'session.logged_out')
      .execute()
    const details = rows.map((r) => JSON.parse(r.detail as string))
    expect(details).toContainEqual({
      sessionId: sid,
      via: 'end_session_endpoint',
      clientId: app.clientId,
      endedSessions: 2,
    })
    expect(sub).toEqual(expect.any(String))
    // The hint is a bearer of nothing once its session is gone: using it again only shows our page.
    const again = await logoutGet({ id_token_hint: s.id_token, post_logout_redirect_uri: BYE }, s.browser)
    expect([again.statusCode, again.headers.location]).toEqual([303, BYE])
  })

  it('keeps a query the registered URI has, and adds state to it', async () => {
    const s = await signedIn('bob')
    const res = await logoutGet(
      { id_token_hint: s.id_token, post_logout_redirect_uri: BYE_WITH_QUERY, state: 'xyz' },
      s.browser,
    )
    expect([res.statusCode, res.headers.location]).toEqual([303, `${BYE_WITH_QUERY}&state=xyz`])
    expect(await active(s.access_token)).toBe(false)
  })

  it('accepts an expired ID token as the hint (§2: the RP may hold only an old one)', async () => {
    const s = await signedIn('carol')
    const { exp } = decodeJwt(s.id_token) as { exp: number }
    clock.advance((exp + 60) * 1000 - clock.now())
    expect(await stillSignedIn(s.browser)).toBe(true)
    const res = await logoutGet({ id_token_hint: s.id_token, post_logout_redirect_uri: BYE }, s.browser)
    expect([res.statusCode, res.headers.location]).toEqual([303, BYE])
    expect(await stillSignedIn(s.browser)).toBe(false)
  })

  it('refuses every post_logout_redirect_uri that is not registered exactly, and ends nothing', async () => {
    const s = await signedIn('dave')
    const near = [
      'https://app.example.com/by', // prefix
      'https://app.example.com/bye/', // suffix
      'https://app.example.com/byex',
      'https://app.example.com/BYE', // case
      'https://APP.example.com/bye',
      'https://app.example.com:8443/bye', // other port
      'https://app.example.com/bye/more', // extra path
      'https://app.example.com/bye#x', // fragment
      'https://evil.example@app.example.com/bye', // userinfo
      'https://app.example.com@evil.example/bye',
      'http://app.example.com/bye', // other scheme
      'https://app.example.com/bye?from=evil',
      'https://other.example.com/bye', // another client's registered URI
      '//evil.example/bye',
      'javascript:alert(1)',
    ]
    for (const uri of near) {
      const res = await logoutGet(
        { id_token_hint: s.id_token, post_logout_redirect_uri: uri, state: 's' },
        s.browser,
      )
      await expectRefused(res, s, 'not registered for this client')
    }
  })

  it('refuses a post_logout_redirect_uri when the request does not say which client it is', async () => {
    const s = await signedIn('erin')
    await expectRefused(await logoutGet({ post_logout_redirect_uri: BYE }, s.browser), s, 'needs the client')
    // With client_id alone, the URI is checked against that client's: another client's is refused.
    await expectRefused(
      await logoutGet({ client_id: other.clientId, post_logout_redirect_uri: BYE }, s.browser),
      s,
      'not registered for this client',
    )
    await expectRefused(
      await logoutGet({ client_id: 'no-such-client', post_logout_redirect_uri: BYE }, s.browser),
      s,
      'not registered here',
    )
  })

  it('refuses a client_id that is not the audience of the hint', async () => {
    const s = await signedIn('erin')
    await expectRefused(
      await logoutGet(
        { id_token_hint: s.id_token, client_id: other.clientId, post_logout_redirect_uri: BYE },
        s.browser,
      ),
      s,
      'not the one the id_token_hint was issued to',
    )
  })

  it('refuses a hint this server did not issue: another key, alg none, an access token, garbage', async () => {
    const s = await signedIn('frank')
    const claims = decodeJwt(s.id_token) as Record<string, unknown>
    // Same claims, same kid, signed by a key of the attacker's.
    const { privateKey } = await generateKeyPair('RS256')
    const header = JSON.parse(Buffer.from(s.id_token.split('.')[0] as string, 'base64url').toString())
    const forged = await new SignJWT(claims).setProtectedHeader({ ...header, alg: 'RS256' }).sign(privateKey)
    const unsigned = `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url')}.${
      s.id_token.split('.')[1]
    }.`
    // Ours, signed by our key, but an access token (RFC 8725 §3.11: not interchangeable).
    for (const hint of [forged, unsigned, s.access_token, 'not-a-jwt', s.id_token.slice(0, -4)]) {
      await expectRefused(
        await logoutGet({ id_token_hint: hint, post_logout_redirect_uri: BYE, state: 's' }, s.browser),
        s,
        'not an ID token this server issued',
      )
    }
  })

  it('asks before ending a session the request cannot show it is from (a link anyone can send)', async () => {
    const s = await signedIn('alice')
    // No hint: a logout link from anywhere. It asks, and ends nothing.
    const asked = await logoutGet(
      { client_id: app.clientId, post_logout_redirect_uri: BYE, state: 'q' },
      s.browser,
    )
    expect(asked.statusCode).toBe(200)
    expect(asked.body).toContain('Sign out of AuthGate?')
    expect(asked.body).toContain('Logout app asks to sign you out.')
    expect(asked.body).toContain('<button type="submit" name="confirm" value="yes">Sign out</button>')
    expect(await active(s.access_token)).toBe(true)
    expect(await stillSignedIn(s.browser)).toBe(true)
    // A hint from another session of the same person (an old browser's ID token) also only asks.
    const elsewhere = await signedIn('alice')
    const foreign = await logoutGet({ id_token_hint: elsewhere.id_token }, s.browser)
    expect(foreign.statusCode).toBe(200)
    expect(foreign.body).toContain('Sign out of AuthGate?')
    expect(await stillSignedIn(s.browser)).toBe(true)
    expect(await stillSignedIn(elsewhere.browser)).toBe(true)

    const csrfToken = /name="csrf_token" value="([^"]+)"/.exec(asked.body)?.[1] as string
    const fields = Object.fromEntries(
      [...asked.body.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)].map((m) => [
        m[1] as string,
        (m[2] as string).replaceAll('&amp;', '&'),
      ]),
    )
    expect(fields).toMatchObject({ client_id: app.clientId, post_logout_redirect_uri: BYE, state: 'q' })
    const csrfCookie = asked.cookies.find((c) => c.name === 'authgate_csrf')
    const cookie = csrfCookie ? `${s.browser.cookie}; authgate_csrf=${csrfCookie.value}` : s.browser.cookie
    const browser = { cookie }

    // The confirmation form with a wrong token, with the token from another browser, or with the
    // right token from another site: refused, still signed in.
    const wrong = await logoutPost({ ...fields, csrf_token: 'x'.repeat(csrfToken.length) }, browser)
    expect(wrong.statusCode).toBe(403)
    expect(wrong.body).toContain('You are still signed in.')
    const stranger = await get(
      t.app,
      `/logout?${new URLSearchParams({ client_id: app.clientId })}`,
      elsewhere.browser,
    )
    const strangersToken = /name="csrf_token" value="([^"]+)"/.exec(stranger.body)?.[1] as string
    expect(strangersToken).toEqual(expect.any(String))
    expect((await logoutPost({ ...fields, csrf_token: strangersToken }, browser)).statusCode).toBe(403)
    const crossSite = await logoutPost(fields, browser, { origin: 'https://evil.example' })
    expect(crossSite.statusCode).toBe(403)
    // No token at all: a client's own form (§2 allows POST), sent on to the GET, which asks again.
    const { csrf_token: _, ...withoutToken } = fields
    const clientForm = await logoutPost(withoutToken, browser, { origin: 'https://evil.example' })
    expect(clientForm.statusCode).toBe(303)
    expect(clientForm.headers.location).toBe(
      `/logout?${new URLSearchParams({ client_id: app.clientId, post_logout_redirect_uri: BYE, state: 'q' })}`,
    )
    expect(await active(s.access_token)).toBe(true)
    expect(await stillSignedIn(s.browser)).toBe(true)

    // Our own form, as the page sent it: signed out, and on to the client's URI with its state.
    const confirmed = await logoutPost({ ...fields, confirm: 'yes' }, browser)
    expect([confirmed.statusCode, confirmed.headers.location]).toEqual([303, `${BYE}?state=q`])
    expect(await active(s.access_token)).toBe(false)
    expect(await stillSignedIn(s.browser)).toBe(false)
    // The other browser's session was not this one: it stays.
    expect(await active(elsewhere.access_token)).toBe(true)
  })

  it('with nobody signed in: nothing to end, and on to the registered URI or our page', async () => {
    const s = await signedIn('bob')
    const gone = await logoutGet({ id_token_hint: s.id_token, post_logout_redirect_uri: BYE, state: 'z' })
    expect([gone.statusCode, gone.headers.location]).toEqual([303, `${BYE}?state=z`])
    const page = await logoutGet({})
    expect(page.statusCode).toBe(200)
    expect(page.body).toContain('You are signed out')
    // Another browser's logout request ends nothing of this one's.
    expect(await active(s.access_token)).toBe(true)
    expect(await stillSignedIn(s.browser)).toBe(true)
  })

  it('answers a 422 page, not a 500, to repeated or oversized parameters, and ends nothing', async () => {
    const s = await signedIn('carol')
    const repeated = await get(t.app, `/logout?state=a&state=b&id_token_hint=${s.id_token}`, s.browser)
    const huge = await logoutGet({ id_token_hint: 'a'.repeat(9000) }, s.browser)
    for (const res of [repeated, huge]) {
      expect([res.statusCode, res.headers.location]).toEqual([422, undefined])
      expect(res.headers['content-type']).toMatch(/^text\/html/)
    }
    expect(await stillSignedIn(s.browser)).toBe(true)
  })
})
