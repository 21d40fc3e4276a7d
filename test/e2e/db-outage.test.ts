// Faults (PostgreSQL): the database goes away under a running server. Requests that need it get a
// quick 503 {"detail", "code": "service_unavailable"} (never a hang or a 500), /readyz says 503,
// GET / with a token keeps working (it needs no database), and when the database comes back the
// same server answers normally again. The outage is real: a TCP proxy between AuthGate and the
// machine's PostgreSQL that the test closes (refused connections) or turns into a black hole.
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { createConnection, createServer, type Server, type Socket } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildApp } from '../../src/app.js'
import { loadConfig } from '../../src/config.js'
import { fastHasher, login, register, requirePrerequisite } from '../helpers/app.js'
import {
  adminQuery,
  CI_DATABASE_URL,
  TEST_DATABASE_PREFIX,
  testServerUrl,
  unreachable,
} from '../helpers/postgres-server.js'
import { freePort } from '../helpers/server-process.js'

const server = testServerUrl() ?? CI_DATABASE_URL
const why = await unreachable(server)
const ready = requirePrerequisite(why === undefined, `PostgreSQL at ${server} for the outage test (${why})`)

type Mode = 'open' | 'refuse' | 'blackhole'

/** A TCP proxy to PostgreSQL that can refuse connections, swallow them, or pass them through. */
class DatabaseProxy {
  #server: Server | undefined
  #sockets = new Set<Socket>()
  mode: Mode = 'refuse'
  constructor(
    readonly port: number,
    readonly target: { host: string; port: number },
  ) {}

  async set(mode: Mode): Promise<void> {
    this.mode = mode
    // Every connection made so far dies, as when the database server goes away.
    for (const socket of this.#sockets) socket.destroy()
    this.#sockets.clear()
    if (mode === 'refuse') {
      if (this.#server) {
        const closed = once(this.#server, 'close')
        this.#server.close()
        await closed
        this.#server = undefined
      }
      return
    }
    if (this.#server) return
    this.#server = createServer((client) => this.#accept(client))
    this.#server.listen(this.port, '127.0.0.1')
    await once(this.#server, 'listening')
  }

  #accept(client: Socket): void {
    this.#sockets.add(client)
    client.on('error', () => {})
    client.on('close', () => this.#sockets.delete(client))
    // A black hole accepts and never answers: only the connect timeout ends the wait.
    if (this.mode === 'blackhole') return
    const upstream = createConnection(this.target)
    this.#sockets.add(upstream)
    upstream.on('error', () => client.destroy())
    upstream.on('close', () => {
      this.#sockets.delete(upstream)
      client.destroy()
    })
    client.on('close', () => upstream.destroy())
    client.pipe(upstream).pipe(client)
  }
}

describe.skipIf(!ready)('database outage on PostgreSQL', () => {
  const name = `${TEST_DATABASE_PREFIX}${process.pid}_${randomBytes(5).toString('hex')}`
  let proxy: DatabaseProxy
  let app: FastifyInstance
  let token: string

  beforeAll(async () => {
    await adminQuery(server, `create database "${name}"`)
    const target = new URL(server)
    proxy = new DatabaseProxy(await freePort(), { host: target.hostname, port: Number(target.port || 5432) })
    await proxy.set('open')
    const url = new URL(server)
    url.host = `127.0.0.1:${proxy.port}`
    url.pathname = `/${name}`
    // connect_timeout=2: a black-holed database costs a request 2 s, not the default 5.
    url.search = '?connect_timeout=2'
    app = await buildApp(
      loadConfig({ DATABASE_URL: url.href, RATE_LIMIT: 'off', JWT_ISSUER: 'http://authgate.test' }),
      { hasher: fastHasher },
    )
    expect((await register(app, 'alice')).statusCode).toBe(201)
    const res = await login(app, 'alice')
    expect(res.statusCode).toBe(200)
    token = res.json().access_token
  }, 60_000)

  afterAll(async () => {
    await proxy?.set('open')
    await app?.close()
    await proxy?.set('refuse')
    await adminQuery(server, `drop database if exists "${name}" with (force)`).catch(() => {})
  })

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

  async function expectOutageAnswers() {
    expectUnavailable(await timed(() => login(app, 'alice')))
    expectUnavailable(await timed(() => register(app, `bob${randomBytes(3).toString('hex')}`)))
    const readyz = await app.inject({ method: 'GET', url: '/readyz' })
    expect(readyz.statusCode).toBe(503)
    expect(readyz.json().code).toBe('service_unavailable')
    // The access token is verified in memory: the protected route needs no database.
    const greet = await app.inject({ method: 'GET', url: '/', headers: { authorization: `Bearer ${token}` } })
    expect(greet.statusCode).toBe(200)
    expect((await app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200)
  }

  async function expectRecovered() {
    const start = Date.now()
    while ((await app.inject({ method: 'GET', url: '/readyz' })).statusCode !== 200) {
      if (Date.now() - start > 10_000) throw new Error('not ready 10 s after the database returned')
      await sleep(100)
    }
    expect((await login(app, 'alice')).statusCode).toBe(200)
    expect((await register(app, `carol${randomBytes(3).toString('hex')}`)).statusCode).toBe(201)
  }

  it('answers 503 quickly mid-load while connections are refused, and recovers', async () => {
    // Logins and sign-ups in flight when the database goes: each finishes or gets a 503.
    const load = Array.from({ length: 20 }, (_, i) =>
      i % 2 === 0 ? login(app, 'alice') : register(app, `load${i}_${randomBytes(3).toString('hex')}`),
    )
    await sleep(5)
    await proxy.set('refuse')
    const statuses = (await Promise.all(load)).map((r) => r.statusCode)
    expect(statuses.filter((s) => ![200, 201, 503].includes(s))).toEqual([])

    await expectOutageAnswers()
    // Still down a moment later, with the pool's idle connections gone: still 503, no crash.
    await sleep(200)
    expectUnavailable(await timed(() => login(app, 'alice')))

    await proxy.set('open')
    await expectRecovered()
  })

  it('answers 503 within the connect timeout when the database stops answering', async () => {
    await proxy.set('blackhole')
    await expectOutageAnswers()
    await proxy.set('open')
    await expectRecovered()
  })
})
