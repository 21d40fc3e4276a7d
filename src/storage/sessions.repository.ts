// SQL for sessions, refresh tokens and the revocation feed.
import { canBeStored, type Db } from './database.js'
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

/** Revocations after `seq` that can still matter at `now`. */
export async function listRevocationsSince(db: Db, seq: number, now: number): Promise<RevocationRow[]> {
  return db
    .selectFrom('authgate_revocations')
    .selectAll()
    .where('seq', '>', seq)
    .where('expires_at', '>', now)
    .orderBy('seq')
    .execute()
}

export async function pruneRevocations(db: Db, now: number): Promise<void> {
  await db.deleteFrom('authgate_revocations').where('expires_at', '<=', now).execute()
}

/** The functions above bound to one database, in the shapes domain/sessions.ts and revocations.ts ask for. */
export function createSessionsRepository(db: Db) {
  return {
    insertSessionWithToken: (session: SessionRow, token: RefreshTokenRow, epoch: number) =>
      insertSessionWithToken(db, session, token, epoch),
    listLiveSessions: (userId: number, now: number) => listLiveSessions(db, userId, now),
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
    since: (seq: number, now: number) => listRevocationsSince(db, seq, now),
    prune: (now: number) => pruneRevocations(db, now),
  }
}
