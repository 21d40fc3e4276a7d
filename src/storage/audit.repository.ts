// SQL for the hash-chained audit log: append after the head under a lock, prune with an anchor,
// and read a consistent snapshot in seq order.
import { type Kysely, sql } from 'kysely'
import type { AuditEntry, AuditFacts, ChainAnchor } from '../domain/audit-chain.js'
import { GENESIS_ANCHOR } from '../domain/audit-chain.js'
import type { AuditFilter, AuditStore } from '../domain/audit-writer.js'
import { type Database, type Db, dialectOf, isUniqueViolation, LOCKS, lockTransaction } from './database.js'
import type { AuditLogRow } from './tables.js'

type Linked = AuditFacts & { prevHash: string; hash: string }
type Executor = Kysely<Database>

// Where the last prune left the chain's start, in authgate_settings (see ChainAnchor).
const ANCHOR_KEY = 'audit_anchor'
const PAGE = 1000

/**
 * Serialises appenders across processes for the rest of the transaction. SQLite: nothing to do,
 * our transactions BEGIN IMMEDIATE (storage/database.ts), which already holds the database's
 * write lock. PostgreSQL: pg_advisory_xact_lock (an empty table has no row to lock FOR UPDATE);
 * taken first, so the head read after it (READ COMMITTED) sees every append committed before.
 * The unique prev_hash is the backstop either way.
 */
async function lockChain(trx: Executor): Promise<void> {
  await lockTransaction(trx, LOCKS.auditChain)
}

async function readAnchor(db: Executor): Promise<ChainAnchor> {
  const row = await db
    .selectFrom('authgate_settings')
    .select('value')
    .where('key', '=', ANCHOR_KEY)
    .executeTakeFirst()
  if (!row) return GENESIS_ANCHOR
  const parsed = JSON.parse(row.value) as ChainAnchor
  return { seq: Number(parsed.seq), hash: String(parsed.hash) }
}

async function headHash(trx: Executor): Promise<string> {
  const head = await trx
    .selectFrom('authgate_audit_log')
    .select('hash')
    .orderBy('seq', 'desc')
    .limit(1)
    .executeTakeFirst()
  // An empty table after a prune (prune keeps the newest entry, so only by hand) continues from the anchor.
  return head ? head.hash : (await readAnchor(trx)).hash
}

const toRow = (e: Linked) => ({
  at: e.at,
  type: e.type,
  outcome: e.outcome,
  user_id: e.userId,
  username: e.username,
  ip: e.ip,
  user_agent: e.userAgent,
  detail: e.detail,
  prev_hash: e.prevHash,
  hash: e.hash,
})

function toEntry(row: AuditLogRow): AuditEntry {
  return {
    seq: Number(row.seq),
    at: Number(row.at),
    type: row.type as AuditEntry['type'],
    outcome: row.outcome as AuditEntry['outcome'],
    userId: row.user_id === null ? null : Number(row.user_id),
    username: row.username,
    ip: row.ip,
    userAgent: row.user_agent,
    detail: row.detail,
    prevHash: row.prev_hash,
    hash: row.hash,
  }
}

async function* iterateAuditEntries(db: Executor, filter: AuditFilter = {}): AsyncGenerator<AuditEntry> {
  let after = 0
  for (;;) {
    let query = db.selectFrom('authgate_audit_log').selectAll().where('seq', '>', after)
    if (filter.since !== undefined) query = query.where('at', '>=', filter.since)
    if (filter.until !== undefined) query = query.where('at', '<', filter.until)
    const { userId, usernames = [] } = filter
    if (userId !== undefined || usernames.length > 0) {
      query = query.where((eb) =>
        eb.or([
          ...(userId === undefined ? [] : [eb('user_id', '=', userId)]),
          ...(usernames.length === 0 ? [] : [eb('username', 'in', [...usernames])]),
        ]),
      )
    }
    const rows = await query.orderBy('seq').limit(PAGE).execute()
    for (const row of rows) yield toEntry(row)
    const last = rows.at(-1)
    if (!last || rows.length < PAGE) return
    after = Number(last.seq)
  }
}

export function createAuditStore(db: Db): AuditStore {
  return {
    async append(link) {
      for (let attempt = 1; ; attempt++) {
        try {
          await db.transaction().execute(async (trx) => {
            await lockChain(trx)
            const rows = link(await headHash(trx)).map(toRow)
            if (rows.length > 0) await trx.insertInto('authgate_audit_log').values(rows).execute()
          })
          return
        } catch (err) {
          // Only reachable when another writer got past the lock (a dialect without one): relink and retry.
          if (!isUniqueViolation(err) || attempt >= 3) throw err
        }
      }
    },

    // Records the last deleted entry as the anchor the remaining chain must start from.
    async prune(before) {
      return db.transaction().execute(async (trx) => {
        await lockChain(trx)
        const newest = await trx
          .selectFrom('authgate_audit_log')
          .select('seq')
          .orderBy('seq', 'desc')
          .limit(1)
          .executeTakeFirst()
        if (!newest) return 0
        const last = await trx
          .selectFrom('authgate_audit_log')
          .select(['seq', 'hash'])
          .where('at', '<', before)
          .where('seq', '<', newest.seq)
          .orderBy('seq', 'desc')
          .limit(1)
          .executeTakeFirst()
        if (!last) return 0
        // By seq, not by time: pruning a prefix keeps the rest a chain (clocks can step backwards).
        const deleted = await trx
          .deleteFrom('authgate_audit_log')
          .where('seq', '<=', last.seq)
          .executeTakeFirst()
        const value = JSON.stringify({ seq: Number(last.seq), hash: last.hash })
        await trx
          .insertInto('authgate_settings')
          .values({ key: ANCHOR_KEY, value })
          .onConflict((oc) => oc.column('key').doUpdateSet({ value }))
          .execute()
        return Number(deleted.numDeletedRows)
      })
    },

    /**
     * One read snapshot, on one connection, without taking the write lock: a plain (deferred)
     * BEGIN in SQLite's WAL mode sees one snapshot and lets writers carry on; a prune or an append
     * in another process mid-walk cannot make a good chain look broken. PostgreSQL: BEGIN
     * ISOLATION LEVEL REPEATABLE READ, READ ONLY.
     */
    async read(fn) {
      const begin =
        dialectOf(db) === 'postgres' ? sql`begin isolation level repeatable read, read only` : sql`begin`
      return db.connection().execute(async (conn) => {
        await begin.execute(conn)
        try {
          return await fn({
            anchor: () => readAnchor(conn),
            entries: (filter) => iterateAuditEntries(conn, filter),
          })
        } finally {
          await sql`rollback`.execute(conn)
        }
      })
    },
  }
}
