// The per-user session cap (MAX_SESSIONS_PER_USER) and the paged session list, through
// app.inject() on a real database (SQLite, then PostgreSQL).
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { frozenClock } from '../../src/lib/clock.js'
import { auditWritten, buildTestApp, inspect, type TestApp } from '../helpers/app.js'
import { bearer, greet, logIn, pairOf, refresh, signUp } from '../helpers/http.js'

describe('the session cap', () => {
  const clock = frozenClock()
  let t: TestApp
  beforeAll(async () => {
    t = await buildTestApp({ MAX_SESSIONS_PER_USER: '3' }, { clock })
  })
  afterAll(async () => {
    await t.close()
  })

  const signInAgain = async (username: string) => {
    clock.advance(1000)
    return pairOf(await logIn(t.app, username))
  }

  it('ends the least recently used session when a login goes beyond it, and audits it', async () => {
    await signUp(t.app, 'hoarder')
    const pairs = []
    for (let i = 0; i < 3; i++) pairs.push(await signInAgain('hoarder'))
    // The first session is used again: now the second is the least recently used.
    clock.advance(1000)
    const refreshed = await refresh(t.app, pairs[0]?.refresh_token ?? '')
    expect(refreshed.statusCode).toBe(200)
    const fourth = await signInAgain('hoarder')

    expect((await greet(t.app, pairs[1]?.access_token ?? '')).statusCode).toBe(401)
    for (const token of [refreshed.json().access_token, pairs[2]?.access_token, fourth.access_token])
      expect((await greet(t.app, token ?? '')).statusCode).toBe(200)
    const live = await t.app.inject({ url: '/auth/sessions', headers: bearer(fourth.access_token) })
    expect(live.json()).toHaveLength(3)
    const ended = await inspect(t.dbUrl)
      .selectFrom('authgate_sessions')
      .select(['revoked_reason'])
      .where('revoked_at', 'is not', null)
      .execute()
    expect(ended).toEqual([{ revoked_reason: 'session_limit' }])

    await auditWritten(t.app)
    const audited = await inspect(t.dbUrl)
      .selectFrom('authgate_audit_log')
      .select('detail')
      .where('type', '=', 'session.revoked')
      .execute()
    expect(audited.map((r) => JSON.parse(r.detail ?? '{}').reason)).toEqual(['session_limit'])
  })

  it("never ends another user's sessions", async () => {
    await signUp(t.app, 'bystander')
    const theirs = await signInAgain('bystander')
    await signUp(t.app, 'crowd')
    for (let i = 0; i < 5; i++) await signInAgain('crowd')
    expect((await greet(t.app, theirs.access_token)).statusCode).toBe(200)
  })
})

describe('the session list', () => {
  const clock = frozenClock()
  let t: TestApp
  let token: string
  beforeAll(async () => {
    t = await buildTestApp({}, { clock })
    await signUp(t.app, 'pager')
    for (let i = 0; i < 7; i++) {
      clock.advance(i % 2 === 0 ? 1000 : 0) // some share a created_at: the id breaks the tie
      token = (await logIn(t.app, 'pager')).json().access_token
    }
  })
  afterAll(async () => {
    await t.close()
  })

  const page = (query: string) => t.app.inject({ url: `/auth/sessions${query}`, headers: bearer(token) })

  it('comes a page at a time, newest first, with a Link to the next page until the last', async () => {
    const seen: { id: string; created_at: string }[] = []
    let next: string | undefined = '/auth/sessions?limit=3'
    const sizes: number[] = []
    while (next) {
      const res: Awaited<ReturnType<typeof page>> = await t.app.inject({ url: next, headers: bearer(token) })
      expect(res.statusCode).toBe(200)
      sizes.push(res.json().length)
      seen.push(...res.json())
      next = /^<([^>]+)>; rel="next"$/.exec(String(res.headers.link ?? ''))?.[1]
    }
    expect(sizes).toEqual([3, 3, 1])
    const all = (await page('')).json() as { id: string; created_at: string }[]
    expect(all).toHaveLength(7)
    expect(seen.map((s) => s.id)).toEqual(all.map((s) => s.id))
    expect(new Set(seen.map((s) => s.id)).size).toBe(7)
    const times = all.map((s) => s.created_at)
    expect([...times].sort().reverse()).toEqual(times)
    expect((await page('')).headers.link).toBeUndefined()
  })

  it.each([
    ['limit=0'],
    ['limit=101'],
    ['limit=ten'],
    ['limit=5.5'],
    ['cursor=nope'],
    ['cursor=1.%00'],
    [`cursor=${'9'.repeat(17)}.abc`],
  ])('refuses %s with a 422 and no echo', async (query) => {
    const res = await page(`?${query}`)
    expect(res.statusCode).toBe(422)
    expect(res.json()).toMatchObject({ code: 'validation_error' })
  })

  it('gives an empty page after the last session, and nothing of anyone else', async () => {
    const res = await page('?cursor=0.AAAA')
    expect(res.statusCode).toBe(200)
    expect(res.json()).toEqual([])
  })
})
