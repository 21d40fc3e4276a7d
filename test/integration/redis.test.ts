// REDIS_URL: throttling counters and the change broadcast in Redis, and what happens when Redis
// goes away. The Redis is the machine's real server, reached through a TCP proxy the test can
// close (refused connections) or turn into a black hole; the database is the run's own (SQLite,
// or PostgreSQL in the second run). Skipped loudly without Redis; required under CI=true.
import { Writable } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import pino from 'pino'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { buildApp } from '../../src/app.js'
import { loadConfig } from '../../src/config.js'
import { buildTestApp, fastHasher, inspect, requirePrerequisite, type TestApp } from '../helpers/app.js'
import { bearer, greet, logIn, signUp } from '../helpers/http.js'
import { redisInspector, redisUnreachable, testPrefix, testRedisUrl } from '../helpers/redis-server.js'
import { freePort } from '../helpers/server-process.js'
import { TcpProxy } from '../helpers/tcp-proxy.js'

const redisUrl = testRedisUrl()
const why = redisUrl === undefined ? 'TEST_REDIS_URL is not set' : await redisUnreachable(redisUrl)
const ready = requirePrerequisite(
  why === undefined,
  `Redis for the REDIS_URL tests (${why}; e.g. TEST_REDIS_URL=redis://127.0.0.1:6379)`,
)

describe.skipIf(!ready)('REDIS_URL', () => {
  const target = new URL(redisUrl ?? 'redis://127.0.0.1:6379')
  const prefix = testPrefix()
  const peek = redisInspector(target.href)
  let proxy: TcpProxy
  let t: TestApp
  const lines: { level: number; msg: string }[] = []
  const logger = pino(
    { level: 'info' },
    new Writable({
      write(chunk, _enc, done) {
        for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line))
        done()
      },
    }),
  )
  const logged = (text: string) => lines.some((l) => l.msg.includes(text))

  beforeAll(async () => {
    proxy = new TcpProxy(await freePort(), { host: target.hostname, port: Number(target.port || 6379) })
    await proxy.set('open')
    const via = new URL(target.href)
    via.port = String(proxy.port)
    t = await buildTestApp(
      { REDIS_URL: via.href, REDIS_KEY_PREFIX: prefix, RATE_LIMIT: 'on', LOGIN_MAX_FAILURES: '3' },
      { logger },
    )
  })
  afterEach(async () => {
    // Each test starts with Redis reachable and the app using it again.
    if (proxy.mode === 'open') return
    const mark = lines.length
    await proxy.set('open')
    await redisBack(mark)
  })
  afterAll(async () => {
    await t?.close()
    await proxy?.set('refuse')
    await peek.drop(prefix)
    await peek.close()
  })

  /** The statuses of four logins with a wrong password, one after another. */
  async function fourWrongPasswords(app: FastifyInstance, username: string): Promise<number[]> {
    const codes = []
    for (let i = 0; i < 4; i++) codes.push((await logIn(app, username, 'wrong password!')).statusCode)
    return codes
  }

  const counterRows = (key: string) =>
    inspect(t.dbUrl).selectFrom('authgate_throttle').select('count').where('key', '=', key).execute()

  /** Waits until the app reports its Redis link up again after the proxy reopened. */
  async function redisBack(since: number): Promise<void> {
    await expect
      .poll(() => lines.slice(since).some((l) => l.msg.includes('Redis is back')), {
        timeout: 5_000,
        interval: 20,
        message: 'Redis did not come back',
      })
      .toBe(true)
  }

  it('counts failed logins in Redis, not in the database', async () => {
    await signUp(t.app, 'ada')
    const codes = await fourWrongPasswords(t.app, 'ada')
    expect(codes).toEqual([401, 401, 401, 429])
    expect(await peek.client.hget(`${prefix}throttle:login-account:ada`, 'c')).toBe('3')
    expect(await counterRows('login-account:ada')).toEqual([])
  })

  it('goes on throttling in the database while Redis refuses connections, and says so', async () => {
    await signUp(t.app, 'grace')
    await proxy.set('refuse')
    const codes = await fourWrongPasswords(t.app, 'grace')
    // Never a 5xx, never a free pass: the fourth attempt is refused exactly as with Redis.
    expect(codes).toEqual([401, 401, 401, 429])
    expect((await counterRows('login-account:grace'))[0]?.count).toBeGreaterThanOrEqual(3)
    expect(logged('Redis unavailable')).toBe(true)
    // The owner still logs in (a success takes its count back) and sign-ups still work.
    expect((await signUp(t.app, 'outage-newcomer')).statusCode).toBe(201)
  })

  it('keeps counting what was counted during an outage once Redis is back', async () => {
    await signUp(t.app, 'hopper')
    await proxy.set('refuse')
    for (let i = 0; i < 2; i++) expect((await logIn(t.app, 'hopper', 'wrong password!')).statusCode).toBe(401)
    const mark = lines.length
    await proxy.set('open')
    await redisBack(mark)
    // Two failures in the database, one more in Redis: that is the limit, the next is refused.
    expect((await logIn(t.app, 'hopper', 'wrong password!')).statusCode).toBe(401)
    expect((await logIn(t.app, 'hopper', 'wrong password!')).statusCode).toBe(429)
    expect(await peek.client.hget(`${prefix}throttle:login-account:hopper`, 'c')).not.toBeNull()
  })

  it('answers quickly, never 5xx, when Redis stops answering (a black hole)', async () => {
    await signUp(t.app, 'lovelace')
    await proxy.set('blackhole')
    const started = Date.now()
    const codes = await fourWrongPasswords(t.app, 'lovelace')
    expect(codes).toEqual([401, 401, 401, 429])
    // The first command waits out the 500 ms command timeout; after that Redis is not asked.
    expect(Date.now() - started).toBeLessThan(3_000)
  })

  it('answers quickly, never 5xx, when open Redis connections go silent, and comes back', async () => {
    await signUp(t.app, 'hamilton')
    const mark = lines.length
    // The connection AuthGate holds stops answering without closing: only the 500 ms command
    // timeout can tell, and the link is then dropped and made anew.
    await proxy.set('stall')
    const started = Date.now()
    const codes = await fourWrongPasswords(t.app, 'hamilton')
    expect(codes).toEqual([401, 401, 401, 429])
    expect(Date.now() - started).toBeLessThan(3_000)
    expect(lines.slice(mark).some((l) => l.msg.includes('Redis unavailable'))).toBe(true)
    const back = lines.length
    await proxy.set('open')
    await redisBack(back)
    proxy.endSilent()
  })

  it('starts without Redis, says so, and throttles in the database', async () => {
    const startLines: { msg: string }[] = []
    const startLogger = pino(
      { level: 'info' },
      new Writable({
        write(chunk, _enc, done) {
          for (const line of chunk.toString().split('\n').filter(Boolean)) startLines.push(JSON.parse(line))
          done()
        },
      }),
    )
    // Nothing listens on this port: every connection is refused.
    const nowhere = `redis://127.0.0.1:${await freePort()}`
    const lonely = await buildTestApp(
      { REDIS_URL: nowhere, REDIS_KEY_PREFIX: prefix, RATE_LIMIT: 'on', LOGIN_MAX_FAILURES: '3' },
      { logger: startLogger },
    )
    try {
      expect(startLines.some((l) => l.msg.includes('Redis unavailable'))).toBe(true)
      await signUp(lonely.app, 'solo')
      const codes = await fourWrongPasswords(lonely.app, 'solo')
      expect(codes).toEqual([401, 401, 401, 429])
    } finally {
      await lonely.close()
    }
  })

  it('signals a revocation through Redis: another instance honours it at once', async () => {
    // A second instance on the same database and Redis, polling the feed only once a minute: only
    // the signal can make it notice within the second.
    const other = await buildApp(
      loadConfig({ ...configEnv(t), REDIS_URL: target.href, REDIS_KEY_PREFIX: prefix }),
      { hasher: fastHasher, revocationPollMs: 60_000 },
    )
    const heard: string[] = []
    const listener = new Redis(target.href)
    try {
      await listener.subscribe(`${prefix}changes`)
      listener.on('message', (_channel, message: string) => heard.push(message))
      await signUp(t.app, 'turing')
      const { access_token } = (await logIn(other, 'turing')).json()
      expect((await greet(other, access_token)).statusCode).toBe(200)

      const out = await t.app.inject({
        method: 'POST',
        url: '/auth/logout',
        headers: bearer(access_token),
      })
      expect(out.statusCode).toBe(204)
      await expect
        .poll(async () => (await greet(other, access_token)).statusCode, { timeout: 1_000, interval: 10 })
        .toBe(401)
      expect(heard.some((m) => m.startsWith('revocations '))).toBe(true)
    } finally {
      listener.disconnect()
      await other.close()
    }
  })
})

/** The environment a second instance needs to be the same deployment as `t`. */
function configEnv(t: TestApp): Record<string, string> {
  return { DATABASE_URL: t.dbUrl, JWT_ISSUER: t.config.jwtIssuer, RATE_LIMIT: 'on', LOGIN_MAX_FAILURES: '3' }
}
