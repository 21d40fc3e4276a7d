// SQL for sessions, refresh tokens and the revocation feed.
import { sql } from 'kysely'
import { canBeStored, type Db, dialectOf } from './database.js'
import type { RefreshTokenRow, RevocationRow, SessionRow } from './tables.js'

export async function insertSessionWithToken(
  db: Db,
  session: SessionRow,
  token: RefreshTokenRow,
): Promise<void> {
  await db.transaction().execute(async (trx) => {
    await trx.insertInto('authgate_sessions').values(session).execute()
    await trx.insertInto('authgate_refresh_tokens').values(token).execute()
  })
}

/** Sessions not revoked and not past their absolute expiry, newest first. */
export async function listLiveSessions(db: Db, userId: number, now: number): Promise<SessionRow[]> {
  return db
    .selectFrom('authgate_sessions')
    .selectAll()
    .where('user_id', '=', userId)
    .where('revoked_at', 'is', null)
    .where('expires_at', '>', now)
    .orderBy('created_at', 'desc')
    .execute()
}

export type RefreshTokenWithSession = RefreshTokenRow & {
  user_id: number
  username: string
  session_expires_at: number
  session_revoked_at: number | null
}

export async function findRefreshToken(
  db: Db,
  tokenHash: string,
): Promise<RefreshTokenWithSession | undefined> {
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
    ])
    .where('t.token_hash', '=', tokenHash)
    .executeTakeFirst()
}

/**
 * Spends `spentId` and stores its successor in one transaction. The conditional UPDATE is the
 * whole race: of any number of concurrent rotations of one token, exactly one sees a row change.
 */
export async function rotateRefreshToken(
  db: Db,
  spentId: string,
  spentAt: number,
  successor: string,
  next: RefreshTokenRow,
): Promise<boolean> {
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
}

/**
 * Revokes the given live sessions (all of a user's when `ids` is omitted) and appends them to the
 * revocation feed in the same transaction, so no process can miss one. Returns the revoked ids.
 */
export async function revokeSessions(
  db: Db,
  userId: number,
  at: number,
  reason: string,
  feedExpiresAt: number,
  ids?: string[],
): Promise<string[]> {
  // Ids come from request paths: one PostgreSQL cannot hold is no session there.
  const wanted = ids?.filter((id) => canBeStored(db, id))
  if (wanted?.length === 0) return []
  return db.transaction().execute(async (trx) => {
    let query = trx
      .selectFrom('authgate_sessions')
      .select('id')
      .where('user_id', '=', userId)
      .where('revoked_at', 'is', null)
    if (wanted) query = query.where('id', 'in', wanted)
    const live = (await query.execute()).map((r) => r.id)
    if (live.length === 0) return []
    await trx
      .updateTable('authgate_sessions')
      .set({ revoked_at: at, revoked_reason: reason })
      .where('id', 'in', live)
      .execute()
    await trx
      .insertInto('authgate_revocations')
      .values(live.map((id) => ({ kind: 'session' as const, subject: id, at, expires_at: feedExpiresAt })))
      .execute()
    return live
  })
}

/** Voids a user's tokens that carry no sid and were issued before `at` (seed-issued tokens). */
export async function insertUserCutoff(
  db: Db,
  userId: number,
  at: number,
  feedExpiresAt: number,
): Promise<void> {
  await db
    .insertInto('authgate_revocations')
    .values({ kind: 'user', subject: String(userId), at, expires_at: feedExpiresAt })
    .execute()
}

const REVOCATION_COLUMNS = ['seq', 'kind', 'subject', 'at', 'expires_at'] as const

/**
 * The revocation feed's read (domain/revocations.ts, FeedPosition): entries above `after` or in
 * `missing`, plus on PostgreSQL every entry settled since `settled`; only those that can still
 * matter at `now`.
 *
 * PostgreSQL: each row records the id of the transaction that wrote it (`xid`, migration
 * 2026_12_02_001). `pg_snapshot_xmin` of a snapshot is the oldest transaction still running:
 * every transaction below it has committed or rolled back, and the committed ones are visible in
 * that snapshot. So rows with `settled <= xid < xmin`, read in the same statement that takes the
 * xmin, are all the rows that settled since the last read, and the next read starts at that xmin:
 * nothing is skipped, however late a transaction commits, and the sweep brings each row once. A
 * transaction with no xid yet gets one above every xmin taken so far. (The transactional-outbox
 * technique; PostgreSQL manual, "Transaction ID and Snapshot Information Functions".) A long
 * transaction anywhere on the server holds the mark back; `after` and `missing` still bring new
 * and late rows at once meanwhile.
 *
 * SQLite: a writer holds the database's write lock from BEGIN IMMEDIATE (database.ts) to commit
 * and takes its seq under it, so seq order is commit order and `seq > after` cannot skip.
 */
export async function readRevocations(
  db: Db,
  { after, missing, settled }: { after: number; missing: readonly number[]; settled: string | undefined },
  now: number,
): Promise<{ entries: RevocationRow[]; settled: string | undefined }> {
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
  const { rows } = await sql<{ settled: string } & Partial<RevocationRow>>`
    select m.settled, r.seq, r.kind, r.subject, r.at, r.expires_at
    from (select pg_snapshot_xmin(pg_current_snapshot())::text as settled) as m
    left join authgate_revocations as r
      on r.expires_at > ${now}
      and (r.seq > ${after} or r.seq = any(${[...missing]}::integer[]) or ${sweep})
    order by r.seq
  `.execute(db)
  const entries = rows.filter((r): r is typeof r & RevocationRow => r.seq != null)
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
}

export async function pruneRevocations(db: Db, now: number): Promise<void> {
  await db.deleteFrom('authgate_revocations').where('expires_at', '<=', now).execute()
}

/** The functions above bound to one database, in the shapes domain/sessions.ts and revocations.ts ask for. */
export function createSessionsRepository(db: Db) {
  return {
    insertSessionWithToken: (session: SessionRow, token: RefreshTokenRow) =>
      insertSessionWithToken(db, session, token),
    listLiveSessions: (userId: number, now: number) => listLiveSessions(db, userId, now),
    findRefreshToken: (tokenHash: string) => findRefreshToken(db, tokenHash),
    rotateRefreshToken: (spentId: string, spentAt: number, successor: string, next: RefreshTokenRow) =>
      rotateRefreshToken(db, spentId, spentAt, successor, next),
    revokeSessions: (userId: number, at: number, reason: string, feedExpiresAt: number, ids?: string[]) =>
      revokeSessions(db, userId, at, reason, feedExpiresAt, ids),
    insertUserCutoff: (userId: number, at: number, feedExpiresAt: number) =>
      insertUserCutoff(db, userId, at, feedExpiresAt),
  }
}

export function createRevocationFeed(db: Db) {
  return {
    read: (position: Parameters<typeof readRevocations>[1], now: number) =>
      readRevocations(db, position, now),
    prune: (now: number) => pruneRevocations(db, now),
  }
}
