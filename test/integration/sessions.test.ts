// Sessions and refresh tokens through app.inject() on a real database (SQLite, then PostgreSQL):
// rotation, the race, the grace window, reuse detection, revocation on the next request, idle and
// absolute expiry.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { frozenClock } from '../../src/lib/clock.js'
import { buildTestApp, inspect, PASSWORD, type TestApp } from '../helpers/app.js'
import { account, bearer, decodeJwt, form, greet, logIn, refresh, signUp } from '../helpers/http.js'

const DAY = 86_400_000

describe('refresh tokens', () => {
  const clock = frozenClock()
  let t: TestApp
  beforeAll(async () => {
    t = await buildTestApp({ REFRESH_REUSE_GRACE_SECONDS: '10' }, { clock })
  })
  afterAll(async () => {
    await t.close()
  })

  const storedTokens = () =>
    inspect(t.dbUrl).selectFrom('authgate_refresh_tokens').select('token_hash').execute()

  it('are opaque, 256-bit, stored only as SHA-256, and the access token carries the session', async () => {
    const pair = await account(t.app, 'rita')
    expect(Buffer.from(pair.refresh_token, 'base64url')).toHaveLength(32)
    const hashes = (await storedTokens()).map((r) => r.token_hash)
    const { createHash } = await import('node:crypto')
    expect(hashes).toContain(createHash('sha256').update(pair.refresh_token).digest('hex'))
    expect(JSON.stringify(hashes)).not.toContain(pair.refresh_token)
    expect(decodeJwt(pair.access_token).sid).toEqual(expect.any(String))
  })

  it('rotate: a refresh returns a new pair and spends the old token', async () => {
    const first = await account(t.app, 'rotor')
    clock.advance(1000)
    const res = await refresh(t.app, first.refresh_token)
    expect(res.statusCode).toBe(200)
    expect(res.headers['cache-control']).toBe('no-store')
    const second = res.json()
    expect(second.refresh_token).not.toBe(first.refresh_token)
    expect(second.access_token).not.toBe(first.access_token)
    expect(decodeJwt(second.access_token).sid).toBe(decodeJwt(first.access_token).sid)
    expect((await greet(t.app, second.access_token)).json().message).toMatch(/^Hello, rotor with ID/)
    // The new token rotates in turn.
    clock.advance(1000)
    expect((await refresh(t.app, second.refresh_token)).statusCode).toBe(200)
  })

  it('leave exactly one lineage when 20 refreshes of one token race, with no 500', async () => {
    const pair = await account(t.app, 'racer')
    clock.advance(1000)
    const results = await Promise.all(Array.from({ length: 20 }, () => refresh(t.app, pair.refresh_token)))
    expect(results.map((r) => r.statusCode)).toEqual(Array(20).fill(200))
    // Every racer got the same pair: the winner's, through the grace window.
    const tokens = new Set(results.map((r) => r.json().refresh_token))
    expect(tokens.size).toBe(1)
    const [winner] = [...tokens] as [string]
    clock.advance(1000)
    expect((await refresh(t.app, winner)).statusCode).toBe(200)
  })

  it('give a client that lost the response the same pair again within the grace window', async () => {
    const pair = await account(t.app, 'retrier')
    clock.advance(1000)
    const first = (await refresh(t.app, pair.refresh_token)).json()
    clock.advance(9_000)
    const again = await refresh(t.app, pair.refresh_token)
    expect(again.statusCode).toBe(200)
    expect(again.json()).toEqual(first)
  })

  it('treat a spent token after the grace window as reuse: the whole session ends', async () => {
    const pair = await account(t.app, 'victim')
    clock.advance(1000)
    const next = (await refresh(t.app, pair.refresh_token)).json()
    clock.advance(11_000)
    const reuse = await refresh(t.app, pair.refresh_token)
    expect(reuse.statusCode).toBe(400)
    expect(reuse.json()).toMatchObject({
      error: 'invalid_grant',
      code: 'invalid_grant',
      detail: expect.any(String),
    })
    // The thief's copy and the owner's current tokens are all dead now.
    expect((await refresh(t.app, next.refresh_token)).statusCode).toBe(400)
    expect((await greet(t.app, next.access_token)).statusCode).toBe(401)
    expect((await greet(t.app, pair.access_token)).statusCode).toBe(401)
  })

  it('treat a spent token as reuse inside the window too, once its successor has been used', async () => {
    const pair = await account(t.app, 'copied')
    clock.advance(1000)
    const next = (await refresh(t.app, pair.refresh_token)).json()
    clock.advance(1000)
    expect((await refresh(t.app, next.refresh_token)).statusCode).toBe(200)
    expect((await refresh(t.app, pair.refresh_token)).statusCode).toBe(400)
    expect((await greet(t.app, next.access_token)).statusCode).toBe(401)
  })

  it('expire after REFRESH_TOKEN_EXPIRE_DAYS unused', async () => {
    const pair = await account(t.app, 'idler')
    clock.advance(7 * DAY + 1000)
    const res = await refresh(t.app, pair.refresh_token)
    expect(res.statusCode).toBe(400)
    expect(res.json().error).toBe('invalid_grant')
  })

  it('end with the session after SESSION_MAX_DAYS, however often they refresh', async () => {
    let token = (await account(t.app, 'marathon')).refresh_token
    for (let day = 0; day < 29; day++) {
      clock.advance(DAY)
      const res = await refresh(t.app, token)
      expect(res.statusCode, `day ${day + 1}`).toBe(200)
      token = res.json().refresh_token
    }
    clock.advance(DAY + 1000)
    expect((await refresh(t.app, token)).statusCode).toBe(400)
  })

  it('are never accepted as bearer tokens, nor access tokens as refresh tokens', async () => {
    const pair = await account(t.app, 'mixer')
    expect((await greet(t.app, pair.refresh_token)).statusCode).toBe(401)
    expect((await refresh(t.app, pair.access_token)).json()).toMatchObject({ error: 'invalid_grant' })
  })

  it.each([
    ['an unknown token', 'grant_type=refresh_token&refresh_token=nope', 400, 'invalid_grant'],
    ['no token', 'grant_type=refresh_token', 400, 'invalid_request'],
    ['an oversized token', `grant_type=refresh_token&refresh_token=${'x'.repeat(600)}`, 422, undefined],
  ])('answer %s with a 4xx', async (_what, payload, status, error) => {
    const res = await t.app.inject({ method: 'POST', url: '/auth/token', headers: form, payload })
    expect(res.statusCode).toBe(status)
    if (error) expect(res.json().error).toBe(error)
  })
})

describe('revocation on the next request', () => {
  let t: TestApp
  beforeAll(async () => {
    t = await buildTestApp()
  })
  afterAll(async () => {
    await t.close()
  })

  it('logout ends the session: access and refresh tokens stop at once', async () => {
    const pair = await account(t.app, 'leaver')
    const res = await t.app.inject({
      method: 'POST',
      url: '/auth/logout',
      headers: bearer(pair.access_token),
    })
    expect(res.statusCode).toBe(204)
    expect((await greet(t.app, pair.access_token)).statusCode).toBe(401)
    expect((await refresh(t.app, pair.refresh_token)).statusCode).toBe(400)
    expect((await t.app.inject({ method: 'POST', url: '/auth/logout' })).statusCode).toBe(401)
  })

  it('lists sessions, marks the current one, and deletes another', async () => {
    const a = await account(t.app, 'juggler')
    const b = (
      await logIn(t.app, 'juggler', PASSWORD, { headers: { 'user-agent': 'second-device/1.0' } })
    ).json()
    const list = await t.app.inject({ url: '/auth/sessions', headers: bearer(a.access_token) })
    expect(list.statusCode).toBe(200)
    const sessions = list.json()
    expect(sessions).toHaveLength(2)
    expect(sessions.find((s: { current: boolean }) => s.current).id).toBe(decodeJwt(a.access_token).sid)
    const other = sessions.find((s: { current: boolean }) => !s.current)
    expect(other).toMatchObject({
      user_agent: 'second-device/1.0',
      ip: '127.0.0.1',
      kind: 'token',
      client_id: null,
    })
    expect(Object.keys(other).sort()).toEqual([
      'client_id',
      'created_at',
      'current',
      'id',
      'ip',
      'kind',
      'last_used_at',
      'user_agent',
    ])

    const del = await t.app.inject({
      method: 'DELETE',
      url: `/auth/sessions/${other.id}`,
      headers: bearer(a.access_token),
    })
    expect(del.statusCode).toBe(204)
    expect((await greet(t.app, b.access_token)).statusCode).toBe(401)
    expect((await greet(t.app, a.access_token)).statusCode).toBe(200)
    const again = await t.app.inject({
      method: 'DELETE',
      url: `/auth/sessions/${other.id}`,
      headers: bearer(a.access_token),
    })
    expect(again.statusCode).toBe(404)
  })

  it("cannot end someone else's session", async () => {
    const mine = await account(t.app, 'alice-s')
    const theirs = await account(t.app, 'mallory-s')
    const res = await t.app.inject({
      method: 'DELETE',
      url: `/auth/sessions/${decodeJwt(mine.access_token).sid}`,
      headers: bearer(theirs.access_token),
    })
    expect(res.statusCode).toBe(404)
    expect((await greet(t.app, mine.access_token)).statusCode).toBe(200)
  })

  it('a password change ends every other session and keeps this one', async () => {
    const here = await account(t.app, 'changer')
    const there = (await logIn(t.app, 'changer')).json()
    const wrong = await t.app.inject({
      method: 'POST',
      url: '/auth/password',
      headers: bearer(here.access_token),
      payload: { current_password: 'not it at all', new_password: 'a whole new passphrase' },
    })
    expect(wrong.statusCode).toBe(400)
    expect(wrong.json()).toEqual({ detail: 'Incorrect password', code: 'wrong_password' })
    const weak = await t.app.inject({
      method: 'POST',
      url: '/auth/password',
      headers: bearer(here.access_token),
      payload: { current_password: PASSWORD, new_password: 'password' },
    })
    expect(weak.statusCode).toBe(422)
    expect(weak.json().detail[0].loc).toEqual(['body', 'new_password'])
    expect((await greet(t.app, there.access_token)).statusCode).toBe(200)

    const res = await t.app.inject({
      method: 'POST',
      url: '/auth/password',
      headers: bearer(here.access_token),
      payload: { current_password: PASSWORD, new_password: 'a whole new passphrase' },
    })
    expect(res.statusCode).toBe(204)
    expect((await greet(t.app, there.access_token)).statusCode).toBe(401)
    expect((await refresh(t.app, there.refresh_token)).statusCode).toBe(400)
    expect((await greet(t.app, here.access_token)).statusCode).toBe(200)
    expect((await logIn(t.app, 'changer')).statusCode).toBe(401)
    expect((await logIn(t.app, 'changer', 'a whole new passphrase')).statusCode).toBe(200)
  })

  it('deleting the account ends every session and frees the name', async () => {
    const pair = await account(t.app, 'Quitter')
    const me = await t.app.inject({ url: '/auth/me', headers: bearer(pair.access_token) })
    expect(me.json()).toEqual({ id: expect.any(Number), username: 'Quitter', created_at: expect.any(String) })
    const wrong = await t.app.inject({
      method: 'DELETE',
      url: '/auth/me',
      headers: bearer(pair.access_token),
      payload: { password: 'nope nope nope' },
    })
    expect(wrong.statusCode).toBe(400)
    const res = await t.app.inject({
      method: 'DELETE',
      url: '/auth/me',
      headers: bearer(pair.access_token),
      payload: { password: PASSWORD },
    })
    expect(res.statusCode).toBe(204)
    expect((await greet(t.app, pair.access_token)).statusCode).toBe(401)
    expect((await refresh(t.app, pair.refresh_token)).statusCode).toBe(400)
    expect((await signUp(t.app, 'quitter')).statusCode).toBe(201)
  })

  it('RFC 7009 revoke ends the session of a refresh token, and answers 200 for anything', async () => {
    const pair = await account(t.app, 'revoker')
    const res = await t.app.inject({
      method: 'POST',
      url: '/auth/revoke',
      headers: form,
      payload: `token=${pair.refresh_token}&token_type_hint=refresh_token`,
    })
    expect(res.statusCode).toBe(200)
    expect((await greet(t.app, pair.access_token)).statusCode).toBe(401)
    expect((await refresh(t.app, pair.refresh_token)).statusCode).toBe(400)
    const unknown = await t.app.inject({
      method: 'POST',
      url: '/auth/revoke',
      headers: form,
      payload: 'token=whatever',
    })
    expect(unknown.statusCode).toBe(200)
    const byAccess = await account(t.app, 'revoker2')
    await t.app.inject({
      method: 'POST',
      url: '/auth/revoke',
      headers: form,
      payload: `token=${byAccess.access_token}`,
    })
    expect((await greet(t.app, byAccess.access_token)).statusCode).toBe(401)
  })
})
