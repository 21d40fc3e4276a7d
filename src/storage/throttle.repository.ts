// SQL for throttling counters: fixed windows, counted atomically with one upsert.
import { sql } from 'kysely'
import type { FallbackThrottleStore } from '../domain/throttle.js'
import type { Db } from './database.js'

export interface WindowCount {
  count: number
  windowStart: number
}

/**
 * Keys carry what clients typed (`login-account:raw:<name>`), and PostgreSQL text cannot hold
 * U+0000: it becomes U+FFFD, on both databases alike. Two such names then share a counter, which
 * only ever counts more; a valid account's key (its canonical name) never holds either.
 */
const storedKey = (key: string) => key.replaceAll('\u0000', '\uFFFD')

/** Adds one to `key` in the window that started at most `windowMs` ago (or starts a new one). */
export async function hitCounter(
  db: Db,
  rawKey: string,
  now: number,
  windowMs: number,
): Promise<WindowCount> {
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
}

/** Takes back one count (an attempt that turned out to be a success). */
export async function undoHit(db: Db, key: string): Promise<void> {
  await db
    .updateTable('authgate_throttle')
    .set({ count: sql`count - 1` })
    .where('key', '=', storedKey(key))
    .where('count', '>', 0)
    .execute()
}

/** Forgets `key`'s counter (`authgate user unlock`). */
export async function resetCounter(db: Db, key: string): Promise<void> {
  await db.deleteFrom('authgate_throttle').where('key', '=', storedKey(key)).execute()
}

/** The count in `key`'s current window, without adding to it (0 when the window is over). */
export async function peekCounter(db: Db, key: string, now: number, windowMs: number): Promise<number> {
  const row = await db
    .selectFrom('authgate_throttle')
    .select('count')
    .where('key', '=', storedKey(key))
    .where('window_start', '>', now - windowMs)
    .executeTakeFirst()
  return row ? Number(row.count) : 0
}

// In authgate_settings: the latest time a process counted here because Redis was away (epoch ms).
const FALLBACK_KEY = 'throttle_fallback_at'

/** Moves the shared "last counted here instead of Redis" time forward to `at` (never back). */
export async function markThrottleFallback(db: Db, at: number): Promise<void> {
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
}

export async function lastThrottleFallback(db: Db): Promise<number | undefined> {
  const row = await db
    .selectFrom('authgate_settings')
    .select('value')
    .where('key', '=', FALLBACK_KEY)
    .executeTakeFirst()
  return row ? Number(row.value) : undefined
}

export async function pruneCounters(db: Db, olderThan: number): Promise<void> {
  await db.deleteFrom('authgate_throttle').where('window_start', '<', olderThan).execute()
}

export function createThrottleStore(db: Db): FallbackThrottleStore {
  return {
    hit: (key: string, now: number, windowMs: number) => hitCounter(db, key, now, windowMs),
    undo: (key: string) => undoHit(db, key),
    reset: (key: string) => resetCounter(db, key),
    peek: (key: string, now: number, windowMs: number) => peekCounter(db, key, now, windowMs),
    prune: (olderThan: number) => pruneCounters(db, olderThan),
    lastFallback: () => lastThrottleFallback(db),
    markFallback: (at: number) => markThrottleFallback(db, at),
  }
}
