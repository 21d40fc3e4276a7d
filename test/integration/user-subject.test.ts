// The users' stable subject (migration 2026_12_03_004, issue 12 item 4), on SQLite and PostgreSQL:
// filled in for the users already there, for rows the seed app inserts and for our own sign-ups;
// unique; and never handed again to a name deleted and registered anew.
import { Migrator } from 'kysely'
import { afterAll, describe, expect, it } from 'vitest'
import { createDatabase } from '../../src/storage/database.js'
import { migrateToLatest } from '../../src/storage/migrate.js'
import { migrations } from '../../src/storage/migrations/index.js'
import { buildTestApp, freshDatabase, inspect, PASSWORD } from '../helpers/app.js'
import { signUp, tokenFor } from '../helpers/http.js'

const SUBJECT = /^[0-9a-f]{32}$/
const BEFORE = '2026_12_03_002_authorization_codes'

const database = await freshDatabase('subject.db')
const db = createDatabase(database.url)
afterAll(() => db.destroy())
const migrator = new Migrator({
  db,
  provider: { getMigrations: async () => migrations },
  migrationTableName: 'authgate_migration',
  migrationLockTableName: 'authgate_migration_lock',
})

// As the seed app inserts: its own columns only.
const seedInsert = (username: string) =>
  db
    .insertInto('users')
    .values({ username, password: 'x', username_canonical: null, created_at: null })
    .execute()
const subjects = async () =>
  (await db.selectFrom('users').select(['username', 'subject']).orderBy('id').execute()).map((r) => [
    r.username,
    r.subject,
  ])

describe('the subject column', () => {
  it('gives every existing user its own subject, and one to each row the seed app inserts later', async () => {
    expect((await migrator.migrateTo(BEFORE)).error).toBeUndefined()
    for (const name of ['ann', 'bob', 'cy']) await seedInsert(name)
    await migrateToLatest(db)
    const before = await subjects()
    expect(before.map(([u]) => u)).toEqual(['ann', 'bob', 'cy'])
    for (const [, s] of before) expect(s).toMatch(SUBJECT)
    expect(new Set(before.map(([, s]) => s)).size).toBe(3)

    await seedInsert('dee')
    const after = await subjects()
    expect(after.slice(0, 3)).toEqual(before)
    expect(after[3]?.[1]).toMatch(SUBJECT)
    expect(new Set(after.map(([, s]) => s)).size).toBe(4)
  })

  it('is unique', async () => {
    const [[, taken]] = (await subjects()) as [[string, string]]
    await expect(
      db
        .insertInto('users')
        .values({
          username: 'copycat',
          password: 'x',
          username_canonical: null,
          created_at: null,
          subject: taken,
        })
        .execute(),
    ).rejects.toThrow(/unique|UNIQUE/)
  })

  it('goes away on the way down, and comes back (new) on the way up', async () => {
    expect((await migrator.migrateTo(BEFORE)).error).toBeUndefined()
    const columns = (await db.introspection.getTables()).find((t) => t.name === 'users')?.columns
    expect(columns?.map((c) => c.name)).not.toContain('subject')
    await seedInsert('eve') // no trigger left behind to fail on a column that is gone
    await migrateToLatest(db)
    const all = await subjects()
    expect(all.map(([u]) => u)).toEqual(['ann', 'bob', 'cy', 'dee', 'eve'])
    for (const [, s] of all) expect(s).toMatch(SUBJECT)
  })
})

describe('through the app', () => {
  it('a name deleted and registered again is another subject', async () => {
    const t = await buildTestApp()
    try {
      const subjectOf = async (username: string) =>
        (
          await inspect(t.dbUrl)
            .selectFrom('users')
            .select('subject')
            .where('username', '=', username)
            .executeTakeFirstOrThrow()
        ).subject
      const token = await tokenFor(t.app, 'grace')
      const first = await subjectOf('grace')
      expect(first).toMatch(SUBJECT)
      const deleted = await t.app.inject({
        method: 'DELETE',
        url: '/auth/me',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        payload: { password: PASSWORD },
      })
      expect(deleted.statusCode, deleted.body).toBe(204)
      expect((await signUp(t.app, 'grace')).statusCode).toBe(201)
      const second = await subjectOf('grace')
      expect(second).toMatch(SUBJECT)
      expect(second).not.toBe(first)
    } finally {
      await t.close()
    }
  })
})
