// Issue 10 item 1: the signing algorithm and the issuer are recorded in the database on first
// start, so every process and the CLI agree; an explicit JWT_ISSUER / PUBLIC_URL changes the
// issuer (logged, the previous one accepted until its tokens have expired); an environment that
// contradicts the record stops start-up and the CLI, saying what to do. Real databases
// (SQLite files; PostgreSQL in the second run), real apps, the real CLI.
import type { FastifyInstance } from 'fastify'
import { afterEach, describe, expect, it } from 'vitest'
import { buildApp } from '../../src/app.js'
import { ConfigError, loadConfig } from '../../src/config.js'
import { RETIREMENT_SLACK_MS } from '../../src/domain/keys.js'
import { frozenClock } from '../../src/lib/clock.js'
import { fastHasher, freshDatabase, inspect, type TestDatabase } from '../helpers/app.js'
import { runCli } from '../helpers/cli.js'
import { decodeJwt, decodeProtectedHeader, greet, tokenFor } from '../helpers/http.js'

const SECRET = 's'.repeat(40)
const made: TestDatabase[] = []
const apps: FastifyInstance[] = []
afterEach(async () => {
  await Promise.all(apps.splice(0).map((a) => a.close()))
  await Promise.all(made.splice(0).map((db) => db.drop()))
})
async function freshDb(): Promise<TestDatabase> {
  const db = await freshDatabase('deployment.db')
  made.push(db)
  return db
}
async function app(env: Record<string, string>, deps: Parameters<typeof buildApp>[1] = {}) {
  const built = await buildApp(loadConfig(env), { hasher: fastHasher, ...deps })
  apps.push(built)
  return built
}
const keyRows = (url: string) => inspect(url).selectFrom('authgate_signing_keys').selectAll().execute()

describe('the CLI follows the database, not its own environment', () => {
  it('keys rotate on a database whose HS256 secret is SECRET_KEY, without SECRET_KEY: refused, nothing made', async () => {
    const db = await freshDb()
    await (await app({ DATABASE_URL: db.url, SECRET_KEY: SECRET })).close()
    // The server made the RS256 key of ID tokens; the refused rotation adds nothing to it.
    const before = await keyRows(db.url)
    expect(before.map((k) => k.chain)).toEqual(['rs256'])
    const run = await runCli(['keys', 'rotate'], { DATABASE_URL: db.url })
    expect(run.code).toBe(1)
    expect(run.stderr).toMatch(
      /^Configuration error: SECRET_KEY is not set, but this database signs with HS256/,
    )
    expect(run.stderr).toMatch(/Set the same SECRET_KEY/)
    expect(await keyRows(db.url)).toEqual(before)
  })

  it('keys rotate on a database with a generated HS256 secret: the RS256 key only, and why not the secret', async () => {
    const db = await freshDb()
    await (await app({ DATABASE_URL: db.url, JWT_ALGORITHM: 'HS256' })).close()
    const run = await runCli(['keys', 'rotate'], { DATABASE_URL: db.url })
    expect(run, run.stderr).toMatchObject({ code: 0 })
    // The database's HS256, not this shell's default (ES256 on a fresh install): no ES256 key.
    expect(run.stderr).toMatch(/Access tokens are signed with HS256/)
    expect((await keyRows(db.url)).map((k) => [k.chain, k.alg])).toEqual([
      ['rs256', 'RS256'],
      ['rs256', 'RS256'],
    ])
  })

  it('keys rotate with JWT_ALGORITHM=EdDSA on an ES256 database: refused, no EdDSA key', async () => {
    const db = await freshDb()
    await (await app({ DATABASE_URL: db.url })).close()
    const run = await runCli(['keys', 'rotate'], { DATABASE_URL: db.url, JWT_ALGORITHM: 'EdDSA' })
    expect(run.code).toBe(1)
    expect(run.stderr).toMatch(/JWT_ALGORITHM=EdDSA here, but this database signs with ES256/)
    expect((await keyRows(db.url)).map((k) => k.alg).sort()).toEqual(['ES256', 'RS256'])
  })
})

describe('start-up refuses an environment that contradicts the database', () => {
  it('SECRET_KEY on a database that signs with ES256', async () => {
    const db = await freshDb()
    await (await app({ DATABASE_URL: db.url })).close()
    const started = app({ DATABASE_URL: db.url, SECRET_KEY: SECRET })
    await expect(started).rejects.toThrow(ConfigError)
    await expect(started).rejects.toThrow(
      /SECRET_KEY is set, but this database signs with ES256 key pairs.*Unset SECRET_KEY/,
    )
    const run = await runCli(['user', 'list'], { DATABASE_URL: db.url, SECRET_KEY: SECRET })
    expect(run.code).toBe(1)
    expect(run.stderr).toMatch(/^Configuration error: SECRET_KEY is set/)
  })

  it('no SECRET_KEY on a database whose HS256 secret came from it', async () => {
    const db = await freshDb()
    const first = await app({ DATABASE_URL: db.url, SECRET_KEY: SECRET })
    const token = await tokenFor(first, 'keeper')
    await first.close()
    await expect(app({ DATABASE_URL: db.url })).rejects.toThrow(/SECRET_KEY is not set/)
    // Control: with it, the same tokens keep working.
    const again = await app({ DATABASE_URL: db.url, SECRET_KEY: SECRET })
    expect((await greet(again, token)).statusCode).toBe(200)
  })

  it('control: an explicit JWT_ALGORITHM on a server is a change, logged, not a refusal', async () => {
    const db = await freshDb()
    await (await app({ DATABASE_URL: db.url })).close()
    const notes: string[] = []
    const ed = await app(
      { DATABASE_URL: db.url, JWT_ALGORITHM: 'EdDSA' },
      { onSettingsNote: (m) => notes.push(m) },
    )
    expect(notes).toEqual([
      expect.stringMatching(/JWT_ALGORITHM changes the signing algorithm from ES256 to EdDSA/),
    ])
    // Recorded: a process with no JWT_ALGORITHM now signs EdDSA too.
    const follower = await app({ DATABASE_URL: db.url })
    expect(decodeProtectedHeader(await tokenFor(follower, 'f')).alg).toBe('EdDSA')
    expect(ed).toBeDefined()
  })
})

describe('the issuer', () => {
  it('is recorded on first start; a process on another port with no PUBLIC_URL signs and accepts it', async () => {
    const db = await freshDb()
    const a = await app({ DATABASE_URL: db.url, PORT: '8001' })
    const b = await app({ DATABASE_URL: db.url, PORT: '8002' })
    const fromA = await tokenFor(a, 'ann')
    const fromB = await tokenFor(b, 'ben')
    expect(decodeJwt(fromB).iss).toBe('http://127.0.0.1:8001')
    expect((await greet(b, fromA)).statusCode).toBe(200)
    expect((await greet(a, fromB)).statusCode).toBe(200)
    expect((await b.inject({ url: '/.well-known/openid-configuration' })).json().issuer).toBe(
      'http://127.0.0.1:8001',
    )
  })

  it('JWT_ISSUER changes it: logged, followed by running processes, the old one accepted until its tokens expire', async () => {
    const db = await freshDb()
    const clock = frozenClock()
    const old = await app({ DATABASE_URL: db.url }, { clock, keyReloadMs: 50 })
    const before = await tokenFor(old, 'mover')
    expect(decodeJwt(before).iss).toBe('http://127.0.0.1:8000')

    const notes: string[] = []
    const renamed = await app(
      { DATABASE_URL: db.url, PUBLIC_URL: 'https://auth.example.com' },
      { clock, keyReloadMs: 50, onSettingsNote: (m) => notes.push(m) },
    )
    const until = clock.now() + 30 * 60_000 + RETIREMENT_SLACK_MS
    expect(notes).toEqual([
      `the issuer changes from http://127.0.0.1:8000 to https://auth.example.com (JWT_ISSUER or PUBLIC_URL); ` +
        `tokens of http://127.0.0.1:8000 keep verifying until ${new Date(until).toISOString()}`,
    ])
    const after = await tokenFor(renamed, 'newcomer')
    expect(decodeJwt(after).iss).toBe('https://auth.example.com')
    expect((await greet(renamed, before)).statusCode).toBe(200)
    // The running process without PUBLIC_URL follows the record: it accepts and signs the new issuer.
    await expect
      .poll(async () => (await greet(old, after)).statusCode, { timeout: 3_000, interval: 20 })
      .toBe(200)
    expect(decodeJwt(await tokenFor(old, 'follower')).iss).toBe('https://auth.example.com')
    expect((await old.inject({ url: '/.well-known/openid-configuration' })).json().issuer).toBe(
      'https://auth.example.com',
    )
    // The previous issuer, with its until-time, in the record; then no longer accepted.
    const row = await inspect(db.url)
      .selectFrom('authgate_settings')
      .select('value')
      .where('key', '=', 'jwt_issuer')
      .executeTakeFirstOrThrow()
    expect(JSON.parse(row.value)).toEqual({
      current: 'https://auth.example.com',
      previous: [{ issuer: 'http://127.0.0.1:8000', until }],
    })
    // A restart with the same PUBLIC_URL changes nothing and logs nothing.
    notes.length = 0
    await app(
      { DATABASE_URL: db.url, PUBLIC_URL: 'https://auth.example.com' },
      { onSettingsNote: (m) => notes.push(m) },
    )
    expect(notes).toEqual([])
  })
})
