// METRICS_PORT (issue 10 item 7): Prometheus text on a listener of its own, scraped over real
// HTTP after real logins, refreshes, a logout and sign-ups on the public port; no listener without
// it; /metrics is not on the public port; a database error is counted, an expected conflict not.
import { readdirSync, readFileSync, readlinkSync } from 'node:fs'
import type { FastifyInstance } from 'fastify'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadConfig } from '../../src/config.js'
import { serve } from '../../src/server.js'
import { freshDatabase, inspect, PASSWORD, TEST_REDIS_ENV, type TestDatabase } from '../helpers/app.js'
import { bearer, greet, logIn, refresh, signUp } from '../helpers/http.js'
import { freePort } from '../helpers/server-process.js'

type Labels = Record<string, string>

/** The samples of a Prometheus text exposition, as name, labels and value. */
function parseExposition(text: string): { name: string; labels: Labels; value: number }[] {
  const samples = []
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (!m) throw new Error(`not a sample line: ${line}`)
    const labels: Labels = {}
    for (const pair of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[pair[1] as string] = pair[2] as string
    }
    samples.push({ name: m[1] as string, labels, value: Number(m[3]) })
  }
  return samples
}

/** The value of the one sample of `name` whose labels include `labels`; undefined when none. */
function sample(text: string, name: string, labels: Labels = {}): number | undefined {
  const found = parseExposition(text).filter(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  )
  if (found.length > 1) throw new Error(`${name} ${JSON.stringify(labels)}: ${found.length} samples`)
  return found[0]?.value
}

/** Ports this process listens on (TCP, IPv4 and IPv6), from /proc: a listener by any means. */
function ownListeningPorts(): Set<number> {
  const inodes = new Set<string>()
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${fd}`))
      if (m) inodes.add(m[1] as string)
    } catch {
      // closed meanwhile
    }
  }
  const ports = new Set<number>()
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(table, 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/)
      // st 0A is LISTEN; field 9 the socket's inode.
      if (f.length > 9 && f[3] === '0A' && inodes.has(f[9] as string)) {
        ports.add(Number.parseInt((f[1] as string).split(':')[1] as string, 16))
      }
    }
  }
  return ports
}

async function startServer(env: Record<string, string>) {
  const db = await freshDatabase()
  const port = await freePort()
  const config = loadConfig({
    DATABASE_URL: db.url,
    HOST: '127.0.0.1',
    PORT: String(port),
    LOG_LEVEL: 'silent',
    ...TEST_REDIS_ENV,
    ...env,
  })
  const app = await serve(config, { signals: false })
  return { app, db, url: `http://127.0.0.1:${port}` }
}

describe('with METRICS_PORT', () => {
  let app: FastifyInstance
  let db: TestDatabase
  let url: string
  let metricsPort: number
  let listenersBefore: Set<number>
  const scrape = async () => {
    const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`)
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/)
    return res.text()
  }

  beforeAll(async () => {
    metricsPort = await freePort()
    listenersBefore = ownListeningPorts()
    ;({ app, db, url } = await startServer({
      METRICS_PORT: String(metricsPort),
      RATE_LIMIT: 'on',
      LOGIN_MAX_FAILURES: '2',
      REGISTRATIONS_PER_IP_PER_HOUR: '3',
    }))
  }, 30_000)
  afterAll(async () => {
    await app?.close()
    await db?.drop()
  })

  it('listens on HOST:METRICS_PORT besides PORT, and /metrics is a 404 on the public port', async () => {
    const publicPort = Number(new URL(url).port)
    const added = [...ownListeningPorts()].filter((p) => !listenersBefore.has(p)).sort()
    expect(added).toEqual([publicPort, metricsPort].sort())
    expect((await fetch(`${url}/metrics`)).status).toBe(404)
    expect((await fetch(`http://127.0.0.1:${metricsPort}/`)).status).toBe(404)
  })

  it('counts logins, refreshes, revocations, sign-ups and throttling as they happened', async () => {
    const login = (password: string) => logIn(url, 'alice', password)

    expect((await signUp(url, 'alice')).status).toBe(201)
    const first = await login(PASSWORD)
    expect(first.status).toBe(200)
    const second = await login(PASSWORD)
    expect(second.status).toBe(200)
    // LOGIN_MAX_FAILURES=2: two wrong passwords are answered, the third attempt is refused.
    expect((await login('wrong password 1')).status).toBe(401)
    expect((await login('wrong password 2')).status).toBe(401)
    expect((await login(PASSWORD)).status).toBe(429)

    const r0 = ((await first.json()) as { refresh_token: string }).refresh_token
    const one = await refresh(url, r0)
    expect(one.status).toBe(200)
    const r1 = ((await one.json()) as { refresh_token: string }).refresh_token
    expect((await refresh(url, r1)).status).toBe(200)
    // r0 again, after its successor was used: a copy, and its session ends.
    expect((await refresh(url, r0)).status).toBe(400)
    expect((await refresh(url, 'not-a-refresh-token')).status).toBe(400)

    const access = ((await second.json()) as { access_token: string }).access_token
    expect((await greet(url, access)).status).toBe(200)
    expect((await fetch(`${url}/auth/logout`, { method: 'POST', headers: bearer(access) })).status).toBe(204)

    // REGISTRATIONS_PER_IP_PER_HOUR=3: alice took one; a taken name, a common password, then 429.
    expect((await signUp(url, 'alice')).status).toBe(409)
    expect((await signUp(url, 'bob', 'password123')).status).toBe(422)
    expect((await signUp(url, 'carol')).status).toBe(429)
    expect((await fetch(`${url}/no/such/route-x7`)).status).toBe(404)

    const text = await scrape()
    const at = (name: string, labels: Labels = {}) => sample(text, name, labels)
    expect({
      logins: ['success', 'invalid_credentials', 'throttled'].map((result) =>
        at('authgate_logins_total', { result }),
      ),
      refreshes: ['success', 'reuse_detected', 'invalid_grant'].map((result) =>
        at('authgate_refresh_total', { result }),
      ),
      registrations: ['success', 'username_taken', 'validation_error', 'throttled'].map((result) =>
        at('authgate_registrations_total', { result }),
      ),
      revocations: ['logout', 'refresh_reuse'].map((reason) => at('authgate_revocations_total', { reason })),
      throttled: ['login-account', 'register-ip'].map((scope) => at('authgate_throttled_total', { scope })),
      // The taken name is a unique violation the code expects: not a database error.
      dbErrors: at('authgate_db_errors_total'),
      hashQueue: at('authgate_hash_queue_depth'),
    }).toEqual({
      logins: [2, 2, 1],
      refreshes: [2, 1, 1],
      registrations: [1, 1, 1, 1],
      revocations: [1, 1],
      throttled: [1, 1],
      dbErrors: 0,
      hashQueue: 0,
    })
    // The login scope alone refused (the address's limit is far off).
    expect(at('authgate_throttled_total', { scope: 'login-ip' })).toBeUndefined()
    // Node's process metrics come along.
    expect(at('process_cpu_user_seconds_total')).toBeGreaterThan(0)
    expect(at('nodejs_heap_size_used_bytes')).toBeGreaterThan(0)
  })

  it('times every request by route pattern, method and status, never by raw URL', async () => {
    const text = await scrape()
    const count = (route: string, method: string, status: string) =>
      sample(text, 'authgate_http_request_duration_seconds_count', { route, method, status })
    expect({
      tokens200: count('/auth/token', 'POST', '200'),
      tokens401: count('/auth/token', 'POST', '401'),
      tokens429: count('/auth/token', 'POST', '429'),
      tokens400: count('/auth/token', 'POST', '400'),
      root: count('/', 'GET', '200'),
      logout: count('/auth/logout', 'POST', '204'),
      unmatched: count('unmatched', 'GET', '404'),
    }).toEqual({ tokens200: 4, tokens401: 2, tokens429: 1, tokens400: 2, root: 1, logout: 1, unmatched: 2 })
    expect(text).not.toContain('route-x7')
    // A histogram: cumulative buckets ending in +Inf, equal to the count.
    const buckets = parseExposition(text).filter(
      (s) =>
        s.name === 'authgate_http_request_duration_seconds_bucket' &&
        s.labels.route === '/auth/token' &&
        s.labels.status === '200',
    )
    expect(buckets.at(-1)).toMatchObject({ labels: { le: '+Inf' }, value: 4 })
    const values = buckets.map((b) => b.value)
    expect(values).toEqual([...values].sort((a, b) => a - b))
  })

  it('counts a failed database query', async () => {
    const before = sample(await scrape(), 'authgate_db_errors_total') ?? Number.NaN
    // The users table gone: a login's lookup fails (a 500), as a broken database would. (A name
    // not yet throttled; sign-ups from this address are, before any query of the table.)
    await sql`alter table users rename to users_gone`.execute(inspect(db.url))
    try {
      const res = await logIn(url, 'erin')
      expect(res.status).toBeGreaterThanOrEqual(500)
    } finally {
      await sql`alter table users_gone rename to users`.execute(inspect(db.url))
    }
    expect(sample(await scrape(), 'authgate_db_errors_total')).toBeGreaterThan(before)
  })
})

describe('without METRICS_PORT', () => {
  it('opens no listener but the public port', async () => {
    const before = ownListeningPorts()
    const { app, db, url } = await startServer({})
    try {
      const added = [...ownListeningPorts()].filter((p) => !before.has(p))
      expect(added).toEqual([Number(new URL(url).port)])
      expect((await fetch(`${url}/metrics`)).status).toBe(404)
    } finally {
      await app.close()
      await db.drop()
    }
  }, 30_000)
})
