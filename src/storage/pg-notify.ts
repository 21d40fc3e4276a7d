// PostgreSQL LISTEN/NOTIFY as a broadcast channel: NOTIFY goes through the pool; LISTEN holds one
// connection of its own, reconnects when it is lost, and reports each reconnect (notifications
// sent meanwhile are gone, so the listener re-reads everything).
import { createRequire } from 'node:module'
import { sql } from 'kysely'
import type * as Pg from 'pg'
import type { Channel } from '../domain/broadcast.js'
import { every, type Periodic } from '../lib/periodic.js'
import { type Db, postgresClientConfig } from './database.js'

const CHANNEL = 'authgate_changes'
// A listening connection that dies quietly (a black-holed network) sends no error: probe it.
const PROBE_EVERY_MS = 10_000
const PROBE_TIMEOUT_MS = 5_000
const RECONNECT_MAX_MS = 5_000

const requireCjs = createRequire(import.meta.url)

export function createPostgresChannel(
  db: Db,
  url: string,
  { onError = () => {} }: { onError?: (err: unknown) => void } = {},
): Channel {
  let client: Pg.Client | undefined
  let closed = false
  let probe: Periodic | undefined
  let retry: NodeJS.Timeout | undefined

  async function connect(onMessage: (m: string) => void, onResync: () => void, attempt: number) {
    const pg = requireCjs('pg') as typeof Pg
    const c = new pg.Client({ ...postgresClientConfig(url), query_timeout: PROBE_TIMEOUT_MS })
    let lost = false
    const reconnect = (err: unknown) => {
      if (lost || closed) return
      lost = true
      if (client === c) client = undefined
      c.end().catch(() => {})
      if (attempt === 0) onError(err)
      const wait = Math.min(250 * 2 ** attempt, RECONNECT_MAX_MS)
      retry = setTimeout(() => connect(onMessage, onResync, attempt + 1), wait)
      retry.unref()
    }
    c.on('error', reconnect)
    c.on('end', () => reconnect(new Error('the LISTEN connection to PostgreSQL ended')))
    c.on('notification', (n) => {
      if (n.channel === CHANNEL && n.payload) onMessage(n.payload)
    })
    try {
      await c.connect()
      await c.query(`LISTEN ${CHANNEL}`)
    } catch (err) {
      reconnect(err)
      return
    }
    if (closed) {
      await c.end().catch(() => {})
      return
    }
    client = c
    // Everything published while we were not listening is lost: re-read it.
    if (attempt > 0) onResync()
    attempt = 0
  }

  return {
    name: 'postgres',
    async publish(message) {
      await sql`select pg_notify(${CHANNEL}, ${message})`.execute(db)
    },
    async listen(onMessage, onResync) {
      await connect(onMessage, onResync, 0)
      probe = every(
        PROBE_EVERY_MS,
        () => client?.query('select 1'),
        (err) => client?.emit('error', err),
      )
    },
    async close() {
      closed = true
      probe?.stop()
      clearTimeout(retry)
      await client?.end().catch(() => {})
    },
  }
}
