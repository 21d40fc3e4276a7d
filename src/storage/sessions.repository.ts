// SQL for sessions, refresh tokens and the revocation feed.
import { sql } from 'kysely'
import type { RevocationEntry, RevocationFeed } from '../domain/revocations.js'
import type { SessionsRepository } from '../domain/sessions.js'
import { canBeStored, type Db, dialectOf } from './database.js'
import { credentialEpoch } from './users.repository.js'

const BEYOND_BATCH = 1000

export function createSessionsRepository(db: Db): SessionsRepository {
  return {
    // credentials.repository.ts says why a credential change can then never miss this session;
    // the client's and the browser session's rows are read the same way, for the same reason
    // (clients.ts delete, revokeSessionsIn's andStarted).
    async insertSession(session, epoch, token) {
      return db.transaction().execute(async (trx) => {
        if ((await credentialEpoch(trx, session.user_id)) !== epoch) return false
        if (session.client_id !== null && !(await clientIsRegistered(trx, session.client_id))) return false
        if (
          session.browser_session_id !== null &&
          !(await browserSessionIsLive(trx, session.browser_session_id, session.user_id, session.created_at))
        )
          return false
        await trx.insertInto('authgate_sessions').values(session).execute()
        if (token) await trx.insertInto('authgate_refresh_tokens').values(token).execute()
        return true
      })
    },

    // Keyset pagination on (created_at, id), so a page stays stable while sessions start and end
    // between requests.
    async listLiveSessionsPage(userId, now, limit, after) {
      let query = db
        .selectFrom('authgate_sessions')
        .selectAll()
        .where('user_id', '=', userId)
        .where('revoked_at', 'is', null)
        .where('expires_at', '>', now)
      if (after) {
        query = query.where((eb) =>
          eb.or([
            eb('created_at', '<', after.createdAt),
            eb.and([eb('created_at', '=', after.createdAt), eb('id', '<', after.id)]),
          ]),
        )
      }
      return query.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(limit).execute()
    },

    // At most BEYOND_BATCH of them: a cap is enforced at every login, so more than one or two
    // beyond it means the cap was just lowered.
    async listSessionsBeyond(userId, keep, now, inUse) {
      const query = db
        .selectFrom('authgate_sessions')
        .select('id')
        .where('user_id', '=', userId)
        .where('revoked_at', 'is', null)
        .where('expires_at', '>', now)
      // The session in use now sorts as used now, whatever its last_used_at says; of those used
      // now, the newest still comes first (created_at), so a new session is never the one trimmed.
      const rows = await query
        .orderBy(
          inUse === null
            ? sql.ref('last_used_at')
            : sql`case when id = ${inUse} then ${now} else last_used_at end`,
          'desc',
        )
        .orderBy('created_at', 'desc')
        .orderBy('id', 'desc')
        .limit(BEYOND_BATCH)
        .offset(keep)
        .execute()
      return rows.map((r) => r.id)
    },

    async findRefreshToken(tokenHash) {
      return db
        .selectFrom('authgate_refresh_tokens as t')
        .innerJoin('authgate_sessions as s', 's.id', 't.session_id')
        .innerJoin('users as u', 'u.id', 's.user_id')
        .selectAll('t')
        .select([
          's.user_id',
          'u.username',
          's.expires_at as session_expires_at',
          's.revoked_at as session_revoked_at',
          's.client_id',
          's.scope',
          'u.subject',
        ])
        .where('t.token_hash', '=', tokenHash)
        .executeTakeFirst()
    },

    async sessionOwner(sessionId) {
      const row = await db
        .selectFrom('authgate_sessions')
        .select('user_id')
        .where('id', '=', sessionId)
        .executeTakeFirst()
      return row?.user_id
    },

    // The conditional UPDATE is the whole race: of any number of concurrent rotations of one
    // token, exactly one sees a row change.
    async rotateRefreshToken(spentId, spentAt, successor, next) {
      return db.transaction().execute(async (trx) => {
        const spent = await trx
          .updateTable('authgate_refresh_tokens')
          .set({ spent_at: spentAt, successor })
          .where('id', '=', spentId)
          .where('spent_at', 'is', null)
          .executeTakeFirst()
        if (spent.numUpdatedRows !== 1n) return false
        await trx.insertInto('authgate_refresh_tokens').values(next).execute()
        await trx
          .updateTable('authgate_sessions')
          .set({ last_used_at: spentAt })
          .where('id', '=', next.session_id)
          .execute()
        return true
      })
    },

    // Into the revocation feed in the same transaction, so no process can miss one.
    async revokeSessions(userId, at, reason, feedExpiresAt, ids, options) {
      // Ids come from request paths: one PostgreSQL cannot hold is no session there.
      const wanted = ids?.filter((id) => canBeStored(db, id))
      if (wanted?.length === 0) return []
      return db
        .transaction()
        .execute((trx) =>
          revokeSessionsIn(trx, userId, { at, reason, feedExpiresAt }, { ids: wanted, ...options }),
        )
    },

    // Run after the client's row is deleted (domain/clients.ts): an exchange that had read it
    // (FOR SHARE) committed before the DELETE went through and is seen here; a later one finds no
    // client and stores nothing (insertSession).
    async revokeClientSessions(clientId, at, reason, feedExpiresAt) {
      if (!canBeStored(db, clientId)) return []
      return db.transaction().execute(async (trx) => {
        // Its users in id order, as every end of a user's sessions does (lockUsers).
        const holders = await trx
          .selectFrom('authgate_sessions')
          .select('user_id')
          .distinct()
          .where('client_id', '=', clientId)
          .where('revoked_at', 'is', null)
          .execute()
        await lockUsers(
          trx,
          holders.map((r) => r.user_id),
        )
        const ended = await markRevoked(trx, { at, reason }, { clientId })
        await appendToFeed(trx, ended, { at, reason, feedExpiresAt })
        return ended
      })
    },

    async findBrowserSession(secretHash) {
      return db
        .selectFrom('authgate_sessions as s')
        .innerJoin('users as u', 'u.id', 's.user_id')
        .selectAll('s')
        .select('u.username')
        .where('s.secret_hash', '=', secretHash)
        .where('s.kind', '=', 'browser')
        .executeTakeFirst()
    },

    async touchSession(id, at, expiresAt) {
      const touched = await db
        .updateTable('authgate_sessions')
        .set({ last_used_at: at, expires_at: expiresAt })
        .where('id', '=', id)
        .where('revoked_at', 'is', null)
        .where('expires_at', '>', at)
        .executeTakeFirst()
      return touched.numUpdatedRows === 1n
    },

    insertUserCutoff: (...args) => insertUserCutoff(db, ...args),

    async insertTokenRevocation(subject, at, feedExpiresAt) {
      await db
        .insertInto('authgate_revocations')
        .values({ kind: 'token', subject, at, expires_at: feedExpiresAt })
        .execute()
    },
  }
}

/** When and why sessions end, and until when the feed must remember it. */
export interface Ending {
  at: number
  reason: string
  feedExpiresAt: number
}

/**
 * Revokes the given live sessions of a user (all when `ids` is omitted; `except` stays live) and
 * appends them to the revocation feed, inside a transaction the caller holds. `andStarted`: the
 * live sessions started from a browser session among `ids` (live or not) end too. The revoked ids.
 */
export async function revokeSessionsIn(
  trx: Db,
  userId: number,
  ending: Ending,
  which: { ids?: string[] | undefined; except?: string | undefined; andStarted?: boolean | undefined } = {},
): Promise<string[]> {
  const { ids, except, andStarted = false } = which
  if (ids?.length === 0) return []
  await lockUsers(trx, [userId])
  const ended = await markRevoked(trx, ending, { userId, ids, except })
  if (andStarted && ids) {
    // After the UPDATE above, which on PostgreSQL waited for every code exchange holding one of
    // these browser sessions FOR SHARE (insertSession) to commit: this statement, a new snapshot
    // under READ COMMITTED, sees the sessions they stored, and a later exchange finds the browser
    // session revoked. SQLite runs one writer at a time, so there is nothing to wait for.
    ended.push(...(await markRevoked(trx, ending, { userId, startedFrom: ids })))
  }
  await appendToFeed(trx, ended, ending)
  return ended
}

/**
 * PostgreSQL: the users whose sessions a transaction ends, locked in id order before any session
 * row. Ends of one user's sessions (a logout, a browser session's end with what it started, the
 * cap, a credential change, which holds the lock from its UPDATE) then run one at a time, instead
 * of locking overlapping session rows in different orders and deadlocking. Logins' FOR SHARE of
 * the same row (credentialEpoch) waits for them, as for a credential change. SQLite: one writer.
 */
async function lockUsers(trx: Db, userIds: number[]): Promise<void> {
  if (dialectOf(trx) !== 'postgres' || userIds.length === 0) return
  await trx
    .selectFrom('users')
    .select('id')
    .where('id', 'in', userIds)
    .orderBy('id')
    .forNoKeyUpdate()
    .execute()
}

/**
 * The conditional UPDATE is the whole race: it revokes the live sessions `which` names, and of
 * concurrent ends of one session exactly one sees it live, revokes it, and returns it.
 */
async function markRevoked(
  trx: Db,
  { at, reason }: Pick<Ending, 'at' | 'reason'>,
  which: {
    userId?: number
    ids?: string[] | undefined
    except?: string | undefined
    clientId?: string
    startedFrom?: string[]
  },
): Promise<string[]> {
  let query = trx
    .updateTable('authgate_sessions')
    .set({ revoked_at: at, revoked_reason: reason })
    .where('revoked_at', 'is', null)
  if (which.userId !== undefined) query = query.where('user_id', '=', which.userId)
  if (which.ids) query = query.where('id', 'in', which.ids)
  if (which.except !== undefined) query = query.where('id', '!=', which.except)
  if (which.clientId !== undefined) query = query.where('client_id', '=', which.clientId)
  if (which.startedFrom) query = query.where('browser_session_id', 'in', which.startedFrom)
  return (await query.returning('id').execute()).map((r) => r.id)
}

async function appendToFeed(trx: Db, ids: string[], { at, feedExpiresAt }: Ending): Promise<void> {
  if (ids.length === 0) return
  await trx
    .insertInto('authgate_revocations')
    .values(ids.map((id) => ({ kind: 'session' as const, subject: id, at, expires_at: feedExpiresAt })))
    .execute()
}

/** Whether the client is registered, read FOR SHARE on PostgreSQL (insertSession). */
async function clientIsRegistered(trx: Db, clientId: string): Promise<boolean> {
  if (!canBeStored(trx, clientId)) return false
  const row = await trx
    .selectFrom('authgate_oauth_clients')
    .select('client_id')
    .where('client_id', '=', clientId)
    .$if(dialectOf(trx) === 'postgres', (q) => q.forShare())
    .executeTakeFirst()
  return row !== undefined
}

/** Whether the user's browser session is live at `now`, read FOR SHARE on PostgreSQL (insertSession). */
async function browserSessionIsLive(trx: Db, id: string, userId: number, now: number): Promise<boolean> {
  if (!canBeStored(trx, id)) return false
  const row = await trx
    .selectFrom('authgate_sessions')
    .select('id')
    .where('id', '=', id)
    .where('user_id', '=', userId)
    .where('kind', '=', 'browser')
    .where('revoked_at', 'is', null)
    .where('expires_at', '>', now)
    .$if(dialectOf(trx) === 'postgres', (q) => q.forShare())
    .executeTakeFirst()
  return row !== undefined
}

/** Voids a user's tokens that carry no sid and were issued before `at` (seed-issued tokens). */
export const insertUserCutoff = (db: Db, userId: number, at: number, feedExpiresAt: number) =>
  insertCutoff(db, 'user', String(userId), at, feedExpiresAt)

/** Voids a deleted client's access tokens issued up to `at` (domain/revocations.ts clientCutoff). */
export const insertClientCutoff = (db: Db, clientId: string, at: number, feedExpiresAt: number) =>
  insertCutoff(db, 'client', clientId, at, feedExpiresAt)

async function insertCutoff(
  db: Db,
  kind: 'user' | 'client',
  subject: string,
  at: number,
  feedExpiresAt: number,
): Promise<void> {
  await db
    .insertInto('authgate_revocations')
    .values({ kind, subject, at, expires_at: feedExpiresAt })
    .execute()
}

const REVOCATION_COLUMNS = ['seq', 'kind', 'subject', 'at', 'expires_at'] as const

export function createRevocationFeed(db: Db): RevocationFeed {
  return {
    /**
     * The read domain/revocations.ts describes (FeedPosition), and why it cannot skip an entry.
     *
     * PostgreSQL: each row records the id of the transaction that wrote it (`xid`, migration
     * 2026_12_02_001). `pg_snapshot_xmin` of a snapshot is the oldest transaction still running:
     * every transaction below it has committed or rolled back, and the committed ones are visible
     * in that snapshot. So rows with `settled <= xid < xmin`, read in the same statement that takes
     * the xmin, are all the rows that settled since the last read, and the next read starts at
     * that xmin: nothing is skipped, however late a transaction commits, and the sweep brings each
     * row once. A transaction with no xid yet gets one above every xmin taken so far. (The
     * transactional-outbox technique; PostgreSQL manual, "Transaction ID and Snapshot Information
     * Functions".) A long transaction anywhere on the server holds the mark back; `after` and
     * `missing` still bring new and late rows at once meanwhile.
     *
     * SQLite: a writer holds the database's write lock from BEGIN IMMEDIATE (database.ts) to
     * commit and takes its seq under it, so seq order is commit order and `seq > after` cannot skip.
     */
    async read({ after, missing, settled }, now) {
      if (dialectOf(db) === 'sqlite') {
        const entries = await db
          .selectFrom('authgate_revocations')
          .select(REVOCATION_COLUMNS)
          .where('expires_at', '>', now)
          .where((eb) =>
            eb.or([eb('seq', '>', after), ...(missing.length > 0 ? [eb('seq', 'in', missing)] : [])]),
          )
          .orderBy('seq')
          .execute()
        return { entries, settled: undefined }
      }
      // One statement, one snapshot: the mark and the rows it vouches for come from the same moment.
      const sweep =
        settled === undefined
          ? sql`false`
          : sql`(r.xid >= ${settled}::xid8 and r.xid < pg_snapshot_xmin(pg_current_snapshot()))`
      const { rows } = await sql<{ settled: string } & Partial<RevocationEntry>>`
        select m.settled, r.seq, r.kind, r.subject, r.at, r.expires_at
        from (select pg_snapshot_xmin(pg_current_snapshot())::text as settled) as m
        left join authgate_revocations as r
          on r.expires_at > ${now}
          and (r.seq > ${after} or r.seq = any(${[...missing]}::integer[]) or ${sweep})
        order by r.seq
      `.execute(db)
      const entries = rows.filter((r): r is typeof r & RevocationEntry => r.seq != null)
      return {
        entries: entries.map(({ seq, kind, subject, at, expires_at }) => ({
          seq,
          kind,
          subject,
          at,
          expires_at,
        })),
        settled: rows[0]?.settled,
      }
    },

    async prune(now) {
      await db.deleteFrom('authgate_revocations').where('expires_at', '<=', now).execute()
    },
  }
}
