// SQL for throttling counters: fixed windows, counted atomically with one upsert.
import { sql } from 'kysely'
import type { FallbackThrottleStore } from '../domain/throttle.js'
import type { Db } from './database.js'

/**
 * Keys carry what clients typed (`login-account:raw:<name>`), and PostgreSQL text cannot hold
 * U+0000: it becomes U+FFFD, on both databases alike. Two such names then share a counter, which
 * only ever counts more; a valid account's key (its canonical name) never holds either.
 */
const storedKey = (key: string) => key.replaceAll('\u0000', '\uFFFD')

// In authgate_settings: the latest time a process counted here because Redis was away (epoch ms).
const FALLBACK_KEY = 'throttle_fallback_at'

export function createThrottleStore(db: Db): FallbackThrottleStore {
  return {
    // One upsert, so concurrent hits from any number of processes each count.
    async hit(rawKey, now, windowMs) {
      const key = storedKey(rawKey)
      const stale = now - windowMs
      const row = await db
        .insertInto('authgate_throttle')
        .values({ key, window_start: now, count: 1 })
        .onConflict((oc) =>
          oc.column('key').doUpdateSet({
            count: sql`CASE WHEN authgate_throttle.window_start <= ${stale} THEN 1 ELSE authgate_throttle.count + 1 END`,
            window_start: sql`CASE WHEN authgate_throttle.window_start <= ${stale} THEN ${now} ELSE authgate_throttle.window_start END`,
          }),
        )
        .returning(['count', 'window_start'])
        .executeTakeFirstOrThrow()
      return { count: Number(row.count), windowStart: Number(row.window_start) }
    },

    async undo(key) {
      await db
        .updateTable('authgate_throttle')
        .set({ count: sql`count - 1` })
        .where('key', '=', storedKey(key))
        .where('count', '>', 0)
        .execute()
    },

    async reset(key) {
      await db.deleteFrom('authgate_throttle').where('key', '=', storedKey(key)).execute()
    },

    async peek(key, now, windowMs) {
      const row = await db
        .selectFrom('authgate_throttle')
        .select('count')
        .where('key', '=', storedKey(key))
        .where('window_start', '>', now - windowMs)
        .executeTakeFirst()
      return row ? Number(row.count) : 0
    },

    async prune(olderThan) {
      await db.deleteFrom('authgate_throttle').where('window_start', '<', olderThan).execute()
    },

    async lastFallback() {
      const row = await db
        .selectFrom('authgate_settings')
        .select('value')
        .where('key', '=', FALLBACK_KEY)
        .executeTakeFirst()
      return row ? Number(row.value) : undefined
    },

    async markFallback(at) {
      const value = String(Math.trunc(at))
      await db
        .insertInto('authgate_settings')
        .values({ key: FALLBACK_KEY, value })
        .onConflict((oc) =>
          oc
            .column('key')
            .doUpdateSet({ value })
            // Processes' clocks differ a little: a late writer with an earlier time changes nothing.
            .where(sql<number>`cast(authgate_settings.value as bigint)`, '<', Math.trunc(at)),
        )
        .execute()
    },
  }
}
