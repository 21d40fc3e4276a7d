// SQL for sessions, refresh tokens and the revocation feed.
import { sql } from 'kysely'
import { canBeStored, type Db, dialectOf } from './database.js'
import type { RefreshTokenRow, RevocationRow, SessionRow } from './tables.js'
import { credentialEpoch } from './users.repository.js'

/**
 * Stores a login's session, but only if the user's credential is still the one the login verified
 * (`epoch`); false when it changed or the user is gone. credentials.repository.ts says why a
 * change can then never miss this session.
 */
export async function insertSessionWithToken(
  db: Db,
  session: SessionRow,
  token: RefreshTokenRow,
  epoch: number,
): Promise<boolean> {
  return db.transaction().execute(async (trx) => {
    if ((await credentialEpoch(trx, session.user_id)) !== epoch) return false
    await trx.insertInto('authgate_sessions').values(session).execute()
    await trx.insertInto('authgate_refresh_tokens').values(token).execute()
    return true
  })
}

/** Where a page of live sessions starts: after this (created_at, id), in listing order. */
export interface SessionCursor {
  createdAt: number
  id: string
}

/**
 * One page of live sessions, newest first: keyset pagination on (created_at, id), so a page stays
 * stable while sessions start and end between requests.
 */
export async function listLiveSessionsPage(
  db: Db,
  userId: number,
  now: number,
  limit: number,
  after?: SessionCursor,
): Promise<SessionRow[]> {
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
}

/**
 * The user's live sessions beyond the `keep` most recently used: the ones a cap ends, oldest idle
 * last in the order kept. At most `batch` of them (a cap is enforced at every login, so more
 * than one or two beyond it means the cap was just lowered).
 */
export async function listSessionsBeyond(
  db: Db,
  userId: number,
  keep: number,
  now: number,
  batch = 1000,
): Promise<string[]> {
  const rows = await db
    .selectFrom('authgate_sessions')
    .select('id')
    .where('user_id', '=', userId)
    .where('revoked_at', 'is', null)
    .where('expires_at', '>', now)
    .orderBy('last_used_at', 'desc')
    .orderBy('created_at', 'desc')
    .orderBy('id', 'desc')
    .limit(batch)
    .offset(keep)
    .execute()
  return rows.map((r) => r.id)
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
  return db.transaction().execute((trx) => revokeSessionsIn(trx, userId, at, reason, feedExpiresAt, wanted))
}

/** revokeSessions inside a transaction the caller holds; `except` stays live. */
export async function revokeSessionsIn(
  trx: Db,
  userId: number,
  at: number,
  reason: string,
  feedExpiresAt: number,
  ids?: string[],
  except?: string,
): Promise<string[]> {
  let query = trx
    .selectFrom('authgate_sessions')
    .select('id')
    .where('user_id', '=', userId)
    .where('revoked_at', 'is', null)
  if (ids) query = query.where('id', 'in', ids)
  if (except !== undefined) query = query.where('id', '!=', except)
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

/** Voids one sid-less token, named `${userId}:${jti}`, until its exp. */
export async function insertTokenRevocation(
  db: Db,
  subject: string,
  at: number,
  feedExpiresAt: number,
): Promise<void> {
  await db
    .insertInto('authgate_revocations')
    .values({ kind: 'token', subject, at, expires_at: feedExpiresAt })
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
    insertSessionWithToken: (session: SessionRow, token: RefreshTokenRow, epoch: number) =>
      insertSessionWithToken(db, session, token, epoch),
    listLiveSessionsPage: (userId: number, now: number, limit: number, after?: SessionCursor) =>
      listLiveSessionsPage(db, userId, now, limit, after),
    listSessionsBeyond: (userId: number, keep: number, now: number) =>
      listSessionsBeyond(db, userId, keep, now),
    findRefreshToken: (tokenHash: string) => findRefreshToken(db, tokenHash),
    rotateRefreshToken: (spentId: string, spentAt: number, successor: string, next: RefreshTokenRow) =>
      rotateRefreshToken(db, spentId, spentAt, successor, next),
    revokeSessions: (userId: number, at: number, reason: string, feedExpiresAt: number, ids?: string[]) =>
      revokeSessions(db, userId, at, reason, feedExpiresAt, ids),
    insertUserCutoff: (userId: number, at: number, feedExpiresAt: number) =>
      insertUserCutoff(db, userId, at, feedExpiresAt),
    insertTokenRevocation: (subject: string, at: number, feedExpiresAt: number) =>
      insertTokenRevocation(db, subject, at, feedExpiresAt),
  }
}

export function createRevocationFeed(db: Db) {
  return {
    read: (position: Parameters<typeof readRevocations>[1], now: number) =>
      readRevocations(db, position, now),
    prune: (now: number) => pruneRevocations(db, now),
  }
}
