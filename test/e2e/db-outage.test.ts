// Faults (PostgreSQL): the database goes away under a running server. Requests that need it get a
// quick 503 {"detail", "code": "service_unavailable"} (never a hang or a 500), /readyz says 503,
// GET / with a token keeps working (it needs no database), and when the database comes back the
// same server answers normally again. The outage is real: a TCP proxy between AuthGate and the
// machine's PostgreSQL that the test closes (refused connections), turns into a black hole, or
// silences (connections already open stop answering mid-query, without closing).
import { randomBytes } from 'node:crypto'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildApp } from '../../src/app.js'
import { loadConfig } from '../../src/config.js'
import { DEFAULT_POOL_SIZE } from '../../src/storage/database.js'
import { fastHasher, requirePrerequisite } from '../helpers/app.js'
import { greet, logIn, signUp } from '../helpers/http.js'
import {
  CI_DATABASE_URL,
  createTestDatabase,
  type ServerTestDatabase,
  testServerUrl,
  unreachable,
} from '../helpers/postgres-server.js'
import { freePort } from '../helpers/server-process.js'
import { TcpProxy } from '../helpers/tcp-proxy.js'

const server = testServerUrl() ?? CI_DATABASE_URL
const why = await unreachable(server)
const ready = requirePrerequisite(why === undefined, `PostgreSQL at ${server} for the outage test (${why})`)
// The main app's; its query timeout is longer (15 s).
const CONNECT_TIMEOUT_MS = 2_000

describe.skipIf(!ready)('database outage on PostgreSQL', () => {
  let database: ServerTestDatabase
  let proxy: TcpProxy
  let app: FastifyInstance
  let token: string

  beforeAll(async () => {
    database = await createTestDatabase(server)
    const target = new URL(server)
    proxy = new TcpProxy(await freePort(), { host: target.hostname, port: Number(target.port || 5432) })
    await proxy.set('open')
    // connect_timeout=2: a black-holed database costs a request 2 s, not the default 5.
    app = await proxiedApp(`connect_timeout=${CONNECT_TIMEOUT_MS / 1000}`)
    expect((await signUp(app, 'alice')).statusCode).toBe(201)
    const res = await logIn(app, 'alice')
    expect(res.statusCode).toBe(200)
    token = res.json().access_token
  }, 60_000)

  afterAll(async () => {
    proxy?.endSilent()
    await proxy?.set('open')
    await app?.close()
    await proxy?.set('refuse')
    await database?.drop().catch(() => {})
  })

  /** An app on the test database through the proxy, with these URL parameters. */
  function proxiedApp(params: string): Promise<FastifyInstance> {
    const url = new URL(server)
    url.host = `127.0.0.1:${proxy.port}`
    url.pathname = `/${database.name}`
    url.search = `?${params}`
    return buildApp(
      loadConfig({ DATABASE_URL: url.href, RATE_LIMIT: 'off', JWT_ISSUER: 'http://authgate.test' }),
      { hasher: fastHasher },
    )
  }

  /** The response and how long it took. */
  async function timed(run: () => Promise<LightMyRequestResponse>) {
    const start = Date.now()
    const res = await run()
    return { res, ms: Date.now() - start }
  }

  function expectUnavailable({ res, ms }: Awaited<ReturnType<typeof timed>>) {
    expect(res.statusCode, res.body).toBe(503)
    expect(res.json()).toEqual({ detail: expect.any(String), code: 'service_unavailable' })
    // Nothing of the driver's internals reaches the client.
    expect(res.body).not.toMatch(/ECONN|terminated|timeout|127\.0\.0\.1|postgres/i)
    expect(ms).toBeLessThan(5_000)
  }

  async function expectOutageAnswers(target = app) {
    expectUnavailable(await timed(() => logIn(target, 'alice')))
    expectUnavailable(await timed(() => signUp(target, `bob${randomBytes(3).toString('hex')}`)))
    const readyz = await target.inject({ method: 'GET', url: '/readyz' })
    expect(readyz.statusCode).toBe(503)
    expect(readyz.json().code).toBe('service_unavailable')
    // The access token is verified in memory: the protected route needs no database.
    expect((await greet(target, token)).statusCode).toBe(200)
    expect((await target.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200)
  }

  async function expectRecovered(target = app) {
    await expect
      .poll(async () => (await target.inject({ method: 'GET', url: '/readyz' })).statusCode, {
        timeout: 10_000,
        interval: 50,
      })
      .toBe(200)
    expect((await logIn(target, 'alice')).statusCode).toBe(200)
    expect((await signUp(target, `carol${randomBytes(3).toString('hex')}`)).statusCode).toBe(201)
  }

  /** The database goes away: new connections are refused, and every open one dies, silent ones too. */
  async function databaseGone() {
    const refused = proxy.set('refuse')
    // The proxy's listener closes once its last connection has: the silent ones end here.
    proxy.endSilent()
    await refused
  }

  it('answers 503 quickly to the requests in flight when the database goes, and while it refuses connections, then recovers', async () => {
    // It stops answering first, so no request of the load can finish before it goes.
    await proxy.set('stall')
    const startedAt = Date.now()
    const load = Array.from({ length: 20 }, (_, i) =>
      timed(() =>
        i % 2 === 0 ? logIn(app, 'alice') : signUp(app, `load${i}_${randomBytes(3).toString('hex')}`),
      ),
    )
    // In flight: each connection of the pool waits on the database for a request of the load.
    await expect.poll(() => proxy.unanswered(), { timeout: 5_000, interval: 10 }).toBe(DEFAULT_POOL_SIZE)
    await databaseGone()
    // Every one of them: a 503, not a 500 or a hang, and sooner than any timeout of its own
    // could have ended it: it is the database going that answered them.
    for (const answer of await Promise.all(load)) expectUnavailable(answer)
    expect(Date.now() - startedAt).toBeLessThan(CONNECT_TIMEOUT_MS)

    await expectOutageAnswers()
    // Every pooled connection died under a query and was dropped: the next request still gets a
    // 503, with no crash from a dead connection.
    expectUnavailable(await timed(() => logIn(app, 'alice')))

    await proxy.set('open')
    await expectRecovered()
  })

  it('answers 503 within the connect timeout when the database stops answering', async () => {
    await proxy.set('blackhole')
    await expectOutageAnswers()
    await proxy.set('open')
    await expectRecovered()
  })

  it('answers 503 within the query timeout when open connections go silent mid-query, and drops them', async () => {
    // query_timeout=1000: a query unanswered for 1 s fails (the default is 15 s). Three pooled
    // connections, all open (logins side by side fill the pool) when the database goes silent.
    const silentApp = await proxiedApp('connect_timeout=1&query_timeout=1000&pool_size=3')
    try {
      for (const res of await Promise.all(Array.from({ length: 9 }, () => logIn(silentApp, 'alice')))) {
        expect(res.statusCode).toBe(200)
      }
      // The connections go silent, then requests come: each query is written and never answered,
      // as when the peer vanishes mid-query (AuthGate cannot tell the two apart). Each gets a 503
      // in bounded time.
      await proxy.set('stall')
      const load = Array.from({ length: 6 }, (_, i) =>
        timed(() =>
          i % 2 === 0
            ? logIn(silentApp, 'alice')
            : signUp(silentApp, `mid${i}_${randomBytes(3).toString('hex')}`),
        ),
      )
      for (const answer of await Promise.all(load)) expectUnavailable(answer)
      await expectOutageAnswers(silentApp)

      // The database answers again, on new connections only: the silent ones stay silent. A
      // connection whose query timed out is closed, never reused, so the pool refills by itself;
      // one that went back to the pool would hold every later query behind its unanswered one.
      await proxy.set('open')
      const start = Date.now()
      let failed = 0
      while ((await logIn(silentApp, 'alice')).statusCode !== 200) {
        failed++
        if (Date.now() - start > 10_000)
          throw new Error(`no login 10 s after the database returned (${failed} failed)`)
      }
      // Each silent connection still in the pool costs at most one request.
      expect(failed).toBeLessThanOrEqual(3)
      await expectRecovered(silentApp)
    } finally {
      proxy.endSilent()
      await silentApp.close()
    }
  })
})
