// What survives a restart and is shared by processes on one database: users and the signing key.
import Database from 'better-sqlite3'
import { sql } from 'kysely'
import { afterEach, describe, expect, it } from 'vitest'
import { buildApp } from '../../src/app.js'
import { loadConfig } from '../../src/config.js'
import { migrations } from '../../src/storage/migrations/index.js'
import {
  fastHasher,
  freshDatabase,
  inspect,
  PASSWORD,
  sqliteOnly,
  type TestDatabase,
} from '../helpers/app.js'
import { spawnCli } from '../helpers/cli.js'
import { greet, logIn, signUp, tokenFor } from '../helpers/http.js'
import { hmac } from '../helpers/jwt.js'

const made: TestDatabase[] = []
afterEach(async () => {
  await Promise.all(made.splice(0).map((db) => db.drop()))
})

async function freshDb(): Promise<TestDatabase> {
  // A nested path on SQLite: the folders are made too.
  const db = await freshDatabase('nested/folder/auth.db')
  made.push(db)
  return db
}

// The generated HS256 secret: a fresh install signs with ES256 unless JWT_ALGORITHM=HS256 asks for
// it (key pairs are covered in keys.test.ts).
const HS256 = { JWT_ALGORITHM: 'HS256' }

describe('a generated signing key', () => {
  it('is created once, kept in the database, and survives a restart', async () => {
    const db = await freshDb()
    const first = await buildApp(loadConfig({ DATABASE_URL: db.url, ...HS256 }), { hasher: fastHasher })
    const token = await tokenFor(first, 'persisted')
    await first.close()

    const second = await buildApp(loadConfig({ DATABASE_URL: db.url, ...HS256 }), { hasher: fastHasher })
    expect((await greet(second, token)).statusCode).toBe(200)
    expect((await logIn(second, 'persisted')).statusCode).toBe(200)
    await second.close()

    const row = await inspect(db.url)
      .selectFrom('authgate_settings')
      .select('value')
      .where('key', '=', 'jwt_hs256_secret')
      .executeTakeFirstOrThrow()
    expect(row.value).toMatch(/^[0-9a-f]{64}$/)
    // The token is signed with that stored key.
    const [h, p, s] = token.split('.')
    expect(hmac('sha256', row.value)(`${h}.${p}`)).toBe(s)
  })

  it('is the same for three processes starting together on one fresh database', async () => {
    const db = await freshDb()
    // Each process migrates the new file and generates a key; exactly one of each must win.
    const runs = await Promise.all(
      ['ann', 'ben', 'cat'].map((name) =>
        spawnCli(['user', 'create', name], { DATABASE_URL: db.url, ...HS256 }, `${PASSWORD}\n`),
      ),
    )
    for (const run of runs) expect(run, run.stderr).toMatchObject({ code: 0 })
    const check = inspect(db.url)
    const secrets = await check
      .selectFrom('authgate_settings')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('key', '=', 'jwt_hs256_secret')
      .executeTakeFirstOrThrow()
    expect(secrets).toEqual({ n: 1 })
    // Kysely's own table, outside our Database type.
    const applied = await sql<{ n: number }>`select count(*) as n from authgate_migration`.execute(check)
    expect(applied.rows).toEqual([{ n: Object.keys(migrations).length }])
    const app = await buildApp(loadConfig({ DATABASE_URL: db.url, ...HS256 }), { hasher: fastHasher })
    for (const name of ['ann', 'ben', 'cat']) expect((await logIn(app, name)).statusCode, name).toBe(200)
    await app.close()
  })

  it('differs between databases, and gives way to SECRET_KEY', async () => {
    const one = await buildApp(loadConfig({ DATABASE_URL: (await freshDb()).url, ...HS256 }), {
      hasher: fastHasher,
    })
    const two = await buildApp(loadConfig({ DATABASE_URL: (await freshDb()).url, ...HS256 }), {
      hasher: fastHasher,
    })
    const secret = 'x'.repeat(48)
    const three = await buildApp(loadConfig({ DATABASE_URL: (await freshDb()).url, SECRET_KEY: secret }), {
      hasher: fastHasher,
    })
    const token = await tokenFor(one, 'someone')
    expect((await greet(two, token)).statusCode).toBe(401)
    expect((await greet(three, token)).statusCode).toBe(401)
    const own = await tokenFor(three, 'someone')
    const [h, p, s] = own.split('.')
    expect(hmac('sha256', secret)(`${h}.${p}`)).toBe(s)
    await Promise.all([one.close(), two.close(), three.close()])
  })
})

describe('the database', () => {
  it('keeps users across restarts', async () => {
    const db = await freshDb()
    const first = await buildApp(loadConfig({ DATABASE_URL: db.url }), { hasher: fastHasher })
    expect((await signUp(first, 'kept')).statusCode).toBe(201)
    await first.close()
    expect(
      await inspect(db.url).selectFrom('users').select(['username', 'username_canonical']).execute(),
    ).toEqual([{ username: 'kept', username_canonical: 'kept' }])
    const second = await buildApp(loadConfig({ DATABASE_URL: db.url }), { hasher: fastHasher })
    expect((await signUp(second, 'KEPT')).statusCode).toBe(409)
    await second.close()
  })

  it.skipIf(sqliteOnly('the SQLite file: its folder is made, and it is in WAL mode'))(
    'is a SQLite file created with its folder, in WAL mode',
    async () => {
      const db = await freshDb()
      const app = await buildApp(loadConfig({ DATABASE_URL: db.url }), { hasher: fastHasher })
      await app.close()
      const raw = new Database(db.path ?? '', { readonly: true })
      expect(raw.pragma('journal_mode', { simple: true })).toBe('wal')
      raw.close()
    },
  )
})
