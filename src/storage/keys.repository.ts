// SQL for authgate_signing_keys: the server's asymmetric key pairs, in chains (domain/keys.ts
// KEY_CHAINS), each with its current key and its retired ones.
import type { KeysRepository } from '../domain/keys.js'
import { type Db, LOCKS, lockTransaction } from './database.js'

export function createKeysRepository(db: Db): KeysRepository {
  return {
    // The table grows by one row per rotation, so reading it whole is cheap.
    async listKeys() {
      return db.selectFrom('authgate_signing_keys').selectAll().orderBy('created_at').orderBy('kid').execute()
    },

    // A unique index allows at most one key per chain that is not retired.
    async currentKey(chain = 'primary') {
      return db
        .selectFrom('authgate_signing_keys')
        .selectAll()
        .where('chain', '=', chain)
        .where('retired_at', 'is', null)
        .executeTakeFirst()
    },

    /**
     * In one transaction (BEGIN IMMEDIATE on SQLite, an advisory lock on PostgreSQL, so concurrent
     * callers queue: without it two would both find no current key, and the second insert would
     * fail on the one-latest index instead of keeping the first key). Every key that would sign
     * later than `activatesAt` retires then, so the signing periods never overlap. Two servers
     * starting together on a fresh file both call this with keepIfAlg set: the first inserts, the
     * second finds and keeps it. Only `key.chain`'s keys are read and changed.
     */
    async schedule(key, { activatesAt, keepIfAlg, revokeOthersAt }) {
      return db.transaction().execute(async (trx) => {
        await lockTransaction(trx, LOCKS.signingKeys)
        const latest = await trx
          .selectFrom('authgate_signing_keys')
          .selectAll()
          .where('chain', '=', key.chain)
          .where('retired_at', 'is', null)
          .executeTakeFirst()
        if (latest && keepIfAlg !== undefined && latest.alg === keepIfAlg) {
          return { current: latest, retired: undefined }
        }
        await trx
          .updateTable('authgate_signing_keys')
          .set({ retired_at: activatesAt })
          .where('chain', '=', key.chain)
          .where((eb) => eb.or([eb('retired_at', 'is', null), eb('retired_at', '>', activatesAt)]))
          .execute()
        if (revokeOthersAt !== undefined) {
          await trx
            .updateTable('authgate_signing_keys')
            .set({ revoked_at: revokeOthersAt })
            .where('chain', '=', key.chain)
            .where('revoked_at', 'is', null)
            .execute()
        }
        const row = { ...key, activates_at: activatesAt, revoked_at: null }
        await trx.insertInto('authgate_signing_keys').values(row).execute()
        return { current: row, retired: latest?.kid }
      })
    },
  }
}
