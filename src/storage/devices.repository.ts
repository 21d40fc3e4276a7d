// SQL for the devices that logged in to an account: the ones whose cookies keep a login allowance
// of their own (domain/throttle.ts).
import type { DeviceRegistry } from '../domain/throttle.js'
import type { Db } from './database.js'
import { credentialEpoch } from './users.repository.js'

export function createDevicesRepository(db: Db): DeviceRegistry {
  return {
    // One primary-key lookup joined to the user row.
    async find(nonce, userId, epoch) {
      const row = await db
        .selectFrom('authgate_devices as d')
        .innerJoin('users as u', 'u.id', 'd.user_id')
        .select('u.username')
        .where('d.nonce', '=', nonce)
        .where('d.user_id', '=', userId)
        .where('u.authgate_credential_epoch', '=', epoch)
        .executeTakeFirst()
      return row?.username
    },

    // Unless the credential moved past `epoch` meanwhile: a change deletes the devices, and this
    // must not bring one back.
    async remember({ nonce, userId, epoch, at, keep }) {
      return db.transaction().execute(async (trx) => {
        if ((await credentialEpoch(trx, userId)) !== epoch) return false
        await trx
          .insertInto('authgate_devices')
          .values({ nonce, user_id: userId, last_login_at: at })
          .onConflict((oc) =>
            oc
              .column('nonce')
              .doUpdateSet({ last_login_at: at })
              .where('authgate_devices.user_id', '=', userId),
          )
          .execute()
        await trx
          .deleteFrom('authgate_devices')
          .where('user_id', '=', userId)
          .where('nonce', 'not in', (eb) =>
            eb
              .selectFrom('authgate_devices')
              .select('nonce')
              .where('user_id', '=', userId)
              .orderBy('last_login_at', 'desc')
              .orderBy('nonce', 'desc')
              .limit(keep),
          )
          .execute()
        return true
      })
    },

    // `authgate user unlock` clears their counters.
    async nonces(userId) {
      const rows = await db
        .selectFrom('authgate_devices')
        .select('nonce')
        .where('user_id', '=', userId)
        .execute()
      return rows.map((r) => r.nonce)
    },
  }
}
