// SQL for authgate_settings: small named values that every process on the database shares.
import type { Db } from './database.js'

export async function getSetting(db: Db, key: string): Promise<string | undefined> {
  const row = await db
    .selectFrom('authgate_settings')
    .select('value')
    .where('key', '=', key)
    .executeTakeFirst()
  return row?.value
}

/** Stores `value` unless the key exists; returns whichever value is stored now (first writer wins). */
export async function getOrInsertSetting(db: Db, key: string, value: string): Promise<string> {
  await db
    .insertInto('authgate_settings')
    .values({ key, value })
    .onConflict((oc) => oc.column('key').doNothing())
    .execute()
  const stored = await getSetting(db, key)
  if (stored === undefined) throw new Error(`setting ${key} vanished after insert`)
  return stored
}

/** Sets `key` to `value` only if it still holds `expected`; false when another writer changed it first. */
export async function replaceSetting(db: Db, key: string, expected: string, value: string): Promise<boolean> {
  const result = await db
    .updateTable('authgate_settings')
    .set({ value })
    .where('key', '=', key)
    .where('value', '=', expected)
    .executeTakeFirst()
  return result.numUpdatedRows > 0n
}
