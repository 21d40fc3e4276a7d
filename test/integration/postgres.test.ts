// What the PostgreSQL driver set-up promises (PostgreSQL run only): bigint and count(*) as JS
// numbers without touching pg's global parsers, and pool size, statement timeout and TLS taken from
// the URL or from DATABASE_POOL_SIZE / DATABASE_STATEMENT_TIMEOUT_MS.
import { sql } from 'kysely'
import pg from 'pg'
import { describe, expect, it } from 'vitest'
import { createDatabase, type Db, dialectOf } from '../../src/storage/database.js'
import { migrateToLatest } from '../../src/storage/migrate.js'
import { freshDatabase, onPostgres } from '../helpers/app.js'

async function withDb<T>(url: string, fn: (db: Db) => Promise<T>, options = {}): Promise<T> {
  const db = createDatabase(url, options)
  try {
    return await fn(db)
  } finally {
    await db.destroy()
  }
}

const withParams = (url: string, params: Record<string, string>) => {
  const u = new URL(url)
  for (const [k, v] of Object.entries(params)) u.searchParams.set(k, v)
  return u.href
}

describe.skipIf(!onPostgres)('the PostgreSQL driver', () => {
  it('speaks postgres, and gives bigint columns and count(*) as numbers, for this pool only', async () => {
    const { url } = await freshDatabase()
    await withDb(url, async (db) => {
      expect(dialectOf(db)).toBe('postgres')
      await migrateToLatest(db)
      const at = Date.UTC(2026, 10, 28, 12, 30, 45, 678)
      await db
        .insertInto('authgate_revocations')
        .values({ kind: 'user', subject: '7', at, expires_at: at + 1 })
        .execute()
      // (Its xid column, PostgreSQL's own, is the feed's business: sessions.repository.ts.)
      const columns = ['seq', 'kind', 'subject', 'at', 'expires_at'] as const
      expect(await db.selectFrom('authgate_revocations').select(columns).execute()).toEqual([
        { seq: 1, kind: 'user', subject: '7', at, expires_at: at + 1 },
      ])
      const { rows } = await sql<{
        n: unknown
        big: unknown
      }>`select count(*) as n, 9007199254740991::int8 as big
        from authgate_revocations`.execute(db)
      expect(rows).toEqual([{ n: 1, big: Number.MAX_SAFE_INTEGER }])
      // Beyond 2^53 a number would lose digits: refused rather than silently rounded.
      await expect(sql`select 9007199254740993::int8 as n`.execute(db)).rejects.toThrow(/does not fit/)
    })
    // pg's own parsers are untouched: another pool in this process still gets strings.
    expect(pg.types.getTypeParser(20, 'text')('42')).toBe('42')
  })

  it('takes statement_timeout from the URL, and DATABASE_STATEMENT_TIMEOUT_MS over it', async () => {
    const { url } = await freshDatabase()
    const setting = (db: Db) =>
      sql<{ t: string }>`select current_setting('statement_timeout') as t`
        .execute(db)
        .then((r) => r.rows[0]?.t)
    expect(await withDb(url, setting)).toBe('0')
    const timed = withParams(url, { statement_timeout: '150' })
    expect(await withDb(timed, setting)).toBe('150ms')
    expect(await withDb(timed, setting, { statementTimeoutMs: 2000 })).toBe('2s')
    await withDb(timed, async (db) => {
      await expect(sql`select pg_sleep(2)`.execute(db)).rejects.toThrow(/statement timeout/)
    })
  })

  it('opens at most pool_size connections, or DATABASE_POOL_SIZE over it', async () => {
    const { url } = await freshDatabase()
    const peak = async (dbUrl: string, options = {}) =>
      withDb(
        dbUrl,
        async (db) => {
          const counts = await Promise.all(
            Array.from({ length: 6 }, () =>
              sql<{ n: number }>`select n from (select pg_sleep(0.2)) s, (select count(*) as n
                from pg_stat_activity where application_name = 'pool-probe') c`.execute(db),
            ),
          )
          return Math.max(...counts.map((r) => r.rows[0]?.n ?? 0))
        },
        options,
      )
    const probe = withParams(url, { application_name: 'pool-probe', pool_size: '2' })
    expect(await peak(probe)).toBeLessThanOrEqual(2)
    expect(await peak(probe, { poolSize: 1 })).toBe(1)
  })

  it('applies sslmode: require insists on TLS, disable goes without', async () => {
    const { url } = await freshDatabase()
    const encrypted = (db: Db) =>
      sql<{ ssl: boolean }>`select ssl from pg_stat_ssl where pid = pg_backend_pid()`
        .execute(db)
        .then((r) => r.rows[0]?.ssl)
    expect(await withDb(withParams(url, { sslmode: 'disable' }), encrypted)).toBe(false)
    const serverHasTls = await withDb(url, (db) =>
      sql<{ ssl: string }>`show ssl`.execute(db).then((r) => r.rows[0]?.ssl === 'on'),
    )
    const required = withDb(withParams(url, { sslmode: 'require' }), encrypted)
    if (serverHasTls) await expect(required).resolves.toBe(true)
    else await expect(required).rejects.toThrow(/SSL/i)
  })
})
