// Credential changes (issue 9 items 2 and 3), one step at a time: a login that verified the old
// password loses to a change that commits first, deletion leaves no token and no reused id, the
// operator's commands end sessions too, and the SQLite rebuild keeps every row.
import { Migrator, sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { PasswordHasher } from '../../src/domain/passwords.js'
import { createDatabase } from '../../src/storage/database.js'
import { migrateToLatest } from '../../src/storage/migrate.js'
import { migrations } from '../../src/storage/migrations/index.js'
import {
  buildTestApp,
  fastHasher,
  freshDatabase,
  inspect,
  PASSWORD,
  sqliteOnly,
  type TestApp,
} from '../helpers/app.js'
import { runCli } from '../helpers/cli.js'
import { account, bearer, decodeJwt, logIn, refresh, signUp } from '../helpers/http.js'

const NEW_PASSWORD = 'a brand new passphrase, 2026'

/**
 * fastHasher, except that the next verify of `password` waits for `release()`: a login held
 * between reading the user row and storing its session, where the race lives.
 */
function gatedHasher() {
  let gate: { password: string; reached: () => void; open: Promise<void> } | undefined
  const hasher: PasswordHasher = {
    hash: (p) => fastHasher.hash(p),
    needsRehash: (s) => fastHasher.needsRehash(s),
    async verify(stored, password) {
      const ok = await fastHasher.verify(stored, password)
      const g = gate
      if (g && g.password === password) {
        gate = undefined
        g.reached()
        await g.open
      }
      return ok
    },
  }
  return {
    hasher,
    /** Holds the next verify of `password`; resolves once one is held, with its release. */
    hold(password: string): Promise<() => void> {
      let release = () => {}
      const open = new Promise<void>((r) => {
        release = r
      })
      return new Promise((resolve) => {
        gate = { password, reached: () => resolve(release), open }
      })
    },
  }
}

describe('credential changes against a login in flight', () => {
  const gated = gatedHasher()
  let t: TestApp
  beforeAll(async () => {
    t = await buildTestApp({}, { hasher: gated.hasher })
  })
  afterAll(async () => {
    await t.close()
  })

  const sessionsOf = async (userId: number) =>
    (
      await inspect(t.dbUrl)
        .selectFrom('authgate_sessions')
        .select('id')
        .where('user_id', '=', userId)
        .where('revoked_at', 'is', null)
        .execute()
    ).length

  it('a password change that commits first makes the login that read the old hash a 401', async () => {
    const owner = await account(t.app, 'racer')
    const held = gated.hold(PASSWORD)
    const racing = logIn(t.app, 'racer')
    const release = await held
    // The login has verified the old password; the owner changes it now.
    const changed = await t.app.inject({
      method: 'POST',
      url: '/auth/password',
      headers: bearer(owner.access_token),
      payload: { current_password: PASSWORD, new_password: NEW_PASSWORD },
    })
    expect(changed.statusCode).toBe(204)
    release()
    const lost = await racing
    expect(lost.statusCode).toBe(401)
    expect(lost.json()).toMatchObject({ code: 'invalid_credentials' })
    const me = await t.app.inject({ url: '/auth/me', headers: bearer(owner.access_token) })
    expect(await sessionsOf(me.json().id)).toBe(1) // the owner's own, and nothing else
  })

  it('a deletion that commits first makes the login a 401, not a 500', async () => {
    const owner = await account(t.app, 'leaver')
    const held = gated.hold(PASSWORD)
    const racing = logIn(t.app, 'leaver')
    const release = await held
    const deleted = await t.app.inject({
      method: 'DELETE',
      url: '/auth/me',
      headers: bearer(owner.access_token),
      payload: { password: PASSWORD },
    })
    expect(deleted.statusCode).toBe(204)
    release()
    expect((await racing).statusCode).toBe(401)
  })

  it('a change whose password check was overtaken by another change is refused', async () => {
    const owner = await account(t.app, 'twice')
    const change = (current: string, next: string) =>
      t.app.inject({
        method: 'POST',
        url: '/auth/password',
        headers: bearer(owner.access_token),
        payload: { current_password: current, new_password: next },
      })
    const held = gated.hold(PASSWORD)
    const first = change(PASSWORD, 'the first new passphrase')
    const release = await held
    expect((await change(PASSWORD, 'the second new passphrase')).statusCode).toBe(204)
    release()
    // The first proved a password that stopped being current before it could store its own.
    expect((await first).statusCode).toBe(400)
    expect((await logIn(t.app, 'twice', 'the second new passphrase')).statusCode).toBe(200)
    expect((await logIn(t.app, 'twice', 'the first new passphrase')).statusCode).toBe(401)
  })
})

describe('account deletion', () => {
  let t: TestApp
  beforeAll(async () => {
    t = await buildTestApp()
  })
  afterAll(async () => {
    await t.close()
  })

  it('never gives the highest id to the next user, and the old token acts for no one', async () => {
    await signUp(t.app, 'first')
    const old = await account(t.app, 'newest')
    const oldId = (await t.app.inject({ url: '/auth/me', headers: bearer(old.access_token) })).json().id
    const deleted = await t.app.inject({
      method: 'DELETE',
      url: '/auth/me',
      headers: bearer(old.access_token),
      payload: { password: PASSWORD },
    })
    expect(deleted.statusCode).toBe(204)
    // The revocations were recorded in the same transaction as the deletion.
    const feed = await inspect(t.dbUrl).selectFrom('authgate_revocations').selectAll().execute()
    expect(feed.map((r) => r.kind).sort()).toEqual(['session', 'user'])

    expect((await signUp(t.app, 'newest')).statusCode).toBe(201)
    const fresh = (await logIn(t.app, 'newest')).json()
    const me = (await t.app.inject({ url: '/auth/me', headers: bearer(fresh.access_token) })).json()
    expect(me.id).toBeGreaterThan(oldId)
    for (const url of ['/', '/auth/me', '/auth/sessions']) {
      expect((await t.app.inject({ url, headers: bearer(old.access_token) })).statusCode, url).toBe(401)
    }
  })

  it('checks the database on account routes: a session ended elsewhere is refused at once', async () => {
    const pair = await account(t.app, 'elsewhere')
    // As another instance's logout would leave it before this one's view hears of it.
    await inspect(t.dbUrl).updateTable('authgate_sessions').set({ revoked_at: Date.now() }).execute()
    const me = await t.app.inject({ url: '/auth/me', headers: bearer(pair.access_token) })
    expect(me.statusCode).toBe(401)
    expect(me.json()).toEqual({ detail: 'Could not validate credentials', code: 'invalid_token' })
  })
})

describe('the operator commands', () => {
  let t: TestApp
  let env: Record<string, string>
  beforeAll(async () => {
    t = await buildTestApp()
    env = { DATABASE_URL: t.dbUrl }
  })
  afterAll(async () => {
    await t.close()
  })

  it('user set-password and user delete end every session of the user', async () => {
    const before = await account(t.app, 'managed')
    expect(await runCli(['user', 'set-password', 'managed'], env, `${NEW_PASSWORD}\n`)).toMatchObject({
      code: 0,
    })
    expect((await refresh(t.app, before.refresh_token)).statusCode).toBe(400)

    const after = (await logIn(t.app, 'managed', NEW_PASSWORD)).json()
    expect(await runCli(['user', 'delete', 'managed'], env)).toMatchObject({ code: 0 })
    expect((await refresh(t.app, after.refresh_token)).statusCode).toBe(400)
    // Each session's end is in the feed the servers poll, so every instance honours it.
    const feed = await inspect(t.dbUrl)
      .selectFrom('authgate_revocations')
      .select('subject')
      .where('kind', '=', 'session')
      .execute()
    expect(feed.map((r) => r.subject).sort()).toEqual(
      [decodeJwt(before.access_token).sid, decodeJwt(after.access_token).sid].sort(),
    )
  })
})

describe.skipIf(sqliteOnly('the users table rebuild is SQLite only'))('the SQLite users rebuild', () => {
  it('keeps every user, index and session, and numbers new rows past any id ever used', async () => {
    const file = await freshDatabase()
    const db = createDatabase(file.url)
    try {
      const migrator = new Migrator({
        db,
        provider: { getMigrations: async () => migrations },
        migrationTableName: 'authgate_migration',
        migrationLockTableName: 'authgate_migration_lock',
      })
      // The schema before this change, with the seed's users and a live session in it.
      expect((await migrator.migrateTo('2026_11_28_005_throttle')).error).toBeUndefined()
      await db
        .insertInto('users')
        .values([
          { username: 'kept', password: 'x', username_canonical: 'kept', created_at: null },
          { username: 'newest', password: 'y', username_canonical: 'newest', created_at: null },
        ])
        .execute()
      const session = { created_at: 1, last_used_at: 1, expires_at: 2, user_agent: null, ip: null }
      await db
        .insertInto('authgate_sessions')
        .values({ ...session, id: 's1', user_id: 1, revoked_at: null, revoked_reason: null })
        .execute()

      await migrateToLatest(db)
      const schema = await sql<{
        name: string
        sql: string | null
      }>`SELECT name, sql FROM sqlite_master`.execute(db)
      const ddl = Object.fromEntries(schema.rows.map((r) => [r.name, r.sql]))
      expect(ddl.users).toMatch(/id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT/)
      expect(Object.keys(ddl)).toEqual(
        expect.arrayContaining(['ix_users_id', 'users_username_canonical_key']),
      )
      expect(await db.selectFrom('users').select(['id', 'username']).orderBy('id').execute()).toEqual([
        { id: 1, username: 'kept' },
        { id: 2, username: 'newest' },
      ])
      expect(await db.selectFrom('authgate_sessions').select('id').execute()).toEqual([{ id: 's1' }])

      // As the seed app inserts (no id), after the newest user went.
      await db.deleteFrom('users').where('id', '=', 2).execute()
      await db
        .insertInto('users')
        .values({ username: 'next', password: 'z', username_canonical: null, created_at: null })
        .execute()
      expect(
        (await db.selectFrom('users').select('id').where('username', '=', 'next').executeTakeFirstOrThrow())
          .id,
      ).toBe(3)
      // The foreign key still holds and still cascades.
      await db.deleteFrom('users').where('id', '=', 1).execute()
      expect(await db.selectFrom('authgate_sessions').select('id').execute()).toEqual([])
    } finally {
      await db.destroy()
      await file.drop()
    }
  })
})
