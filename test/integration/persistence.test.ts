// What survives a restart and is shared by processes on one database: users and the signing key.
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterEach, describe, expect, it } from 'vitest'
import { buildApp } from '../../src/app.js'
import { loadConfig } from '../../src/config.js'
import { migrations } from '../../src/storage/migrations/index.js'
import { fastHasher, login, PASSWORD, register, tempDir, tokenFor } from '../helpers/app.js'
import { runCli } from '../helpers/cli.js'
import { hmac } from '../helpers/jwt.js'

const dirs: { cleanup: () => void }[] = []
afterEach(() => {
  for (const d of dirs.splice(0)) d.cleanup()
})

function freshDb() {
  const dir = tempDir()
  dirs.push(dir)
  const path = join(dir.path, 'nested', 'folder', 'auth.db')
  return { path, url: `sqlite:///${path}` }
}

const greet = (app: Awaited<ReturnType<typeof buildApp>>, token: string) =>
  app.inject({ url: '/', headers: { authorization: `Bearer ${token}` } })

// The generated HS256 secret: a fresh install signs with ES256 unless JWT_ALGORITHM=HS256 asks for
// it (key pairs are covered in keys.test.ts).
const HS256 = { JWT_ALGORITHM: 'HS256' }

describe('a generated signing key', () => {
  it('is created once, kept in the database, and survives a restart', async () => {
    const db = freshDb()
    const first = await buildApp(loadConfig({ DATABASE_URL: db.url, ...HS256 }), { hasher: fastHasher })
    const token = await tokenFor(first, 'persisted')
    await first.close()

    const second = await buildApp(loadConfig({ DATABASE_URL: db.url, ...HS256 }), { hasher: fastHasher })
    expect((await greet(second, token)).statusCode).toBe(200)
    expect((await login(second, 'persisted')).statusCode).toBe(200)
    await second.close()

    const raw = new Database(db.path, { readonly: true })
    const row = raw.prepare("select value from authgate_settings where key = 'jwt_hs256_secret'").get() as {
      value: string
    }
    raw.close()
    expect(row.value).toMatch(/^[0-9a-f]{64}$/)
    // The token is signed with that stored key.
    const [h, p, s] = token.split('.')
    expect(hmac('sha256', row.value)(`${h}.${p}`)).toBe(s)
  })

  it('is the same for three processes starting together on one fresh database', async () => {
    const db = freshDb()
    // Each process migrates the new file and generates a key; exactly one of each must win.
    const runs = await Promise.all(
      ['ann', 'ben', 'cat'].map((name) =>
        runCli(['user', 'create', name], { DATABASE_URL: db.url, ...HS256 }, `${PASSWORD}\n`),
      ),
    )
    for (const run of runs) expect(run, run.stderr).toMatchObject({ code: 0 })
    const raw = new Database(db.path, { readonly: true })
    expect(
      raw.prepare("select count(*) as n from authgate_settings where key = 'jwt_hs256_secret'").get(),
    ).toEqual({ n: 1 })
    expect(raw.prepare('select count(*) as n from authgate_migration').get()).toEqual({
      n: Object.keys(migrations).length,
    })
    raw.close()
    const app = await buildApp(loadConfig({ DATABASE_URL: db.url, ...HS256 }), { hasher: fastHasher })
    for (const name of ['ann', 'ben', 'cat']) expect((await login(app, name)).statusCode, name).toBe(200)
    await app.close()
  })

  it('differs between databases, and gives way to SECRET_KEY', async () => {
    const one = await buildApp(loadConfig({ DATABASE_URL: freshDb().url, ...HS256 }), { hasher: fastHasher })
    const two = await buildApp(loadConfig({ DATABASE_URL: freshDb().url, ...HS256 }), { hasher: fastHasher })
    const secret = 'x'.repeat(48)
    const three = await buildApp(loadConfig({ DATABASE_URL: freshDb().url, SECRET_KEY: secret }), {
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

describe('the database file', () => {
  it('is created with its folder, in WAL mode, and keeps users across restarts', async () => {
    const db = freshDb()
    const first = await buildApp(loadConfig({ DATABASE_URL: db.url }), { hasher: fastHasher })
    expect((await register(first, 'kept')).statusCode).toBe(201)
    await first.close()
    const raw = new Database(db.path, { readonly: true })
    expect(raw.pragma('journal_mode', { simple: true })).toBe('wal')
    expect(raw.prepare('select username, username_canonical from users').all()).toEqual([
      { username: 'kept', username_canonical: 'kept' },
    ])
    raw.close()
    const second = await buildApp(loadConfig({ DATABASE_URL: db.url }), { hasher: fastHasher })
    expect((await register(second, 'KEPT')).statusCode).toBe(409)
    await second.close()
  })
})
