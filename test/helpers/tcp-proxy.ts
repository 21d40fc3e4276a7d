// A TCP proxy in front of a real server (PostgreSQL, Redis) that a test can turn against the app:
// refuse connections, swallow them (a black hole), pass them through, or stall the ones already
// open. Used by the outage tests (test/e2e/db-outage.test.ts, test/integration/redis.test.ts).
import { once } from 'node:events'
import { createConnection, createServer, type Server, type Socket } from 'node:net'

export type ProxyMode = 'open' | 'refuse' | 'blackhole' | 'stall'

/**
 * A TCP proxy that can refuse connections, swallow them, pass them through, or stall:
 * connections already open go silent (nothing more forwarded either way, nothing closed: a peer
 * that vanished without a RST), and stay so when the database is back, as after a failover; only
 * new connections reach it again.
 */
export class TcpProxy {
  #server: Server | undefined
  #sockets = new Set<Socket>()
  // Connections from AuthGate that went silent; only AuthGate (or endSilent()) ends them.
  #silent = new Set<Socket>()
  mode: ProxyMode = 'refuse'
  constructor(
    readonly port: number,
    readonly target: { host: string; port: number },
  ) {}

  async set(mode: ProxyMode): Promise<void> {
    this.mode = mode
    for (const socket of this.#sockets) {
      if (mode === 'stall' && this.#isClient(socket)) this.#silence(socket)
      // Every connection made so far dies, as when the server goes away.
      else socket.destroy()
    }
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

  /** Ends the silent connections, before a pool that holds them ends: they never answer its goodbye. */
  endSilent(): void {
    for (const socket of this.#silent) socket.destroy()
    this.#silent.clear()
  }

  /**
   * The silent connections holding bytes from AuthGate that nothing will answer (a query, or a new
   * connection's start-up message): how many of its requests wait on the database.
   */
  unanswered(): number {
    let n = 0
    for (const socket of this.#silent) if (socket.readableLength > 0) n++
    return n
  }

  #clients = new WeakSet<Socket>()
  #isClient(socket: Socket): boolean {
    return this.#clients.has(socket)
  }

  #silence(client: Socket): void {
    // Unpiped and paused: what AuthGate sends stays unread, nothing comes back. Its upstream is
    // destroyed (below, by set): the old server side is gone, with its locks and transactions.
    client.unpipe()
    client.pause()
    this.#silent.add(client)
  }

  #accept(client: Socket): void {
    this.#clients.add(client)
    client.on('error', () => {})
    client.on('close', () => {
      this.#sockets.delete(client)
      this.#silent.delete(client)
    })
    // A black hole accepts and never answers: only the connect timeout ends the wait. Stalled,
    // the same, and the connection stays silent when the database is back.
    if (this.mode === 'stall') {
      this.#silence(client)
      return
    }
    this.#sockets.add(client)
    if (this.mode === 'blackhole') return
    const upstream = createConnection(this.target)
    this.#sockets.add(upstream)
    upstream.on('error', () => client.destroy())
    upstream.on('close', () => {
      this.#sockets.delete(upstream)
      // A silent connection stays open whatever happens behind it.
      if (!this.#silent.has(client)) client.destroy()
    })
    client.on('close', () => upstream.destroy())
    client.pipe(upstream).pipe(client)
  }
}
