import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { inspect, requirePrerequisite } from '../helpers/app.js'
import { runCli } from '../helpers/cli.js'
import { bearer, decodeProtectedHeader, greet, logIn, pairOf, refresh, signUp } from '../helpers/http.js'
import { msUntil } from '../helpers/poll.js'
import {
  CI_DATABASE_URL,
  createTestDatabase,
  type ServerTestDatabase,
  testServerUrl,
  unreachable,
} from '../helpers/postgres-server.js'
import {
  CI_REDIS_URL,
  redisInspector,
  redisUnreachable,
  testPrefix,
  testRedisUrl,
  throttleCounter,
} from '../helpers/redis-server.js'
import { type ServerProcess, startServerProcess } from '../helpers/server-process.js'

const pgServer = testServerUrl() ?? CI_DATABASE_URL
const pgWhy = await unreachable(pgServer)
const pgReady = requirePrerequisite(
  pgWhy === undefined,
  `PostgreSQL at ${pgServer} for the multi-instance tests (${pgWhy})`,
)
const redisUrl = testRedisUrl() ?? CI_REDIS_URL
const redisWhy = await redisUnreachable(redisUrl)
const redisReady = requirePrerequisite(
  redisWhy === undefined,
  `Redis at ${redisUrl} for the multi-instance tests with REDIS_URL (${redisWhy})`,
)

describe.each([
  { topology: 'PostgreSQL', redis: false, run: pgReady },
  { topology: 'PostgreSQL + Redis', redis: true, run: pgReady && redisReady },
])('two instances on $topology', ({ redis, run }) => {
  let database: ServerTestDatabase
  const prefix = testPrefix()
  let databaseUrl: string
  let env: Record<string, string>
  let a: ServerProcess
  let b: ServerProcess

  beforeAll(async () => {
    if (!run) return
    database = await createTestDatabase(pgServer)
    databaseUrl = database.url
    env = {
      DATABASE_URL: databaseUrl,
      // One deployment: one issuer, one algorithm, behind one load balancer.
      JWT_ISSUER: 'https://auth.example.test',
      JWT_ALGORITHM: 'ES256',
      LOGIN_MAX_FAILURES: '3',
      ...(redis ? { REDIS_URL: redisUrl, REDIS_KEY_PREFIX: prefix } : {}),
    }
    // Started one after the other: the first migrates and makes the key; both then run together.
    a = await startServerProcess(env)
    b = await startServerProcess(env)
  }, 90_000)
  afterAll(async () => {
    if (!run) return
    await Promise.all([a?.stop(), b?.stop()])
    await inspect(databaseUrl).destroy()
    await database.drop()
    if (redis) {
      const peek = redisInspector(redisUrl)
      await peek.drop(prefix)
      await peek.close()
    }
  })

  it.runIf(run)('honours a revocation made on one instance on the other within 1 s', async () => {
    expect((await signUp(a, 'roamer')).status).toBe(201)
    const delays: number[] = []
    for (let i = 0; i < 6; i++) {
      // Alternate: log in on one, log out on it, watch the other.
      const [here, there] = i % 2 === 0 ? [a, b] : [b, a]
      const pair = await pairOf(await logIn(here, 'roamer'))
      expect((await greet(there, pair.access_token)).status).toBe(200)
      const out = await fetch(`${here.url}/auth/logout`, {
        method: 'POST',
        headers: bearer(pair.access_token),
      })
      expect(out.status).toBe(204)
      delays.push(await msUntil(async () => (await greet(there, pair.access_token)).status === 401))
    }
    expect(Math.max(...delays)).toBeLessThan(1_000)
    // A signal, not the once-a-second poll (which would spread these over 0-1000 ms).
    delays.sort((x, y) => x - y)
    expect(delays[3]).toBeLessThan(250)
  })

  it.runIf(run)('leaves one lineage when refreshes of one token race across instances', async () => {
    expect((await signUp(b, 'racer')).status).toBe(201)
    const pair = await pairOf(await logIn(a, 'racer'))
    const responses = await Promise.all(
      Array.from({ length: 12 }, (_, i) => refresh(i % 2 === 0 ? a : b, pair.refresh_token)),
    )
    expect(responses.map((r) => r.status)).toEqual(Array(12).fill(200))
    const bodies = (await Promise.all(responses.map((r) => r.json()))) as { refresh_token: string }[]
    // Every racer got the winner's pair (the grace retry), on either instance.
    expect(new Set(bodies.map((x) => x.refresh_token)).size).toBe(1)
    const db = inspect(databaseUrl)
    const user = await db
      .selectFrom('users')
      .select('id')
      .where('username', '=', 'racer')
      .executeTakeFirstOrThrow()
    const tokens = await db
      .selectFrom('authgate_refresh_tokens as t')
      .innerJoin('authgate_sessions as s', 's.id', 't.session_id')
      .select(['t.spent_at', 't.successor'])
      .where('s.user_id', '=', user.id)
      .execute()
    // The original, spent once, and its one successor, unspent.
    expect(tokens).toHaveLength(2)
    expect(tokens.filter((t) => t.spent_at === null)).toHaveLength(1)
  })

  it.runIf(run)('shares throttling counts between the instances', async () => {
    expect((await signUp(a, 'target')).status).toBe(201)
    const codes: number[] = []
    for (let i = 0; i < 4; i++)
      codes.push((await logIn(i % 2 === 0 ? a : b, 'target', 'wrong password!')).status)
    // LOGIN_MAX_FAILURES=3 across the deployment, not per process.
    expect(codes).toEqual([401, 401, 401, 429])
    expect((await logIn(a, 'target', 'wrong password!')).status).toBe(429)
    // Counted in Redis and only there, or else in the database.
    expect(
      await throttleCounter(
        databaseUrl,
        'login-account:target',
        redis ? { url: redisUrl, prefix } : undefined,
      ),
    ).toEqual(redis ? { database: [], redis: '3' } : { database: [3], redis: null })
  })

  it.runIf(run)('makes a key rotation seen by both instances at once', async () => {
    const jwks = async (on: ServerProcess) =>
      ((await (await fetch(`${on.url}/.well-known/jwks.json`)).json()) as { keys: { kid: string }[] }).keys
    const before = (await jwks(a))[0]?.kid
    expect((await jwks(b))[0]?.kid).toBe(before)
    // A short activation delay: the new key signs 2 s after it is published.
    const rotated = await runCli(['keys', 'rotate'], { ...env, KEY_ACTIVATION_DELAY_SECONDS: '2' })
    expect(rotated.code, rotated.stderr).toBe(0)
    const kid = /New signing key (\S+)/.exec(rotated.stdout)?.[1]
    expect(kid).toBeDefined()
    expect(kid).not.toBe(before)
    // Published by both within 1 s (the signal; servers also re-read the keys every second).
    const delays = await Promise.all(
      [a, b].map((on) => msUntil(async () => (await jwks(on)).some((k) => k.kid === kid))),
    )
    expect(Math.max(...delays)).toBeLessThan(1_000)
    expect((await signUp(a, 'signer')).status).toBe(201)
    // Then both sign with it once the delay has passed (by their clocks, with no further signal).
    for (const on of [a, b]) {
      await msUntil(
        async () => decodeProtectedHeader((await pairOf(await logIn(on, 'signer'))).access_token).kid === kid,
      )
      expect((await jwks(on))[0]?.kid).toBe(kid)
    }
  })

  it.runIf(run)('writes one unforked audit chain from both instances at once', async () => {
    const made = await Promise.all(
      Array.from({ length: 16 }, (_, i) => signUp(i % 2 === 0 ? a : b, `crowd-${i}`)),
    )
    expect(made.map((r) => r.status)).toEqual(Array(16).fill(201))
    const verified = await runCli(['audit', 'verify'], env)
    expect(verified.code, verified.stderr).toBe(0)
    expect(verified.stdout).toMatch(/^OK: \d+ entries/)
    const entries = await inspect(databaseUrl)
      .selectFrom('authgate_audit_log')
      .select(['seq', 'prev_hash', 'hash', 'type'])
      .orderBy('seq')
      .execute()
    expect(entries.filter((e) => e.type === 'user.registered').length).toBeGreaterThanOrEqual(16)
    // A fork is two entries claiming one predecessor; in a chain each links to the one before.
    expect(new Set(entries.map((e) => e.prev_hash)).size).toBe(entries.length)
    for (let i = 1; i < entries.length; i++) expect(entries[i]?.prev_hash).toBe(entries[i - 1]?.hash)
  })
})
