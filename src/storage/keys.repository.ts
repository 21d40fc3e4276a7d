// SQL for authgate_signing_keys: the server's asymmetric key pairs, the current one and the retired.
import { type Db, LOCKS, lockTransaction } from './database.js'
import type { SigningKeyRow } from './tables.js'

/** Every key, oldest first. The table grows by one row per rotation, so reading it whole is cheap. */
export async function listSigningKeys(db: Db): Promise<SigningKeyRow[]> {
  return db.selectFrom('authgate_signing_keys').selectAll().orderBy('created_at').orderBy('kid').execute()
}

/** The latest key: the one not retired (a unique index allows at most one); it signs now or next. */
export async function findCurrentSigningKey(db: Db): Promise<SigningKeyRow | undefined> {
  return db.selectFrom('authgate_signing_keys').selectAll().where('retired_at', 'is', null).executeTakeFirst()
}

export interface ScheduleOptions {
  /** When `key` starts signing; the key it takes over from signs until then. */
  activatesAt: number
  /** Keep the latest key instead when it has this algorithm (a start: make one only if none is there). */
  keepIfAlg?: string
  /** `keys rotate --now`: every other key stops verifying at this time (a compromised key). */
  revokeOthersAt?: number
}

/**
 * In one transaction (BEGIN IMMEDIATE on SQLite, an advisory lock on PostgreSQL, so concurrent
 * callers queue: without it two would both find no current key, and the second insert would fail
 * on the one-latest index instead of keeping the first key): unless the latest key (the one not
 * retired, current or next) has the algorithm `keepIfAlg`, makes `key` the latest: it signs from
 * `activatesAt`, and every key that would sign later than that retires then (so the signing
 * periods never overlap). Returns the latest key afterwards and the kid it took over from, if any.
 * Two servers starting together on a fresh file both call this with keepIfAlg set: the first
 * inserts, the second finds and keeps it.
 */
export async function scheduleSigningKey(
  db: Db,
  key: Omit<SigningKeyRow, 'activates_at' | 'revoked_at'>,
  { activatesAt, keepIfAlg, revokeOthersAt }: ScheduleOptions,
): Promise<{ current: SigningKeyRow; retired: string | undefined }> {
  return db.transaction().execute(async (trx) => {
    await lockTransaction(trx, LOCKS.signingKeys)
    const latest = await trx
      .selectFrom('authgate_signing_keys')
      .selectAll()
      .where('retired_at', 'is', null)
      .executeTakeFirst()
    if (latest && keepIfAlg !== undefined && latest.alg === keepIfAlg) {
      return { current: latest, retired: undefined }
    }
    await trx
      .updateTable('authgate_signing_keys')
      .set({ retired_at: activatesAt })
      .where((eb) => eb.or([eb('retired_at', 'is', null), eb('retired_at', '>', activatesAt)]))
      .execute()
    if (revokeOthersAt !== undefined) {
      await trx
        .updateTable('authgate_signing_keys')
        .set({ revoked_at: revokeOthersAt })
        .where('revoked_at', 'is', null)
        .execute()
    }
    const row: SigningKeyRow = { ...key, activates_at: activatesAt, revoked_at: null }
    await trx.insertInto('authgate_signing_keys').values(row).execute()
    return { current: row, retired: latest?.kid }
  })
}

/** scheduleSigningKey, signing at once: a start that finds no key of its algorithm. */
export async function makeSigningKeyCurrent(
  db: Db,
  key: Omit<SigningKeyRow, 'activates_at' | 'revoked_at'>,
  now: number,
  keepIfAlg?: string,
): Promise<{ current: SigningKeyRow; retired: string | undefined }> {
  return scheduleSigningKey(db, key, { activatesAt: now, ...(keepIfAlg === undefined ? {} : { keepIfAlg }) })
}

/** The functions above bound to one database, in the shape domain/keys.ts asks for. */
export function createKeysRepository(db: Db) {
  return {
    listKeys: () => listSigningKeys(db),
    currentKey: () => findCurrentSigningKey(db),
    schedule: (key: Omit<SigningKeyRow, 'activates_at' | 'revoked_at'>, options: ScheduleOptions) =>
      scheduleSigningKey(db, key, options),
  }
}
