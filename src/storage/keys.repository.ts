// SQL for authgate_signing_keys: the server's asymmetric key pairs, the current one and the retired.
import { type Db, LOCKS, lockTransaction } from './database.js'
import type { SigningKeyRow } from './tables.js'

/** Every key, oldest first. The table grows by one row per rotation, so reading it whole is cheap. */
export async function listSigningKeys(db: Db): Promise<SigningKeyRow[]> {
  return db.selectFrom('authgate_signing_keys').selectAll().orderBy('created_at').orderBy('kid').execute()
}

/** The key that signs: the one not retired (a unique index allows at most one). */
export async function findCurrentSigningKey(db: Db): Promise<SigningKeyRow | undefined> {
  return db.selectFrom('authgate_signing_keys').selectAll().where('retired_at', 'is', null).executeTakeFirst()
}

/**
 * In one transaction (BEGIN IMMEDIATE on SQLite, an advisory lock on PostgreSQL, so concurrent
 * callers queue: without it two would both find no current key, and the second insert would fail
 * on the one-current index instead of keeping the first key): unless the current
 * key has the algorithm `keepIfAlg`, retires it at `now` and makes `key` current. Returns the key
 * that is current afterwards and the kid it replaced, if any. Two servers starting together on a
 * fresh file both call this with keepIfAlg set: the first inserts, the second finds and keeps it.
 */
export async function makeSigningKeyCurrent(
  db: Db,
  key: SigningKeyRow,
  now: number,
  keepIfAlg?: string,
): Promise<{ current: SigningKeyRow; retired: string | undefined }> {
  return db.transaction().execute(async (trx) => {
    await lockTransaction(trx, LOCKS.signingKeys)
    const current = await trx
      .selectFrom('authgate_signing_keys')
      .selectAll()
      .where('retired_at', 'is', null)
      .executeTakeFirst()
    if (current && keepIfAlg !== undefined && current.alg === keepIfAlg) {
      return { current, retired: undefined }
    }
    if (current) {
      await trx
        .updateTable('authgate_signing_keys')
        .set({ retired_at: now })
        .where('kid', '=', current.kid)
        .execute()
    }
    await trx.insertInto('authgate_signing_keys').values(key).execute()
    return { current: key, retired: current?.kid }
  })
}

/** The functions above bound to one database, in the shape domain/keys.ts asks for. */
export function createKeysRepository(db: Db) {
  return {
    listKeys: () => listSigningKeys(db),
    currentKey: () => findCurrentSigningKey(db),
    makeCurrent: (key: SigningKeyRow, now: number, keepIfAlg?: string) =>
      makeSigningKeyCurrent(db, key, now, keepIfAlg),
  }
}
