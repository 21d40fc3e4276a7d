// MAX_CONNECTIONS_PER_IP over real sockets (issue 9): one address holding its cap of silent
// connections has the rest destroyed as they are accepted, logged once; another address is still
// served meanwhile; and a socket that never sends a byte is closed by the 10 s headers timeout.
import { once } from 'node:events'
import { request } from 'node:http'
import { connect, type Socket } from 'node:net'
import { Writable } from 'node:stream'
import pino from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildTestApp, type TestApp } from '../helpers/app.js'

const CAP = 20
const FLOOD = CAP + 10

interface Silent {
  socket: Socket
  openedAt: number
  closedAt: number | undefined
  received: string
}

/** A connection from `localAddress` that sends nothing, and remembers when and how it closed. */
async function silent(port: number, localAddress = '127.0.0.1'): Promise<Silent> {
  const socket = connect({ host: '127.0.0.1', port, localAddress })
  const conn: Silent = { socket, openedAt: Date.now(), closedAt: undefined, received: '' }
  socket.on('data', (d) => {
    conn.received += d
  })
  socket.on('error', () => {})
  socket.on('close', () => {
    conn.closedAt = Date.now()
  })
  await once(socket, 'connect')
  return conn
}

/** GET /healthz from `localAddress`: the status, or the error's code when the connection died. */
function health(port: number, localAddress: string): Promise<number | string> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path: '/healthz', localAddress, agent: false }, (res) => {
      res.resume()
      res.on('end', () => resolve(res.statusCode ?? 0))
    })
    req.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message))
    req.end()
  })
}

describe('connections per client address', () => {
  let t: TestApp
  let port: number
  const lines: { level: number; msg: string; client?: string; refused?: number; limit?: number }[] = []
  const logger = pino(
    { level: 'warn' },
    new Writable({
      write(chunk, _enc, done) {
        for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line))
        done()
      },
    }),
  )
  const flood: Silent[] = []

  beforeAll(async () => {
    t = await buildTestApp({ MAX_CONNECTIONS_PER_IP: String(CAP) }, { logger })
    await t.app.listen({ port: 0, host: '127.0.0.1' })
    port = (t.app.server.address() as { port: number }).port
  })
  afterAll(async () => {
    for (const c of flood) c.socket.destroy()
    await t?.close()
  })

  it('destroys the connections over the cap at once, logs it once, and serves another address', async () => {
    // Linux routes all of 127.0.0.0/8 to loopback: 127.0.0.2 is another client on this machine.
    const idle = await silent(port, '127.0.0.3')
    for (let i = 0; i < FLOOD; i++) flood.push(await silent(port))
    await expect.poll(() => flood.filter((c) => c.closedAt !== undefined).length).toBe(FLOOD - CAP)
    // At once: not by a timeout, and without a byte of answer.
    for (const c of flood.filter((c) => c.closedAt !== undefined)) {
      expect((c.closedAt as number) - c.openedAt).toBeLessThan(1_000)
      expect(c.received).toBe('')
    }
    // While the flood holds its cap: another address is served, the flooding one is not.
    expect(await health(port, '127.0.0.2')).toBe(200)
    expect(await health(port, '127.0.0.1')).toMatch(/ECONNRESET|socket hang up|EPIPE/)
    expect(flood.filter((c) => c.closedAt === undefined)).toHaveLength(CAP)
    // Eleven refused, one line at warn.
    const warned = lines.filter((l) => l.msg.includes('MAX_CONNECTIONS_PER_IP'))
    expect(warned).toEqual([
      expect.objectContaining({ level: 40, client: '127.0.0.1', limit: CAP, refused: 1 }),
    ])
    // Once the flood lets go, the address is served again.
    for (const c of flood) c.socket.destroy()
    await expect.poll(() => health(port, '127.0.0.1')).toBe(200)

    // A connection that never sent a byte: closed by the headers timeout (10 s), with a 408.
    await expect.poll(() => idle.closedAt, { timeout: 15_000, interval: 200 }).toBeDefined()
    const lived = (idle.closedAt as number) - idle.openedAt
    expect(lived).toBeGreaterThanOrEqual(9_500)
    expect(lived).toBeLessThan(12_500)
    expect(idle.received).toMatch(/^HTTP\/1\.1 408/)
  }, 30_000)
})
