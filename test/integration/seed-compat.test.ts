// AuthGate beside the real seed app (FastAPI, SQLAlchemy, passlib bcrypt, python-jose) on one todosapp.db.
import { type ChildProcess, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import * as argon2 from '@node-rs/argon2'
import Database from 'better-sqlite3'
import type { FastifyInstance } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildApp } from '../../src/app.js'
import { loadConfig } from '../../src/config.js'
import { requirePrerequisite, sqliteOnly, tempDir } from '../helpers/app.js'
import { bearer, form, greet, logIn, signUp } from '../helpers/http.js'
import { freePort, spawnUntilReady } from '../helpers/server-process.js'

const PYTHON = '/usr/bin/python3'
const SEED_MAIN = fileURLToPath(new URL('../peers/seed/main.py', import.meta.url))
const SEED_TOOL = fileURLToPath(new URL('../peers/seed_tool.py', import.meta.url))
const SECRET_KEY = randomBytes(32).toString('hex')
const INCORRECT = 'Incorrect username or password'
const ARGON2ID_OWASP = /^\$argon2id\$v=19\$m=19456,t=2,p=1\$/

// Registered through the seed's own POST /auth/, in this order. "Alice" and "alice" collide after
// canonicalisation; bob's password would fail AuthGate's policy today but must keep logging in.
const SEED_USERS = [
  { username: 'Alice', password: 'Alice in Wonderland 1865' },
  { username: 'alice', password: 'lower-case alice, other password' },
  { username: 'bob', password: 'hunter2' },
  { username: 'Zoë', password: 'pässwörd mit Ümläuten' },
] as const

// The seed app runs on SQLite only (its todosapp.db); the PostgreSQL run has nothing to share with it.
const skipped = sqliteOnly('the seed app and AuthGate share one SQLite file (todosapp.db)')
const available =
  !skipped &&
  requirePrerequisite(
    spawnSync(PYTHON, [SEED_TOOL, 'check'], { stdio: 'ignore', timeout: 30_000 }).status === 0,
    `${PYTHON} with fastapi, jose, passlib, sqlalchemy, uvicorn, multipart (Debian python3-* packages)`,
  )

interface UserRow {
  id: number
  username: string
  password: string
  username_canonical: string | null
}

/** The seed's verification, run by python-jose: exit 0 and the claims as JSON, or exit 1. */
function joseDecode(token: string, secret: string) {
  return spawnSync(PYTHON, [SEED_TOOL, 'decode'], {
    input: token,
    encoding: 'utf8',
    env: { PATH: process.env.PATH, SEED_SECRET_KEY: secret },
    timeout: 30_000,
  })
}

describe.skipIf(!available)('compatibility with the real seed app on a shared todosapp.db', () => {
  let dir: ReturnType<typeof tempDir> | undefined
  let dbPath = ''
  let seed: ChildProcess | undefined
  let seedUrl = ''
  let authgate: FastifyInstance | undefined
  let sqlite: Database.Database | undefined
  /** The users table as the seed left it, before AuthGate opened the file. */
  let seedRows: UserRow[] = []

  const app = (): FastifyInstance => authgate ?? expect.unreachable('AuthGate is not built')
  const db = (): Database.Database => sqlite ?? expect.unreachable('the database is not open')
  const row = (username: string) =>
    db().prepare('select * from users where username = ?').get(username) as UserRow | undefined
  const seedRow = (username: string) => seedRows.find((r) => r.username === username) as UserRow
  const setHash = (username: string, hash: string) =>
    db().prepare('update users set password = ? where username = ?').run(hash, username)

  const buildAuthGate = () =>
    buildApp(loadConfig({ DATABASE_URL: `sqlite:///${dbPath}`, SECRET_KEY: SECRET_KEY }))

  async function tokenFromAuthGate(username: string, password: string): Promise<string> {
    const res = await logIn(app(), username, password)
    expect(res.statusCode, `${username}: ${res.body}`).toBe(200)
    return res.json().access_token
  }

  async function startSeed(): Promise<void> {
    const port = await freePort()
    const started = await spawnUntilReady({
      command: PYTHON,
      args: [SEED_MAIN],
      url: `http://127.0.0.1:${port}`,
      env: {
        SEED_DATABASE_URL: `sqlite:///${dbPath}`,
        SEED_SECRET_KEY: SECRET_KEY,
        SEED_PORT: String(port),
        PYTHONDONTWRITEBYTECODE: '1',
      },
      // Uvicorn logs on stderr, once it listens.
      ready: /Uvicorn running on /,
      readyOn: 'stderr',
    })
    seed = started.child
    seedUrl = started.url
  }

  async function stopSeed(): Promise<void> {
    const child = seed
    seed = undefined
    if (!child || child.exitCode !== null || child.signalCode !== null) return
    const exited = once(child, 'exit')
    child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000)
    await exited
    clearTimeout(timer)
  }

  beforeAll(async () => {
    dir = tempDir('authgate-seed-compat-')
    dbPath = join(dir.path, 'todosapp.db')
    await startSeed()
    for (const u of SEED_USERS) {
      const res = await signUp(seedUrl, u.username, u.password)
      expect(res.status, `seed POST /auth/ ${u.username}: ${await res.clone().text()}`).toBe(201)
    }
    sqlite = new Database(dbPath)
    seedRows = db().prepare('select id, username, password from users order by id').all() as UserRow[]
    authgate = await buildAuthGate()
  })

  afterAll(async () => {
    await authgate?.close()
    sqlite?.close()
    await stopSeed()
    dir?.cleanup()
  })

  it('adopts the seed file in place: same ids, names and passlib hashes, WAL, and the seed still logs in', async () => {
    expect(seedRows.map((r) => r.username)).toEqual(SEED_USERS.map((u) => u.username))
    for (const r of seedRows) expect(r.password, r.username).toMatch(/^\$2b\$12\$[./A-Za-z0-9]{53}$/)

    const adopted = db().prepare('select id, username, password from users order by id').all()
    expect(adopted).toEqual(seedRows)
    expect(db().pragma('journal_mode', { simple: true })).toBe('wal')
    // The first of the colliding names claims the canonical form; the other keeps NULL.
    expect(row('Alice')?.username_canonical).toBe('alice')
    expect(row('alice')?.username_canonical).toBeNull()
    expect(row('Zoë')?.username_canonical).toBe('zoë')

    // The seed app, through SQLAlchemy, reads the migrated WAL file and logs everyone in.
    for (const u of SEED_USERS) {
      const res = await logIn(seedUrl, u.username, u.password)
      expect(res.status, `seed login ${u.username}: ${await res.clone().text()}`).toBe(200)
    }
  })

  it('logs every seed user in with its exact name and password, greeting it with its own id', async () => {
    for (const u of SEED_USERS) {
      const token = await tokenFromAuthGate(u.username, u.password)
      const res = await greet(app(), token)
      expect(res.statusCode).toBe(200)
      expect(res.json()).toEqual({ message: `Hello, ${u.username} with ID: ${seedRow(u.username).id}!` })
    }
    expect(seedRow('Alice').id).not.toBe(seedRow('alice').id)
  })

  it('answers 401 with the seed detail for a wrong password, a swapped password or an unknown user', async () => {
    for (const [username, password] of [
      ['Alice', 'wrong password'],
      ['alice', SEED_USERS[0].password], // Alice's password does not open alice
      ['Alice', SEED_USERS[1].password],
      ['nobody', 'whatever password'],
    ] as const) {
      const res = await logIn(app(), username, password)
      expect(res.statusCode, username).toBe(401)
      expect(res.json(), username).toMatchObject({ detail: INCORRECT })
    }
  })

  it('replaces a bcrypt hash with argon2id on login, and the password keeps working', async () => {
    const bob = SEED_USERS[2]
    setHash(bob.username, seedRow(bob.username).password)

    await tokenFromAuthGate(bob.username, bob.password)
    const upgraded = row(bob.username)?.password ?? ''
    expect(upgraded).toMatch(ARGON2ID_OWASP)
    expect(await argon2.verify(upgraded, bob.password)).toBe(true)

    const token = await tokenFromAuthGate(bob.username, bob.password)
    expect((await greet(app(), token)).json()).toEqual({
      message: `Hello, bob with ID: ${seedRow('bob').id}!`,
    })
    expect(row(bob.username)?.password).toBe(upgraded) // no second rehash
    expect((await logIn(app(), bob.username, 'not hunter2')).statusCode).toBe(401)
  })

  it.each(['$2a$', '$2y$'])('verifies a passlib hash spelled %s, then upgrades it', async (prefix) => {
    const alice = SEED_USERS[0]
    const variant = `${prefix}${seedRow(alice.username).password.slice(4)}`
    setHash(alice.username, variant)
    try {
      expect((await logIn(app(), alice.username, 'wrong password')).statusCode).toBe(401)
      expect(row(alice.username)?.password).toBe(variant) // a failed login writes nothing

      await tokenFromAuthGate(alice.username, alice.password)
      expect(row(alice.username)?.password).toMatch(ARGON2ID_OWASP)
    } finally {
      setHash(alice.username, seedRow(alice.username).password) // later tests get a hash that verifies
    }
  })

  it('lets 5 concurrent logins of a bcrypt user succeed with exactly one compare-and-swap write', async () => {
    const zoe = SEED_USERS[3]
    setHash(zoe.username, seedRow(zoe.username).password)
    // A trigger records every write of a password, so lost updates would show as extra rows.
    db().exec(`
      create table test_password_writes (user_id integer, old text, new text);
      create trigger test_log_password_writes after update of password on users
      begin insert into test_password_writes values (old.id, old.password, new.password); end;
    `)
    try {
      const results = await Promise.all(
        Array.from({ length: 5 }, () => logIn(app(), zoe.username, zoe.password)),
      )
      expect(results.map((r) => r.statusCode)).toEqual([200, 200, 200, 200, 200])

      const stored = row(zoe.username)?.password ?? ''
      expect(stored).toMatch(ARGON2ID_OWASP)
      expect(await argon2.verify(stored, zoe.password)).toBe(true)
      const writes = db().prepare('select * from test_password_writes').all()
      expect(writes).toEqual([
        { user_id: seedRow(zoe.username).id, old: seedRow(zoe.username).password, new: stored },
      ])
      await tokenFromAuthGate(zoe.username, zoe.password)
    } finally {
      db().exec('drop trigger test_log_password_writes; drop table test_password_writes')
    }
  })

  it('serves a user the running seed app registers on the adopted file, and protects its name at once', async () => {
    const erin = { username: 'Erin', password: 'registered at the seed' }
    const created = await signUp(seedUrl, erin.username, erin.password)
    expect(created.status, await created.clone().text()).toBe(201)
    const inserted = row(erin.username)
    expect(inserted?.password).toMatch(/^\$2b\$12\$/)
    expect(inserted?.username_canonical).toBeNull()
    expect((await logIn(seedUrl, erin.username, erin.password)).status).toBe(200)

    // AuthGate, already running, refuses the same name in another case: it claims the canonical
    // name for the seed's row before checking.
    const clash = await signUp(app(), 'erin', 'another passphrase')
    expect(clash.statusCode).toBe(409)
    expect(row(erin.username)?.username_canonical).toBe('erin')
    const byCanonical = await tokenFromAuthGate('ERIN', erin.password)
    expect((await greet(app(), byCanonical)).json()).toEqual({
      message: `Hello, Erin with ID: ${inserted?.id}!`,
    })
  })

  it('logs in a seed user whose password passlib cut to 72 bytes, then compares it exactly', async () => {
    const long = { username: 'longpw', password: `${'long passphrase '.repeat(6)}tail` }
    expect(Buffer.byteLength(long.password)).toBeGreaterThan(72)
    expect((await signUp(seedUrl, long.username, long.password)).status).toBe(201)
    expect((await logIn(seedUrl, long.username, long.password)).status).toBe(200)
    // The seed's hash stands for the first 72 bytes; the first login rehashes the full password.
    await tokenFromAuthGate(long.username, long.password)
    expect(row(long.username)?.password).toMatch(ARGON2ID_OWASP)
    expect((await logIn(app(), long.username, long.password.slice(0, 72))).statusCode).toBe(401)
    await tokenFromAuthGate(long.username, long.password)
  })

  it('issues tokens python-jose decodes, and accepts tokens the seed app issues', async () => {
    const alice = SEED_USERS[1]
    const token = await tokenFromAuthGate(alice.username, alice.password)
    const decoded = joseDecode(token, SECRET_KEY)
    expect(decoded.status, decoded.stderr).toBe(0)
    const claims = JSON.parse(decoded.stdout)
    expect(claims).toMatchObject({ sub: 'alice', id: seedRow('alice').id })
    expect(claims.exp).toBeGreaterThan(Date.now() / 1000)
    expect(joseDecode(token, randomBytes(32).toString('hex')).status).toBe(1) // jose does check the key

    // The other way: a fresh seed user (still bcrypt, so the seed can verify it) logs in at the seed.
    const frank = { username: 'frank', password: 'only ever seen by the seed' }
    expect((await signUp(seedUrl, frank.username, frank.password)).status).toBe(201)
    const res = await logIn(seedUrl, frank.username, frank.password)
    expect(res.status).toBe(200)
    const seedToken = ((await res.json()) as { access_token: string }).access_token
    const greeting = await greet(app(), seedToken)
    expect(greeting.statusCode).toBe(200)
    expect(greeting.json()).toEqual({ message: `Hello, frank with ID: ${row('frank')?.id}!` })
  })

  it('ends a token the seed app issued when it logs out at AuthGate, or is revoked there', async () => {
    const grace = { username: 'grace', password: 'logged in at the seed, out at AuthGate' }
    expect((await signUp(seedUrl, grace.username, grace.password)).status).toBe(201)
    const seedTokenOf = async () =>
      ((await (await logIn(seedUrl, grace.username, grace.password)).json()) as { access_token: string })
        .access_token
    const first = await seedTokenOf()
    expect((await greet(app(), first)).statusCode).toBe(200)
    const bye = await app().inject({
      method: 'POST',
      url: '/auth/logout',
      headers: bearer(first),
    })
    expect(bye.statusCode).toBe(204)
    expect((await greet(app(), first)).statusCode).toBe(401)
    // The seed app itself keeps no revocations: to it, the token is good until exp.
    expect((await greet(seedUrl, first)).status).toBe(200)

    // A token the seed issues after the logout works: its exp is later than any the cutoff covers
    // once the seed's clock is past the second of the logout (exp is whole seconds; nothing to await).
    await new Promise((r) => setTimeout(r, 1_100))
    const second = await seedTokenOf()
    expect((await greet(app(), second)).statusCode).toBe(200)
    const revoked = await app().inject({
      method: 'POST',
      url: '/auth/revoke',
      headers: form,
      payload: new URLSearchParams({ token: second }).toString(),
    })
    expect(revoked.statusCode).toBe(200)
    expect((await greet(app(), second)).statusCode).toBe(401)
  })

  it('never lets the seed app reuse the id of a user AuthGate deleted', async () => {
    const gone = { username: 'newest-then-gone', password: 'deleted through AuthGate' }
    expect((await signUp(seedUrl, gone.username, gone.password)).status).toBe(201)
    const goneId = row(gone.username)?.id as number
    const token = await tokenFromAuthGate(gone.username, gone.password)
    const deleted = await app().inject({
      method: 'DELETE',
      url: '/auth/me',
      headers: bearer(token),
      payload: { password: gone.password },
    })
    expect(deleted.statusCode).toBe(204)
    // SQLAlchemy inserts without an id, as before AuthGate rebuilt the table with AUTOINCREMENT.
    const next = { username: 'next-at-the-seed', password: 'registered after a deletion' }
    expect((await signUp(seedUrl, next.username, next.password)).status).toBe(201)
    expect(row(next.username)?.id).toBeGreaterThan(goneId)
    expect((await logIn(seedUrl, next.username, next.password)).status).toBe(200)
    expect((await greet(app(), token)).statusCode).toBe(401)
  })

  it("has its tokens accepted by the seed app's own GET /", async () => {
    for (const u of [SEED_USERS[0], SEED_USERS[1]]) {
      const token = await tokenFromAuthGate(u.username, u.password)
      const res = await greet(seedUrl, token)
      expect(res.status, u.username).toBe(200)
      expect(await res.json()).toEqual({
        message: `Hello, ${u.username} with ID: ${seedRow(u.username).id}!`,
      })
    }
    const tampered = await greet(seedUrl, `${await tokenFromAuthGate('bob', 'hunter2')}x`)
    expect(tampered.status).toBe(401)
  })
})
