// SQL for the devices that logged in to an account: the ones whose cookies keep a login allowance
// of their own (domain/throttle.ts).
import type { Db } from './database.js'
import { credentialEpoch } from './users.repository.js'

/**
 * The name of user `userId` if `nonce` is one of its remembered devices and its credential epoch
 * is still `epoch`; else undefined. One primary-key lookup joined to the user row.
 */
export async function findTrustedDevice(
  db: Db,
  nonce: string,
  userId: number,
  epoch: number,
): Promise<string | undefined> {
  const row = await db
    .selectFrom('authgate_devices as d')
    .innerJoin('users as u', 'u.id', 'd.user_id')
    .select('u.username')
    .where('d.nonce', '=', nonce)
    .where('d.user_id', '=', userId)
    .where('u.authgate_credential_epoch', '=', epoch)
    .executeTakeFirst()
  return row?.username
}

/**
 * Remembers a successful login from device `nonce`, unless the user's credential moved past
 * `epoch` meanwhile (a change deletes the devices; this must not bring one back), and forgets
 * all but the user's `keep` most recent devices. True when the device is remembered.
 */
export async function rememberDevice(
  db: Db,
  device: { nonce: string; userId: number; epoch: number; at: number; keep: number },
): Promise<boolean> {
  const { nonce, userId, epoch, at, keep } = device
  return db.transaction().execute(async (trx) => {
    if ((await credentialEpoch(trx, userId)) !== epoch) return false
    await trx
      .insertInto('authgate_devices')
      .values({ nonce, user_id: userId, last_login_at: at })
      .onConflict((oc) =>
        oc.column('nonce').doUpdateSet({ last_login_at: at }).where('authgate_devices.user_id', '=', userId),
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
}

/** The nonces of the devices remembered for user `userId` (`authgate user unlock` clears their counters). */
export async function deviceNonces(db: Db, userId: number): Promise<string[]> {
  const rows = await db.selectFrom('authgate_devices').select('nonce').where('user_id', '=', userId).execute()
  return rows.map((r) => r.nonce)
}

/** The functions above bound to one database, in the shape domain/throttle.ts asks for. */
export function createDevicesRepository(db: Db) {
  return {
    find: (nonce: string, userId: number, epoch: number) => findTrustedDevice(db, nonce, userId, epoch),
    remember: (device: Parameters<typeof rememberDevice>[1]) => rememberDevice(db, device),
    nonces: (userId: number) => deviceNonces(db, userId),
  }
}
