// Browser sessions (single sign-on, issue 12) on a real database (SQLite; PostgreSQL in the second
// run), through the app's own services and its HTTP API: what is stored, every way a browser
// session ends (its own end, a password change, logout everywhere, an operator, account deletion,
// the cap, its lifetime), what its end takes with it (the token sessions its codes started), what
// deleting a client ends, the races, and another process refusing an ended one at once.
import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import type { FastifyInstance } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { servicesOf } from '../../src/app.js'
import type { Operator } from '../../src/domain/audit.js'
import { BROWSER_SESSION_IDLE_MS, type BrowserSession } from '../../src/domain/browser-sessions.js'
import { type Client, type ClientService, createClientService } from '../../src/domain/clients.js'
import type { SessionService } from '../../src/domain/sessions.js'
import type { VerifiedUser } from '../../src/domain/users.js'
import { frozenClock } from '../../src/lib/clock.js'
import { randomToken, sha256Hex } from '../../src/lib/crypto.js'
import type { Services } from '../../src/services.js'
import { createClientsRepository } from '../../src/storage/clients.repository.js'
import { buildTestApp, inspect, PASSWORD, TEST_REDIS_ENV, type TestApp } from '../helpers/app.js'
import { runCli } from '../helpers/cli.js'
import { logIn, signUp } from '../helpers/http.js'
import { type ServerProcess, startServerProcess } from '../helpers/server-process.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const HOUR = 3_600_000
const RACERS = 20
const ISSUER = 'https://auth.example.test'
const operator: Operator = { actor: 'cli', osUser: 'test' }
const browser = { userAgent: 'Firefox/140.0', ip: '203.0.113.7' }
const bearer = (token: string) => ({ authorization: `Bearer ${token}` })
const form = { 'content-type': 'application/x-www-form-urlencoded' }

/** The app, its services, and what the tests do with them. */
function harness(get: () => TestApp) {
  const services = (): Services => {
    const s = servicesOf(get().app)
    if (!s) throw new Error('the app has no services')
    return s
  }
  const app = (): FastifyInstance => get().app
  return {
    services,
    /** Signs up `name` and verifies the password, as the login page will. */
    async user(name: string): Promise<VerifiedUser> {
      expect((await signUp(app(), name)).statusCode).toBe(201)
      const user = await services().users.authenticate(name, PASSWORD)
      if (!user) throw new Error(`no user ${name}`)
      return user
    },
    async signIn(user: VerifiedUser): Promise<{ session: BrowserSession; cookie: string }> {
      const started = await services().browserSessions.start(user, { amr: ['pwd'], client: browser })
      if (!started) throw new Error('the browser session was refused')
      return started
    },
    /** A code exchange's session: `client`'s tokens, started from browser session `from`. */
    exchange: (
      user: VerifiedUser,
      from: string | null,
      client: Client,
    ): ReturnType<SessionService['start']> =>
      services().sessions.start(user, browser, {
        clientId: client.clientId,
        browserSessionId: from,
        // openid without profile: GET /userinfo answers from the token alone (its sub is this).
        scope: 'openid',
        authTime: Date.now(),
        amr: ['pwd'],
        subject: `subject-of-${user.username}`,
        refresh: true,
      }),
    /** A password login's access token. */
    async passwordToken(name: string): Promise<string> {
      const res = await logIn(app(), name)
      expect(res.statusCode).toBe(200)
      return res.json().access_token
    },
    /** POST /auth/password as the holder of `token`: its own session stays, every other ends. */
    changePassword: async (token: string) =>
      (
        await app().inject({
          method: 'POST',
          url: '/auth/password',
          headers: bearer(token),
          payload: { current_password: PASSWORD, new_password: 'another long passphrase' },
        })
      ).statusCode,
    /** Whether a token is active, as introspection (and so every resource server) sees it. */
    live: (token: string) => services().introspection.introspect(token).active,
    refresh: async (refreshToken: string) =>
      (
        await app().inject({
          method: 'POST',
          url: '/auth/token',
          headers: form,
          payload: new URLSearchParams({
            grant_type: 'refresh_token',
            refresh_token: refreshToken,
          }).toString(),
        })
      ).statusCode,
    /** The client registry as the CLI wires it, ending sessions through the app's own services. */
    registry(): ClientService {
      const s = services()
      return createClientService({
        clients: createClientsRepository(s.db),
        audit: s.audit,
        clock: { now: () => Date.now() },
        endSessions: (clientId) => s.sessions.endClient(clientId),
        revocations: s.revocations,
        accessTokenLifetimeMs: get().config.accessTokenExpireMinutes * 60_000,
      })
    },
    async client(name: string): Promise<Client> {
      return (
        await this.registry().create(operator, { name, redirectUris: [`https://${name}.example.com/cb`] })
      ).client
    },
    row: (id: string) =>
      inspect(get().dbUrl)
        .selectFrom('authgate_sessions')
        .selectAll()
        .where('id', '=', id)
        .executeTakeFirst(),
    liveStartedFrom: async (browserSessionId: string) =>
      (
        await inspect(get().dbUrl)
          .selectFrom('authgate_sessions')
          .select('id')
          .where('browser_session_id', '=', browserSessionId)
          .where('revoked_at', 'is', null)
          .execute()
      ).length,
  }
}

const sidOf = (jwt: string) =>
  (JSON.parse(Buffer.from(jwt.split('.')[1] ?? '', 'base64url').toString()) as { sid: string }).sid

describe('browser sessions', () => {
  // Frozen, so the cap's "least recently used" is decided by the test, not by the millisecond.
  const clock = frozenClock()
  let t: TestApp
  const h = harness(() => t)
  let wiki: Client
  let chat: Client
  beforeAll(async () => {
    t = await buildTestApp({}, { clock })
    wiki = await h.client('wiki')
    chat = await h.client('chat')
  })
  afterAll(() => t.close())

  it('start: a 256-bit cookie, stored only as its SHA-256; resolve finds it; the session list shows it', async () => {
    const ada = await h.user('ada')
    const { session, cookie } = await h.signIn(ada)
    expect(cookie).toMatch(/^[A-Za-z0-9_-]{43}$/) // 32 random bytes, base64url
    expect(session).toEqual({
      id: session.id,
      userId: ada.id,
      username: 'ada',
      authTime: clock.now(),
      amr: ['pwd'],
    })
    const row = await h.row(session.id)
    expect(row).toMatchObject({
      kind: 'browser',
      secret_hash: sha256Hex(cookie),
      client_id: null,
      browser_session_id: null,
      amr: '["pwd"]',
      auth_time: clock.now(),
      user_agent: browser.userAgent,
      revoked_at: null,
    })
    expect(JSON.stringify(row)).not.toContain(cookie)
    const tokens = await inspect(t.dbUrl)
      .selectFrom('authgate_refresh_tokens')
      .select('id')
      .where('session_id', '=', session.id)
      .execute()
    expect(tokens).toEqual([])

    expect(await h.services().browserSessions.resolve(cookie)).toEqual(session)
    for (const wrong of [undefined, '', `${cookie}x`, cookie.slice(1), randomToken(), sha256Hex(cookie)])
      expect(await h.services().browserSessions.resolve(wrong)).toBeUndefined()

    const token = await h.passwordToken('ada')
    const list = await t.app.inject({ url: '/auth/sessions', headers: bearer(token) })
    expect(list.statusCode).toBe(200)
    const byId = new Map((list.json() as { id: string }[]).map((s) => [s.id, s]))
    expect(byId.get(session.id)).toMatchObject({ kind: 'browser', client_id: null, current: false })
    expect(byId.get(sidOf(token))).toMatchObject({ kind: 'token', client_id: null, current: true })
  })

  it('end: ends it in the database and the revocation feed at once; a second end ends nothing', async () => {
    const bea = await h.user('bea')
    const { session, cookie } = await h.signIn(bea)
    expect(await h.services().browserSessions.end(cookie, 'logout')).toBe(1)
    expect(await h.services().browserSessions.resolve(cookie)).toBeUndefined()
    expect(await h.row(session.id)).toMatchObject({ revoked_reason: 'logout' })
    expect(h.services().revocations.isRevoked({ sid: session.id, id: bea.id })).toBe(true)
    const feed = await inspect(t.dbUrl)
      .selectFrom('authgate_revocations')
      .select(['kind', 'subject'])
      .where('subject', '=', session.id)
      .execute()
    expect(feed).toEqual([{ kind: 'session', subject: session.id }])
    expect(await h.services().browserSessions.end(cookie, 'logout')).toBe(0)
    expect(await h.services().browserSessions.end(randomToken(), 'logout')).toBe(0)
  })

  it('is refused at its start when the password changed after it was verified', async () => {
    const cy = await h.user('cy')
    expect(await h.changePassword(await h.passwordToken('cy'))).toBe(204)
    // `cy` was verified at the old epoch, as a login page that checked the old password would be.
    expect(await h.services().browserSessions.start(cy, { amr: ['pwd'], client: browser })).toBeUndefined()
    const rows = await inspect(t.dbUrl)
      .selectFrom('authgate_sessions')
      .select('id')
      .where('user_id', '=', cy.id)
      .where('kind', '=', 'browser')
      .execute()
    expect(rows).toEqual([])
  })

  it('a password change, logout everywhere, an operator and account deletion end it and what it started', async () => {
    const ends: Record<string, (name: string, token: string) => Promise<unknown>> = {
      'password change': async (_, token) => expect(await h.changePassword(token)).toBe(204),
      // No route yet: SessionService.end without ids is every session of the user.
      'logout everywhere': async (name) => {
        const user = await h.services().users.find(name)
        return h.services().sessions.end(user?.id ?? 0, 'logout')
      },
      'an operator (authgate user set-password)': (name) =>
        h.services().account.resetPassword(operator, name, 'an operator chose this one'),
      'account deletion': (_, token) =>
        t.app.inject({
          method: 'DELETE',
          url: '/auth/me',
          headers: bearer(token),
          payload: { password: PASSWORD },
        }),
    }
    for (const [what, end] of Object.entries(ends)) {
      const name = `u${Object.keys(ends).indexOf(what)}`
      const user = await h.user(name)
      const { cookie, session } = await h.signIn(user)
      const started = await h.exchange(user, session.id, wiki)
      const token = await h.passwordToken(name)
      expect(h.live(started?.accessToken ?? '')).toBe(true)
      await end(name, token)
      expect(await h.services().browserSessions.resolve(cookie), what).toBeUndefined()
      expect(h.live(started?.accessToken ?? ''), what).toBe(false)
      expect(await h.refresh(started?.refreshToken ?? ''), what).toBe(400)
    }
  })

  it('end ends the token sessions it started, at once, and only those', async () => {
    const dee = await h.user('dee')
    const first = await h.signIn(dee)
    clock.advance(1000)
    const second = await h.signIn(dee)
    const fromFirst = [
      await h.exchange(dee, first.session.id, wiki),
      await h.exchange(dee, first.session.id, chat),
    ]
    const fromSecond = await h.exchange(dee, second.session.id, wiki)
    const password = await h.passwordToken('dee')
    for (const pair of [...fromFirst, fromSecond]) expect(h.live(pair?.accessToken ?? '')).toBe(true)
    expect(await h.row(sidOf(fromFirst[0]?.accessToken ?? ''))).toMatchObject({
      kind: 'token',
      client_id: wiki.clientId,
      browser_session_id: first.session.id,
      scope: 'openid',
      amr: '["pwd"]',
    })

    expect(await h.services().browserSessions.end(first.cookie, 'logout')).toBe(3)
    for (const pair of fromFirst) {
      expect(h.live(pair?.accessToken ?? '')).toBe(false)
      expect(await h.refresh(pair?.refreshToken ?? '')).toBe(400)
    }
    expect(h.live(fromSecond?.accessToken ?? '')).toBe(true)
    expect(h.live(password)).toBe(true)
    expect(await h.services().browserSessions.resolve(second.cookie)).toBeDefined()
    // A code the ended browser session led to, exchanged after its end, starts nothing.
    expect(await h.exchange(dee, first.session.id, wiki)).toBeUndefined()
    expect(await h.liveStartedFrom(first.session.id)).toBe(0)

    const list = (await t.app.inject({ url: '/auth/sessions', headers: bearer(password) })).json()
    expect(list.map((s: { kind: string; client_id: string | null }) => [s.kind, s.client_id]).sort()).toEqual(
      [
        ['browser', null],
        ['token', null],
        ['token', wiki.clientId],
      ],
    )
  })

  it('DELETE /auth/sessions/{id} of a browser session ends it and what it started', async () => {
    const eve = await h.user('eve')
    const { cookie, session } = await h.signIn(eve)
    const started = await h.exchange(eve, session.id, wiki)
    const token = await h.passwordToken('eve')
    const del = await t.app.inject({
      method: 'DELETE',
      url: `/auth/sessions/${session.id}`,
      headers: bearer(token),
    })
    expect(del.statusCode).toBe(204)
    expect(await h.services().browserSessions.resolve(cookie)).toBeUndefined()
    expect(h.live(started?.accessToken ?? '')).toBe(false)
    expect(h.live(token)).toBe(true)
  })

  it("a code exchange starts nothing for a deleted client or another user's browser session", async () => {
    const fay = await h.user('fay')
    const gus = await h.user('gus')
    const { session } = await h.signIn(fay)
    const gone = await h.client('gone')
    expect(await h.registry().delete(operator, gone.clientId)).toBeDefined()
    expect(await h.exchange(fay, session.id, gone)).toBeUndefined()
    expect(await h.exchange(gus, session.id, wiki)).toBeUndefined()
    // The control: the same exchange for a registered client and the user's own browser session.
    expect(await h.exchange(fay, session.id, wiki)).toBeDefined()
  })

  it("deleting a client ends its sessions at once, of every user; other clients' and first-party ones stay", async () => {
    const doomed = await h.client('doomed')
    const hal = await h.user('hal')
    const ivy = await h.user('ivy')
    const hals = await h.signIn(hal)
    const ended = [await h.exchange(hal, hals.session.id, doomed), await h.exchange(ivy, null, doomed)]
    const kept = [await h.exchange(hal, hals.session.id, wiki), await h.exchange(ivy, null, chat)]
    const password = await h.passwordToken('ivy')
    for (const pair of [...ended, ...kept]) expect(h.live(pair?.accessToken ?? '')).toBe(true)

    expect(await h.registry().delete(operator, doomed.clientId)).toMatchObject({ clientId: doomed.clientId })
    for (const pair of ended) {
      expect(h.live(pair?.accessToken ?? '')).toBe(false)
      expect(await h.refresh(pair?.refreshToken ?? '')).toBe(400)
      expect(await h.row(sidOf(pair?.accessToken ?? ''))).toMatchObject({ revoked_reason: 'client_deleted' })
    }
    for (const token of [...kept.map((p) => p?.accessToken ?? ''), password]) expect(h.live(token)).toBe(true)
    expect(await h.services().browserSessions.resolve(hals.cookie)).toBeDefined()
    await h.services().audit.flush()
    const audited = await inspect(t.dbUrl)
      .selectFrom('authgate_audit_log')
      .select('detail')
      .where('type', '=', 'client.deleted')
      .execute()
    expect(audited.map((r) => JSON.parse(r.detail ?? '{}'))).toContainEqual(
      expect.objectContaining({ clientId: doomed.clientId, endedSessions: 2 }),
    )
  })

  it('deleting a client with the CLI: the running server refuses its tokens within its poll', async () => {
    const cli = await h.client('cli-deleted')
    const jo = await h.user('jo')
    const pair = await h.exchange(jo, null, cli)
    expect(h.live(pair?.accessToken ?? '')).toBe(true)
    const run = await runCli(['clients', 'delete', cli.clientId], {
      DATABASE_URL: t.dbUrl,
      ...TEST_REDIS_ENV,
    })
    expect(run).toMatchObject({ code: 0, stderr: '' })
    expect(await h.refresh(pair?.refreshToken ?? '')).toBe(400)
    // The CLI has no view of the app's: the app reads the feed (every 250 ms on SQLite; NOTIFY on PostgreSQL).
    await expect.poll(() => h.live(pair?.accessToken ?? ''), { timeout: 2_000, interval: 20 }).toBe(false)
  })

  describe('races', () => {
    /**
     * RACERS calls of `each`, one per turn of the event loop and round trip to the database (a
     * query of the test's own connection between them), with `other` started halfway: each call
     * takes several round trips, so some finish before `other`, some overlap it and some start
     * after it, on SQLite (one connection, queued in call order) as on PostgreSQL (a pool). On
     * PostgreSQL an end may still come after every exchange: it waits for the user's row, which
     * overlapping exchanges keep holding FOR SHARE (lockUsers); it then ends them all.
     */
    async function midway<T, U>(
      each: (i: number) => Promise<T>,
      other: () => Promise<U>,
    ): Promise<[Promise<T>[], Promise<U>]> {
      const calls: Promise<T>[] = []
      let started: Promise<U> | undefined
      for (let i = 0; i < RACERS; i++) {
        if (i === RACERS / 2) started = other()
        calls.push(each(i))
        await new Promise(setImmediate)
        await inspect(t.dbUrl).selectFrom('users').select('id').limit(1).execute()
      }
      return [calls, started as Promise<U>]
    }

    it(`${RACERS} concurrent ends and resolves: none resolves once an end has returned; each session ends once`, async () => {
      const kim = await h.user('kim')
      const { cookie, session } = await h.signIn(kim)
      const started = [
        await h.exchange(kim, session.id, wiki),
        await h.exchange(kim, session.id, chat),
        await h.exchange(kim, session.id, wiki),
      ]
      const service = h.services().browserSessions
      let firstEndAt = Number.POSITIVE_INFINITY
      let ending = true
      const ends = Array.from({ length: RACERS }, async () => {
        const count = await service.end(cookie, 'logout')
        firstEndAt = Math.min(firstEndAt, performance.now())
        return count
      })
      const late: boolean[] = []
      const resolves = Array.from({ length: RACERS }, async () => {
        // Each resolves again as soon as it has an answer, until every end has returned, and once more.
        for (let more = true; more; ) {
          more = ending
          const at = performance.now()
          const live = (await service.resolve(cookie)) !== undefined
          if (at > firstEndAt) late.push(live)
        }
      })
      const counts = await Promise.all(ends)
      ending = false
      await Promise.all(resolves)
      expect(late.length).toBeGreaterThanOrEqual(RACERS)
      expect(late.filter((live) => live)).toEqual([])
      // The browser session and the three it started, each ended by exactly one of the ends.
      expect(counts.reduce((a, b) => a + b, 0)).toBe(4)
      const ids = [session.id, ...started.map((p) => sidOf(p?.accessToken ?? ''))]
      const feed = await inspect(t.dbUrl)
        .selectFrom('authgate_revocations')
        .select('subject')
        .where('subject', 'in', ids)
        .execute()
      expect(feed.map((r) => r.subject).sort()).toEqual([...ids].sort())
      for (const pair of started) expect(h.live(pair?.accessToken ?? '')).toBe(false)
    })

    it(`${RACERS} code exchanges racing their browser session's end: none is live after it`, async () => {
      const lee = await h.user('lee')
      const { cookie, session } = await h.signIn(lee)
      const [exchanges, end] = await midway(
        (i) => h.exchange(lee, session.id, i % 2 ? wiki : chat),
        () => h.services().browserSessions.end(cookie, 'logout'),
      )
      const pairs = (await Promise.all(exchanges)).filter((p) => p !== undefined && p !== null)
      await end
      console.info(`[browser sessions] ${pairs.length} of ${RACERS} exchanges got tokens before the end`)
      expect(await h.liveStartedFrom(session.id)).toBe(0)
      for (const pair of pairs) expect(h.live(pair.accessToken)).toBe(false)
      expect(await h.exchange(lee, session.id, wiki)).toBeUndefined()
    })

    it(`${RACERS} code exchanges racing their client's deletion: none is live after it`, async () => {
      const racing = await h.client('racing')
      const mo = await h.user('mo')
      const [exchanges, deletion] = await midway(
        () => h.exchange(mo, null, racing),
        () => h.registry().delete(operator, racing.clientId),
      )
      const pairs = (await Promise.all(exchanges)).filter((p) => p !== undefined && p !== null)
      expect(await deletion).toBeDefined()
      console.info(`[browser sessions] ${pairs.length} of ${RACERS} exchanges got tokens before the deletion`)
      const live = await inspect(t.dbUrl)
        .selectFrom('authgate_sessions')
        .select('id')
        .where('client_id', '=', racing.clientId)
        .where('revoked_at', 'is', null)
        .execute()
      expect(live).toEqual([])
      for (const pair of pairs) expect(h.live(pair.accessToken)).toBe(false)
    })
  })
})

describe('the lifetime of a browser session, and the cap', () => {
  // Three days: the idle case below stays inside it, so what ends that session is the idle limit.
  const MAX_DAYS = 3
  const clock = frozenClock()
  let t: TestApp
  const h = harness(() => t)
  beforeAll(async () => {
    t = await buildTestApp(
      { SESSION_MAX_DAYS: String(MAX_DAYS), REFRESH_TOKEN_EXPIRE_DAYS: '1', MAX_SESSIONS_PER_USER: '3' },
      { clock },
    )
  })
  afterAll(() => t.close())

  it('ends after a day unused; each use moves that on, written at most once a minute', async () => {
    const { cookie, session } = await h.signIn(await h.user('idle'))
    const resolve = () => h.services().browserSessions.resolve(cookie)
    clock.advance(30_000)
    expect(await resolve()).toBeDefined()
    // Within the minute: a read, not a write.
    expect(await h.row(session.id)).toMatchObject({ last_used_at: session.authTime })
    clock.advance(BROWSER_SESSION_IDLE_MS - 60_000)
    expect(await resolve()).toBeDefined()
    expect(await h.row(session.id)).toMatchObject({ last_used_at: clock.now() })
    clock.advance(BROWSER_SESSION_IDLE_MS - 1)
    expect(await resolve()).toBeDefined()
    clock.advance(BROWSER_SESSION_IDLE_MS)
    expect(await resolve()).toBeUndefined()
    // No longer listed either.
    const token = await h.passwordToken('idle')
    const list = (await t.app.inject({ url: '/auth/sessions', headers: bearer(token) })).json()
    expect(list.map((s: { kind: string }) => s.kind)).toEqual(['token'])
  })

  it('ends SESSION_MAX_DAYS after the login, however often it is used', async () => {
    const { cookie, session } = await h.signIn(await h.user('busy'))
    const max = MAX_DAYS * 24 * HOUR
    for (let at = 12 * HOUR; at < max; at += 12 * HOUR) {
      clock.set(session.authTime + at)
      expect(await h.services().browserSessions.resolve(cookie), `${at / HOUR} h`).toBeDefined()
    }
    clock.set(session.authTime + max - 1)
    expect(await h.services().browserSessions.resolve(cookie)).toBeDefined()
    clock.set(session.authTime + max)
    expect(await h.services().browserSessions.resolve(cookie)).toBeUndefined()
  })

  it('counts toward MAX_SESSIONS_PER_USER, and the cap ends the least recently used one like any other', async () => {
    const user = await h.user('capped')
    const older = await h.signIn(user)
    clock.advance(1000)
    const newer = await h.signIn(user)
    clock.advance(1000)
    await h.passwordToken('capped')
    clock.advance(1000)
    // The fourth session: the least recently used (the older browser session) ends.
    await h.passwordToken('capped')
    expect(await h.services().browserSessions.resolve(older.cookie)).toBeUndefined()
    expect(await h.row(older.session.id)).toMatchObject({ revoked_reason: 'session_limit' })
    expect(await h.services().browserSessions.resolve(newer.cookie)).toBeDefined()
    // And a new browser session is a session like any other: the least recently used (now the
    // newer browser session) goes.
    clock.advance(1000)
    const latest = await h.signIn(user)
    expect(await h.services().browserSessions.resolve(newer.cookie)).toBeUndefined()
    expect(await h.services().browserSessions.resolve(latest.cookie)).toBeDefined()
  })

  it('spares the browser session whose codes start the new sessions, though its last use is written once a minute', async () => {
    // The trap: a browser signing in to clients faster than BROWSER_SESSION_TOUCH_MS writes
    // last_used_at looked like the least recently used session of all, and was signed out by its
    // own code exchanges.
    const user = await h.user('many-clients')
    const client = await h.client('many')
    const { cookie, session } = await h.signIn(user)
    const exchanges: string[] = []
    for (let i = 0; i < 4; i++) {
      clock.advance(1000)
      const pair = await h.exchange(user, session.id, client)
      if (!pair) throw new Error('the exchange was refused')
      exchanges.push(pair.sessionId)
    }
    expect(await h.row(session.id)).toMatchObject({ revoked_at: null, last_used_at: session.authTime })
    expect(await h.services().browserSessions.resolve(cookie)).toBeDefined()
    // Four exchange sessions and the browser's: the cap (3) ended the two oldest exchanges.
    for (const id of exchanges.slice(0, 2)) {
      expect(await h.row(id)).toMatchObject({ revoked_reason: 'session_limit' })
    }
    for (const id of exchanges.slice(2)) expect(await h.row(id)).toMatchObject({ revoked_at: null })
  })
})

/** test/helpers/browser-session-worker.ts in a process of its own, on `databaseUrl`. */
async function startResolver(
  databaseUrl: string,
): Promise<{ live(cookie: string): Promise<boolean>; stop(): Promise<void> }> {
  const child: ChildProcess = spawn(
    process.execPath,
    ['--import', 'tsx', 'test/helpers/browser-session-worker.ts'],
    {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', DATABASE_URL: databaseUrl },
      stdio: ['pipe', 'pipe', 'pipe'],
    },
  )
  let stderr = ''
  child.stderr?.on('data', (d) => {
    stderr += d
  })
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream })
  const waiting: ((line: string) => void)[] = []
  lines.on('line', (line) => waiting.shift()?.(line))
  const next = () => new Promise<string>((resolve) => waiting.push(resolve))
  const exited = once(child, 'exit')
  const ready = await Promise.race([next(), exited.then(([code]) => `exited with ${code}: ${stderr}`)])
  if (ready !== 'ready') throw new Error(`the resolver did not start: ${ready}`)
  return {
    async live(cookie) {
      const answer = next()
      child.stdin?.write(`${cookie}\n`)
      return (JSON.parse(await answer) as { live: boolean }).live
    },
    async stop() {
      child.stdin?.end()
      await exited
    },
  }
}

describe('two processes on one database', () => {
  let t: TestApp
  const h = harness(() => t)
  let other: ServerProcess
  let resolver: Awaited<ReturnType<typeof startResolver>>
  beforeAll(async () => {
    // One deployment: the same issuer; the second server reads the signing key the first made.
    t = await buildTestApp({ JWT_ISSUER: ISSUER })
    other = await startServerProcess({ DATABASE_URL: t.dbUrl, JWT_ISSUER: ISSUER, ...TEST_REDIS_ENV })
    resolver = await startResolver(t.dbUrl)
  }, 60_000)
  afterAll(async () => {
    await Promise.all([other?.stop(), resolver?.stop()])
    await t.close()
  })

  it('an ended browser session is refused by the other processes at once, with what it started', async () => {
    const wiki = await h.client('wiki')
    const nia = await h.user('nia')
    const { cookie, session } = await h.signIn(nia)
    const started = await h.exchange(nia, session.id, wiki)
    // GET /userinfo there: a client's access token is good at the userinfo endpoint, not at GET /.
    const greetThere = async () =>
      (await fetch(`${other.url}/userinfo`, { headers: bearer(started?.accessToken ?? '') })).status
    expect(await greetThere()).toBe(200)
    expect(await resolver.live(cookie)).toBe(true)

    expect(await h.services().browserSessions.end(cookie, 'logout')).toBe(2)
    const endedAt = performance.now()
    // The cookie: the other process reads the session's row, so it is refused on the next look.
    expect(await resolver.live(cookie)).toBe(false)
    // The tokens it started: the other server's view, from the revocation feed (a signal on
    // PostgreSQL, its 250 ms poll on SQLite), within a second as for every revocation.
    await expect.poll(greetThere, { timeout: 1_000, interval: 10 }).toBe(401)
    console.info(
      `[browser sessions] refused on the other server after ${Math.round(performance.now() - endedAt)} ms`,
    )
  })
})
