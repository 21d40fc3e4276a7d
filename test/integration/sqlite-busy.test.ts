// Faults (SQLite): another connection (a second process, the seed app, a backup) holds the file's
// write lock longer than busy_timeout. A request that must write gets a retryable 503 with
// Retry-After, as when PostgreSQL is unreachable, not a 500; it stores nothing; and once the lock
// is released the same server writes again. The lock is real: BEGIN IMMEDIATE from a second
// better-sqlite3 connection on the same file.
import Database from 'better-sqlite3'
import { afterEach, describe, expect, it } from 'vitest'
import { buildApp } from '../../src/app.js'
import { loadConfig } from '../../src/config.js'
import { fastHasher, freshDatabase, inspect, sqliteOnly, type TestDatabase } from '../helpers/app.js'
import { signUp } from '../helpers/http.js'

const made: TestDatabase[] = []
afterEach(async () => {
  await Promise.all(made.splice(0).map((db) => db.drop()))
})

describe.skipIf(sqliteOnly('the SQLite write lock held by another connection'))(
  'a SQLite file locked by another writer',
  () => {
    it('answers a sign-up 503 with Retry-After after busy_timeout, stores nothing, then recovers', async () => {
      const db = await freshDatabase()
      made.push(db)
      // timeout=0.3 (SQLAlchemy's parameter, in seconds): busy_timeout 300 ms instead of 5 s.
      const app = await buildApp(loadConfig({ DATABASE_URL: `${db.url}?timeout=0.3`, RATE_LIMIT: 'off' }), {
        hasher: fastHasher,
      })
      const other = new Database(db.path ?? '')
      try {
        other.exec('BEGIN IMMEDIATE')
        const start = Date.now()
        const res = await signUp(app, 'locked_out')
        const ms = Date.now() - start
        expect(res.statusCode, res.body).toBe(503)
        expect(res.headers['retry-after']).toBe('5')
        expect(res.json()).toEqual({ detail: 'Service temporarily unavailable', code: 'service_unavailable' })
        // It waited for the lock (busy_timeout), but not the default 5 s.
        expect(ms).toBeGreaterThanOrEqual(250)
        expect(ms).toBeLessThan(4_000)
        other.exec('ROLLBACK')

        const stored = await inspect(db.url)
          .selectFrom('users')
          .select((eb) => eb.fn.countAll<number>().as('n'))
          .where('username', '=', 'locked_out')
          .executeTakeFirstOrThrow()
        expect(stored.n).toBe(0)
        // The lock is gone: the same server, unchanged, takes the same sign-up.
        expect((await signUp(app, 'locked_out')).statusCode).toBe(201)
      } finally {
        other.close()
        await app.close()
      }
    })
  },
)
