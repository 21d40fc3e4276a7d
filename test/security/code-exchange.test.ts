// The token endpoint's authorization_code grant, through app.inject on both dialects: what a good
// exchange hands out (an RFC 9068 access token, an ID token, a refresh token when granted), and
// the attacks: a wrong or missing PKCE verifier, a code for another client or redirect URI, a
// stale code, a replayed code (and what it revokes, also when the replays race), a confidential
// client without its secret, a client's refresh token used by another client, and revocation.
import { createLocalJWKSet, jwtVerify } from 'jose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { servicesOf } from '../../src/app.js'
import { AUTHORIZATION_CODE_TTL_MS } from '../../src/domain/authorization-codes.js'
import type { Client } from '../../src/domain/clients.js'
import { frozenClock } from '../../src/lib/clock.js'
import type { Services } from '../../src/services.js'
import { auditWritten, buildTestApp, inspect, type TestApp } from '../helpers/app.js'
import { VERIFIER } from '../helpers/authorization-codes.js'
import { type Browser, get, params, REDIRECT, sentBack, signIn } from '../helpers/authorize.js'
import { basicHeader, clientToken, introspect, registerClient } from '../helpers/clients.js'
import { bearer, decodeJwt, decodeProtectedHeader, form, logIn, pairOf, signUp } from '../helpers/http.js'

const OPERATOR = { actor: 'cli', osUser: 'code-exchange-test' } as const
const NONCE = 'n-0S6_WzA2Mj'

describe('the authorization_code grant', () => {
  const clock = frozenClock()
  let t: TestApp
  let services: Services
  let issuer: string
  let spa: Client // public, first-party: gets a refresh token
  let other: Client // public, first-party, another client
  let web: Client & { secret: string } // confidential, first-party
  let narrow: Client // public, first-party, refresh_token not among its grants
  let resourceServer: { id: string; secret: string }
  let alice: Browser
  let aliceSubject: string

  const newClient = async (name: string, over: Record<string, unknown> = {}) => {
    const made = await services.clients.create(OPERATOR, {
      name,
      redirectUris: [REDIRECT],
      public: true,
      firstParty: true,
      scope: 'openid profile offline_access',
      ...over,
    })
    return { ...made.client, secret: made.secret ?? '' }
  }

  /** A fresh code for `client`, from alice's browser session (no consent: first-party). */
  const codeFor = async (client: Client, over: Record<string, string | undefined> = {}) => {
    const back = sentBack(await get(t.app, `/authorize?${params(client, over)}`, alice))
    const code = back.get('code')
    if (!code) throw new Error(`no code: ${back.toString()}`)
    return code
  }

  /** POSTs a form, leaving out the fields that are undefined. */
  const post = (
    url: string,
    fields: Record<string, string | undefined>,
    headers: Record<string, string> = {},
  ) => {
    const body = new URLSearchParams()
    for (const [name, value] of Object.entries(fields)) if (value !== undefined) body.append(name, value)
    return t.app.inject({ method: 'POST', url, headers: { ...form, ...headers }, payload: body.toString() })
  }

  const exchange = (fields: Record<string, string | undefined>, headers: Record<string, string> = {}) =>
    post('/auth/token', { grant_type: 'authorization_code', ...fields }, headers)

  /** The exchange a public client makes: client_id, code, redirect_uri, code_verifier. */
  const publicExchange = (client: Client, code: string, over: Record<string, string | undefined> = {}) =>
    exchange({ client_id: client.clientId, code, redirect_uri: REDIRECT, code_verifier: VERIFIER, ...over })

  const active = async (token: string) =>
    (await introspect(t.app, { basic: resourceServer }, token)).json().active as boolean

  const expectInvalidGrant = (res: { statusCode: number; json(): unknown }) => {
    expect([res.statusCode, res.json()]).toEqual([
      400,
      expect.objectContaining({
        error: 'invalid_grant',
        error_description: 'The authorization code is invalid, expired or already used',
      }),
    ])
  }

  beforeAll(async () => {
    t = await buildTestApp({}, { clock })
    services = servicesOf(t.app) as Services
    issuer = services.issuers.current()
    spa = await newClient('Single-page app')
    other = await newClient('Other app')
    web = await newClient('Web app', { public: false })
    narrow = await newClient('No refresh', { grantTypes: ['authorization_code'] })
    const registered = await registerClient(t.app, { name: 'Resource server' })
    resourceServer = { id: registered.id, secret: registered.secret ?? '' }
    await signUp(t.app, 'alice')
    alice = (await signIn(t.app, 'alice')).browser
    const row = await inspect(t.dbUrl)
      .selectFrom('users')
      .select('subject')
      .where('username', '=', 'alice')
      .executeTakeFirstOrThrow()
    aliceSubject = row.subject
  }, 30_000)
  afterAll(() => t?.close())

  it('trades a code for an RFC 9068 access token, an ID token and a refresh token, uncached', async () => {
    const res = await publicExchange(spa, await codeFor(spa))
    expect(res.statusCode).toBe(200)
    expect(res.headers['cache-control']).toBe('no-store')
    const body = res.json()
    expect(body).toEqual({
      access_token: expect.any(String),
      token_type: 'bearer',
      expires_in: expect.any(Number),
      refresh_token: expect.any(String),
      scope: 'openid profile',
      id_token: expect.any(String),
    })
    const jwks = createLocalJWKSet((await t.app.inject('/.well-known/jwks.json')).json())
    const now = new Date(clock.now())
    // The access token: RFC 9068 §2.2, sub the user's subject (never the username), its session.
    expect(decodeProtectedHeader(body.access_token).typ).toBe('at+jwt')
    const access = await jwtVerify(body.access_token, jwks, { issuer, currentDate: now, typ: 'at+jwt' })
    expect(access.payload).toMatchObject({
      sub: aliceSubject,
      client_id: spa.clientId,
      scope: 'openid profile',
      sid: expect.any(String),
      jti: expect.any(String),
    })
    // The ID token: OIDC Core §2, RS256 (Discovery §3), for this client, this nonce, this session.
    expect(decodeProtectedHeader(body.id_token).alg).toBe('RS256')
    const id = await jwtVerify(body.id_token, jwks, { issuer, audience: spa.clientId, currentDate: now })
    const browserSession = await services.browserSessions.resolve(
      alice.cookie.split('authgate_session=')[1] as string,
    )
    expect(id.payload).toMatchObject({
      sub: aliceSubject,
      nonce: NONCE,
      sid: browserSession?.id,
      amr: ['pwd'],
      preferred_username: 'alice',
      auth_time: expect.any(Number),
    })
    expect(id.payload.sid).not.toBe(access.payload.sid)
    // Good at a resource server (introspection) and the userinfo endpoint, never at GET /.
    expect(await active(body.access_token)).toBe(true)
    // RFC 7662 §2.2: the token's subject, the user's (not the client's), as the ID token says.
    expect((await introspect(t.app, { basic: resourceServer }, body.access_token)).json()).toMatchObject({
      sub: aliceSubject,
      client_id: spa.clientId,
      scope: 'openid profile',
    })
    expect((await t.app.inject({ url: '/', headers: bearer(body.access_token) })).statusCode).toBe(401)
    await auditWritten(t.app)
    const exchanged = await inspect(t.dbUrl)
      .selectFrom('authgate_audit_log')
      .select('detail')
      .where('type', '=', 'authorization_code.exchanged')
      .execute()
    expect(exchanged.length).toBeGreaterThan(0)
    for (const { detail } of exchanged) expect(String(detail)).not.toContain(body.access_token)
  })

  it('no openid: no ID token; no profile: no preferred_username', async () => {
    const plain = (await publicExchange(spa, await codeFor(spa, { scope: 'offline_access' }))).json()
    expect(plain.id_token).toBeUndefined()
    expect(plain.scope).toBe('offline_access')
    const bare = (await publicExchange(spa, await codeFor(spa, { scope: 'openid' }))).json()
    const jwks = createLocalJWKSet((await t.app.inject('/.well-known/jwks.json')).json())
    const id = await jwtVerify(bare.id_token, jwks, { currentDate: new Date(clock.now()) })
    expect(id.payload.preferred_username).toBeUndefined()
  })

  it('a client not registered for refresh_token gets none; its session ends with its access token', async () => {
    const body = (
      await publicExchange(narrow, await codeFor(narrow, { scope: 'openid offline_access' }))
    ).json()
    expect(body.refresh_token).toBeUndefined()
    const sid = decodeJwt(body.access_token).sid as string
    const row = await inspect(t.dbUrl)
      .selectFrom('authgate_sessions')
      .select(['expires_at', 'created_at'])
      .where('id', '=', sid)
      .executeTakeFirstOrThrow()
    expect(row.expires_at - row.created_at).toBe(t.config.accessTokenExpireMinutes * 60_000)
  })

  describe('the code is bound to what was asked, and works once', () => {
    it('a wrong code_verifier is invalid_grant, and burns the code', async () => {
      const code = await codeFor(spa)
      expectInvalidGrant(await publicExchange(spa, code, { code_verifier: 'x'.repeat(43) }))
      expectInvalidGrant(await publicExchange(spa, code))
    })

    it.each([
      ['no code_verifier', { code_verifier: undefined }, 'code_verifier'],
      ['no redirect_uri', { redirect_uri: undefined }, 'redirect_uri'],
      ['no code', { code: undefined }, 'code'],
    ])('%s is invalid_request, and leaves the code unspent', async (_name, over, field) => {
      const code = await codeFor(spa)
      const res = await publicExchange(spa, code, over)
      expect([res.statusCode, res.json().error, res.json().error_description]).toEqual([
        400,
        'invalid_request',
        `${field} is required for grant_type=authorization_code`,
      ])
      expect((await publicExchange(spa, code)).statusCode).toBe(200)
    })

    it.each([
      ['a verifier of the wrong syntax', { code_verifier: 'short' }],
      [
        'the challenge sent as verifier (plain)',
        { code_verifier: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM' },
      ],
      ['another redirect_uri', { redirect_uri: `${REDIRECT}/` }],
      ['the redirect_uri in another case', { redirect_uri: REDIRECT.toUpperCase() }],
      ['a code that was never issued', { code: 'A'.repeat(43) }],
    ])('%s: invalid_grant', async (_name, over) => {
      expectInvalidGrant(await publicExchange(spa, await codeFor(spa), over))
    })

    it("another client's code: invalid_grant, and no tokens for either", async () => {
      const code = await codeFor(spa)
      expectInvalidGrant(await publicExchange(other, code))
      expectInvalidGrant(await publicExchange(spa, code))
    })

    it('a code older than 60 s: invalid_grant', async () => {
      const code = await codeFor(spa)
      clock.advance(AUTHORIZATION_CODE_TTL_MS)
      try {
        expectInvalidGrant(await publicExchange(spa, code))
      } finally {
        clock.advance(-AUTHORIZATION_CODE_TTL_MS)
      }
    })

    it('a replayed code is invalid_grant and revokes what its first use issued (RFC 6749 §4.1.2)', async () => {
      const code = await codeFor(spa)
      const first = (await publicExchange(spa, code)).json()
      expect(await active(first.access_token)).toBe(true)
      expectInvalidGrant(await publicExchange(spa, code))
      expect(await active(first.access_token)).toBe(false)
      const refreshed = await post('/auth/token', {
        grant_type: 'refresh_token',
        refresh_token: first.refresh_token,
        client_id: spa.clientId,
      })
      expect([refreshed.statusCode, refreshed.json().error]).toEqual([400, 'invalid_grant'])
    })

    it('20 concurrent exchanges of one code: at most one gets tokens, and none of them stays active', async () => {
      const code = await codeFor(spa)
      const answers = await Promise.all(Array.from({ length: 20 }, () => publicExchange(spa, code)))
      const won = answers.filter((r) => r.statusCode === 200)
      console.info(`[code exchange] ${won.length} of 20 concurrent exchanges of one code got tokens`)
      expect(won.length).toBeLessThanOrEqual(1)
      for (const r of answers.filter((a) => a.statusCode !== 200)) expectInvalidGrant(r)
      for (const r of won) expect(await active(r.json().access_token)).toBe(false)
      const live = await inspect(t.dbUrl)
        .selectFrom('authgate_sessions')
        .select('id')
        .where('client_id', '=', spa.clientId)
        .where('revoked_at', 'is', null)
        .where('id', 'in', ['', ...won.map((r) => decodeJwt(r.json().access_token).sid as string)])
        .execute()
      expect(live).toEqual([])
    })
  })

  describe('client authentication', () => {
    it('a confidential client authenticates (client_secret_basic, client_secret_post)', async () => {
      const basic = await exchange(
        { code: await codeFor(web), redirect_uri: REDIRECT, code_verifier: VERIFIER },
        { authorization: basicHeader(web.clientId, web.secret) },
      )
      expect(basic.statusCode).toBe(200)
      const post = await exchange({
        client_id: web.clientId,
        client_secret: web.secret,
        code: await codeFor(web),
        redirect_uri: REDIRECT,
        code_verifier: VERIFIER,
      })
      expect(post.statusCode).toBe(200)
    })

    it.each([
      ['no secret (none)', (code: string) => ({ client_id: web.clientId, code })],
      ['a wrong secret', (code: string) => ({ client_id: web.clientId, client_secret: 'wrong', code })],
      ['no client at all', (code: string) => ({ code })],
    ])('a confidential client with %s: invalid_client, and the code stays unspent', async (_name, fields) => {
      const code = await codeFor(web)
      const res = await exchange({ ...fields(code), redirect_uri: REDIRECT, code_verifier: VERIFIER })
      expect([res.statusCode, res.json().error]).toEqual([401, 'invalid_client'])
      const good = await exchange(
        { code, redirect_uri: REDIRECT, code_verifier: VERIFIER },
        { authorization: basicHeader(web.clientId, web.secret) },
      )
      expect(good.statusCode).toBe(200)
    })

    it('a client not registered for authorization_code: unauthorized_client', async () => {
      const res = await exchange(
        { code: 'A'.repeat(43), redirect_uri: REDIRECT, code_verifier: VERIFIER },
        { authorization: basicHeader(resourceServer.id, resourceServer.secret) },
      )
      expect([res.statusCode, res.json().error]).toEqual([400, 'unauthorized_client'])
    })
  })

  describe("a client's refresh token", () => {
    it('rotates for its client only (RFC 6749 §6), with client access tokens', async () => {
      const first = (await publicExchange(spa, await codeFor(spa))).json()
      const refresh = (fields: Record<string, string>) =>
        post('/auth/token', { grant_type: 'refresh_token', refresh_token: first.refresh_token, ...fields })
      for (const fields of [{}, { client_id: other.clientId }] as Record<string, string>[]) {
        const res = await refresh(fields)
        expect([res.statusCode, res.json().error]).toEqual([400, 'invalid_grant'])
      }
      const res = await refresh({ client_id: spa.clientId })
      expect(res.statusCode).toBe(200)
      const next = res.json()
      expect(decodeProtectedHeader(next.access_token).typ).toBe('at+jwt')
      expect(await active(next.access_token)).toBe(true)
    })

    it('is revoked by its client only; revoking its access token ends the session', async () => {
      const pair = (await publicExchange(spa, await codeFor(spa))).json()
      const revoke = (token: string, clientId?: string) =>
        post('/auth/revoke', { token, ...(clientId ? { client_id: clientId } : {}) })
      // Another client, or none: 200 and nothing revoked (RFC 7009 §2.1-2.2).
      expect((await revoke(pair.refresh_token, other.clientId)).statusCode).toBe(200)
      expect((await revoke(pair.refresh_token)).statusCode).toBe(200)
      expect((await revoke(pair.access_token, other.clientId)).statusCode).toBe(200)
      expect(await active(pair.access_token)).toBe(true)
      expect((await revoke(pair.access_token)).statusCode).toBe(401)
      expect((await revoke(pair.access_token, spa.clientId)).statusCode).toBe(200)
      expect(await active(pair.access_token)).toBe(false)

      const second = (await publicExchange(spa, await codeFor(spa))).json()
      expect((await revoke(second.refresh_token, spa.clientId)).statusCode).toBe(200)
      expect(await active(second.access_token)).toBe(false)
    })
  })

  describe('GET and POST /userinfo (OpenID Connect Core §5.3)', () => {
    const userinfo = (token: string | undefined, method: 'GET' | 'POST' = 'GET') =>
      t.app.inject({ method, url: '/userinfo', headers: token === undefined ? {} : bearer(token) })

    it("answers sub, and preferred_username with profile, for the token's user; uncached", async () => {
      const { access_token: token } = (await publicExchange(spa, await codeFor(spa))).json()
      for (const method of ['GET', 'POST'] as const) {
        const res = await userinfo(token, method)
        expect([res.statusCode, res.json()]).toEqual([
          200,
          { sub: aliceSubject, preferred_username: 'alice' },
        ])
        expect(res.headers['cache-control']).toBe('no-store')
      }
      const { access_token: bare } = (
        await publicExchange(spa, await codeFor(spa, { scope: 'openid' }))
      ).json()
      expect((await userinfo(bare)).json()).toEqual({ sub: aliceSubject })
    })

    it('a token without openid: 403 insufficient_scope (RFC 6750 §3.1)', async () => {
      const { access_token: token } = (
        await publicExchange(spa, await codeFor(spa, { scope: 'offline_access' }))
      ).json()
      const res = await userinfo(token)
      expect([res.statusCode, res.json().error]).toEqual([403, 'insufficient_scope'])
      expect(res.headers['www-authenticate']).toMatch(/^Bearer error="insufficient_scope"/)
    })

    it('no token: 401 with the bare Bearer challenge', async () => {
      const res = await userinfo(undefined)
      expect([res.statusCode, res.headers['www-authenticate']]).toEqual([401, 'Bearer'])
    })

    it("a revoked token, garbage, a machine client's token or a password-grant token: 401 invalid_token", async () => {
      const { access_token: revoked } = (await publicExchange(spa, await codeFor(spa))).json()
      expect((await userinfo(revoked)).statusCode).toBe(200)
      await post('/auth/revoke', { token: revoked, client_id: spa.clientId })
      const machine = await clientToken(t.app, resourceServer)
      const password = (await pairOf(await logIn(t.app, 'alice'))).access_token
      for (const token of [revoked, 'garbage', `${revoked}x`, machine, password]) {
        const res = await userinfo(token)
        expect([res.statusCode, res.json().error]).toEqual([401, 'invalid_token'])
        expect(res.headers['www-authenticate']).toMatch(/^Bearer error="invalid_token"/)
      }
    })
  })
})
