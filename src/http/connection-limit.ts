// A cap on concurrent connections per client address, enforced as each socket is accepted: one
// host holding thousands of silent sockets must not fill the descriptor table for everyone else.
import type { Server } from 'node:http'
import { isIPv6, type Socket } from 'node:net'

export interface ConnectionLimit {
  /** Connections one client address may hold open at once (MAX_CONNECTIONS_PER_IP); 0: no cap. */
  perAddress: number
  /**
   * An address went over the cap: `refused` connections since it was last reported. Called at most
   * once per address per `reportEveryMs`, so a flood is one log line, not one per socket.
   */
  onRefused: (client: string, refused: number) => void
  reportEveryMs?: number
}

// Reports remembered per address; past this many, the stale ones are forgotten.
const MAX_REPORTED = 10_000

/**
 * The address a connection is counted against: the socket's own, never X-Forwarded-For (a header
 * is what a client says; the socket is who connected). IPv4-mapped IPv6 counts as the IPv4
 * address; other IPv6 addresses by their /64, the block one subscriber or LAN gets (RFC 6177),
 * as one IPv4 address behind NAT is one client.
 */
export function clientOf(remoteAddress: string): string {
  const address = remoteAddress.toLowerCase()
  if (address.startsWith('::ffff:') && address.includes('.')) return address.slice(7)
  if (!isIPv6(address) || address.includes('.')) return address
  const bare = address.split('%')[0] as string
  const [head = '', tail] = bare.split('::')
  const left = head ? head.split(':') : []
  const right = tail ? tail.split(':') : []
  const groups =
    tail === undefined
      ? left
      : [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right]
  return `${groups
    .slice(0, 4)
    .map((g) => Number.parseInt(g, 16).toString(16))
    .join(':')}::/64`
}

/** Destroys, at once, every accepted connection beyond `perAddress` open ones from one client. */
export function limitConnectionsPerAddress(server: Server, limit: ConnectionLimit): void {
  if (limit.perAddress <= 0) return
  const reportEveryMs = limit.reportEveryMs ?? 60_000
  const open = new Map<string, number>()
  const reported = new Map<string, { at: number; refused: number }>()

  const refuse = (client: string) => {
    const now = Date.now()
    let entry = reported.get(client)
    if (!entry) {
      if (reported.size >= MAX_REPORTED) {
        for (const [key, e] of reported) if (now - e.at >= reportEveryMs) reported.delete(key)
      }
      entry = { at: Number.NEGATIVE_INFINITY, refused: 0 }
      if (reported.size < MAX_REPORTED) reported.set(client, entry)
    }
    entry.refused++
    if (now - entry.at < reportEveryMs) return
    const refused = entry.refused
    entry.at = now
    entry.refused = 0
    limit.onRefused(client, refused)
  }

  server.on('connection', (socket: Socket) => {
    // Undefined only once the socket is gone already: nothing to count.
    if (socket.remoteAddress === undefined) return
    const client = clientOf(socket.remoteAddress)
    const count = open.get(client) ?? 0
    if (count >= limit.perAddress) {
      socket.destroy()
      refuse(client)
      return
    }
    open.set(client, count + 1)
    socket.once('close', () => {
      const left = (open.get(client) ?? 1) - 1
      if (left > 0) open.set(client, left)
      else open.delete(client)
    })
  })
}
