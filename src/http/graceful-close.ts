// Closing an HTTP server without resetting its keep-alive clients (issue 10, item 6).
//
// Node's server.close(), which app.close() calls, first destroys every connection that is between
// two requests (closeIdleConnections). Under load, "between two requests" is mostly a moment: the
// client has its next request on the wire, or in the socket's receive buffer, which the event
// loop has not read yet. Destroying such a socket resets the connection (RFC 9112 §9.6: closing
// with unread data sends a TCP RST), and the client loses a request it had sent: 32 resets on
// SQLite and 59 on PostgreSQL in three rolling restarts, one of them a login.
//
// Here, once the server closes:
// - every response not yet begun, and every request that arrives after, is answered with
//   `Connection: close` (Fastify adds it to the latter too), and the socket closes after it: a
//   client told to close sends nothing more on it;
// - a connection that has been idle (no request in progress, no byte received since its last
//   response) for IDLE_CLOSE_AFTER_MS is closed in stages, as RFC 9112 §9.6 asks: a FIN first,
//   then, once the client has closed too (or after FIN_WAIT_MS), the socket. Idleness is checked
//   just after the event loop has read every socket with data waiting.
// A request sent at the very moment its idle connection is closed is the one loss HTTP/1.1 cannot
// rule out; the client sees the connection close before any byte of an answer, the case in which
// RFC 9112 §9.3.1 lets it retry an idempotent request.
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'

/** How long a connection must have been idle, once closing began, before it is closed. */
export const IDLE_CLOSE_AFTER_MS = 1_000
// After our FIN, how long the client gets to close its side before the socket is destroyed.
const FIN_WAIT_MS = 2_000
const SWEEP_EVERY_MS = 100

interface Connection {
  /** Responses begun on it and not yet finished. */
  responses: Set<ServerResponse>
  /** When its last response finished (or it connected). */
  idleSince: number
  /** socket.bytesRead then: more since means a request has begun. */
  readAtIdle: number
  ended: boolean
}

/** Makes server.close() (and so app.close()) close keep-alive connections only between requests. */
export function closeKeepAliveGently(server: Server, idleCloseAfterMs = IDLE_CLOSE_AFTER_MS): void {
  const connections = new Map<Socket, Connection>()
  let closing = false
  let sweeper: NodeJS.Timeout | undefined

  server.on('connection', (socket: Socket) => {
    connections.set(socket, { responses: new Set(), idleSince: Date.now(), readAtIdle: 0, ended: false })
    socket.once('close', () => {
      connections.delete(socket)
      if (closing && connections.size === 0) clearInterval(sweeper)
    })
  })
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const connection = connections.get(req.socket)
    if (!connection) return
    connection.responses.add(res)
    if (closing && !res.headersSent) res.setHeader('connection', 'close')
    res.once('close', () => {
      connection.responses.delete(res)
      connection.idleSince = Date.now()
      connection.readAtIdle = req.socket.bytesRead
    })
  })

  const sweep = () => {
    const now = Date.now()
    for (const [socket, c] of connections) {
      if (c.ended || c.responses.size > 0 || socket.bytesRead !== c.readAtIdle) continue
      if (now - c.idleSince < idleCloseAfterMs) continue
      c.ended = true
      socket.end()
      setTimeout(() => socket.destroy(), FIN_WAIT_MS).unref()
    }
  }

  // Node's own version destroys every idle connection at once; server.close() calls it.
  server.closeIdleConnections = () => {
    if (closing) return
    closing = true
    for (const c of connections.values()) {
      for (const res of c.responses) if (!res.headersSent) res.setHeader('connection', 'close')
    }
    if (connections.size === 0) return
    // Timers run before the event loop polls the sockets; setImmediate runs just after it.
    // Not lib/periodic.ts: the tick only defers the sweep, so nothing fails inside it to report
    // (and this module has no reporter), and the last socket's close, not a lifecycle, stops it.
    sweeper = setInterval(() => setImmediate(sweep), SWEEP_EVERY_MS)
    sweeper.unref()
  }
}
