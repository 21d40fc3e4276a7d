// SQL for authgate_settings: small named values that every process on the database shares.
import type { DeploymentSettingsStore } from '../domain/deployment.js'
import type { Db } from './database.js'

export function createSettingsRepository(db: Db): DeploymentSettingsStore {
  const settings: DeploymentSettingsStore = {
    async get(key) {
      const row = await db
        .selectFrom('authgate_settings')
        .select('value')
        .where('key', '=', key)
        .executeTakeFirst()
      return row?.value
    },

    async getOrInsert(key, value) {
      await db
        .insertInto('authgate_settings')
        .values({ key, value })
        .onConflict((oc) => oc.column('key').doNothing())
        .execute()
      const stored = await settings.get(key)
      if (stored === undefined) throw new Error(`setting ${key} vanished after insert`)
      return stored
    },

    async replace(key, expected, value) {
      const result = await db
        .updateTable('authgate_settings')
        .set({ value })
        .where('key', '=', key)
        .where('value', '=', expected)
        .executeTakeFirst()
      return result.numUpdatedRows > 0n
    },
  }
  return settings
}
