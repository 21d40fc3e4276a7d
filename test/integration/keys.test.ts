// Signing keys through the app, on real databases (SQLite files; PostgreSQL in the second run): the
// default algorithm, the JWKS and discovery documents, rotation (in-process, by the CLI, noticed by
// other processes) and retirement.
import { createSigner } from 'fast-jwt'
import type { FastifyInstance } from 'fastify'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { buildApp } from '../../src/app.js'
import { loadConfig } from '../../src/config.js'
import { generateSigningKey, RETIREMENT_SLACK_MS } from '../../src/domain/keys.js'
import { frozenClock } from '../../src/lib/clock.js'
import { toLowS } from '../../src/lib/jws.js'
import { openKeys } from '../../src/services.js'
import { createDatabase } from '../../src/storage/database.js'
import { createKeysRepository } from '../../src/storage/keys.repository.js'
import { migrateToLatest } from '../../src/storage/migrate.js'
import {
  buildTestApp,
  fastHasher,
  freshDatabase,
  inspect,
  onPostgres,
  PASSWORD,
  type TestApp,
  type TestDatabase,
} from '../helpers/app.js'
import { runCli, spawnCli } from '../helpers/cli.js'
import { decodeJwt, decodeProtectedHeader, greet, logIn, pairOf, tokenFor } from '../helpers/http.js'

const TTL_MS = 30 * 60_000

async function jwks(app: FastifyInstance): Promise<{ kid: string; alg: string }[]> {
  const res = await app.inject({ url: '/.well-known/jwks.json' })
  expect(res.statusCode).toBe(200)
  return res.json().keys
}

/** The published keys of one algorithm: ES256 for the deployment's, RS256 for the chain beside it. */
async function jwksOf(app: FastifyInstance, alg: string): Promise<string[]> {
  return (await jwks(app)).filter((k) => k.alg === alg).map((k) => k.kid)
}

// The RS256 key every deployment keeps beside its own (ID tokens, OpenID Connect Discovery §3).
const RS256_JWK = {
  kty: 'RSA',
  n: expect.any(String),
  e: 'AQAB',
  kid: expect.any(String),
  alg: 'RS256',
  use: 'sig',
}

/** Rotates like `authgate keys rotate` would, through a connection of its own. */
async function rotate(dbUrl: string, env: Record<string, string> = {}, clock = frozenClock()) {
  const db = createDatabase(dbUrl)
  try {
    return await (await openKeys(db, loadConfig({ DATABASE_URL: dbUrl, ...env }), clock)).rotate()
  } finally {
    await db.destroy()
  }
}

function keyRows(dbUrl: string) {
  return inspect(dbUrl).selectFrom('authgate_signing_keys').selectAll().orderBy('created_at').execute()
}

const made: TestDatabase[] = []
afterEach(async () => {
  await Promise.all(made.splice(0).map((db) => db.drop()))
})
async function freshDb(): Promise<TestDatabase> {
  const db = await freshDatabase('keys.db')
  made.push(db)
  return db
}

describe('the JWKS and the discovery documents', () => {
  let t: TestApp
  beforeAll(async () => {
    t = await buildTestApp({ PUBLIC_URL: 'https://auth.example.com/' })
  })
  afterAll(async () => {
    await t.close()
  })

  it('a fresh install signs ES256 with the key the JWKS publishes', async () => {
    const token = await tokenFor(t.app, 'keeper')
    const header = decodeProtectedHeader(token)
    const payload = decodeJwt(token)
    expect(header.alg).toBe('ES256')
    expect(payload.iss).toBe('https://auth.example.com')
    const res = await t.app.inject({ url: '/.well-known/jwks.json' })
    expect(res.headers['cache-control']).toMatch(/^public, max-age=\d+$/)
    const { keys } = res.json()
    expect(keys).toEqual([
      {
        kty: 'EC',
        crv: 'P-256',
        x: expect.any(String),
        y: expect.any(String),
        kid: header.kid,
        alg: 'ES256',
        use: 'sig',
      },
      RS256_JWK,
    ])
    expect(res.body).not.toMatch(/"d"|PRIVATE/)
  })

  it.each(['/.well-known/openid-configuration', '/.well-known/oauth-authorization-server'])(
    '%s gives issuer, endpoints, grants and the algorithm',
    async (url) => {
      const res = await t.app.inject({ url })
      expect(res.statusCode).toBe(200)
      expect(res.headers['cache-control']).toMatch(/^public, max-age=\d+$/)
      expect(res.json()).toEqual({
        issuer: 'https://auth.example.com',
        authorization_endpoint: 'https://auth.example.com/authorize',
        jwks_uri: 'https://auth.example.com/.well-known/jwks.json',
        token_endpoint: 'https://auth.example.com/auth/token',
        userinfo_endpoint: 'https://auth.example.com/userinfo',
        end_session_endpoint: 'https://auth.example.com/logout',
        revocation_endpoint: 'https://auth.example.com/auth/revoke',
        introspection_endpoint: 'https://auth.example.com/auth/introspect',
        grant_types_supported: ['authorization_code', 'refresh_token', 'client_credentials', 'password'],
        response_types_supported: ['code'],
        response_modes_supported: ['query'],
        code_challenge_methods_supported: ['S256'],
        authorization_response_iss_parameter_supported: true,
        scopes_supported: ['openid', 'profile', 'offline_access'],
        claims_supported: [
          'iss',
          'sub',
          'aud',
          'exp',
          'iat',
          'auth_time',
          'nonce',
          'sid',
          'amr',
          'preferred_username',
        ],
        prompt_values_supported: ['none', 'login', 'consent', 'select_account'],
        token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post', 'none'],
        revocation_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post', 'none'],
        introspection_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
        // OpenID Connect Discovery §3: RS256 is required; ES256 is the deployment's own.
        id_token_signing_alg_values_supported: ['RS256', 'ES256'],
        subject_types_supported: ['public'],
      })
    },
  )

  it('are in the OpenAPI document, with their schemas', async () => {
    const spec = (await t.app.inject({ url: '/openapi.json' })).json()
    for (const path of ['/.well-known/jwks.json', '/.well-known/openid-configuration']) {
      const op = spec.paths[path]?.get
      expect(op?.tags, path).toEqual(['keys'])
      expect(op?.description, path).toEqual(expect.any(String))
      expect(op?.responses?.['200']?.content?.['application/json']?.schema, path).toBeDefined()
    }
  })

  it('with SECRET_KEY: HS256 access tokens, only the RS256 key in the JWKS, RS256 ID tokens in the metadata', async () => {
    const hs = await buildTestApp({ SECRET_KEY: 's'.repeat(40) })
    try {
      expect(decodeProtectedHeader(await tokenFor(hs.app, 'hs'))).toEqual({ alg: 'HS256', typ: 'JWT' })
      // The secret is never published; the RS256 key signs ID tokens and client tokens only.
      expect(await jwks(hs.app)).toEqual([RS256_JWK])
      const meta = (await hs.app.inject({ url: '/.well-known/openid-configuration' })).json()
      // ID tokens are never HS256 (a shared secret): RS256, from the key the JWKS publishes.
      expect(meta.id_token_signing_alg_values_supported).toEqual(['RS256'])
      expect(meta.issuer).toBe('http://127.0.0.1:8000')
    } finally {
      await hs.close()
    }
  })

  it.each(['EdDSA', 'RS256'])('JWT_ALGORITHM=%s signs and publishes that algorithm', async (alg) => {
    const app = await buildTestApp({ JWT_ALGORITHM: alg })
    try {
      const token = await tokenFor(app.app, 'algo')
      expect(decodeProtectedHeader(token).alg).toBe(alg)
      expect((await greet(app.app, token)).statusCode).toBe(200)
      expect(await jwks(app.app)).toEqual([
        expect.objectContaining({ alg, kid: decodeProtectedHeader(token).kid }),
        { ...RS256_JWK, kid: expect.not.stringMatching(`^${decodeProtectedHeader(token).kid}$`) },
      ])
      const meta = (await app.app.inject({ url: '/.well-known/openid-configuration' })).json()
      expect(meta.id_token_signing_alg_values_supported).toEqual(alg === 'RS256' ? ['RS256'] : ['RS256', alg])
    } finally {
      await app.close()
    }
  })
})

describe('the default algorithm of an existing install', () => {
  it('stays HS256 where an HS256 secret was generated, so its tokens keep working', async () => {
    const db = await freshDb()
    const before = await buildApp(loadConfig({ DATABASE_URL: db.url, JWT_ALGORITHM: 'HS256' }), {
      hasher: fastHasher,
    })
    const token = await tokenFor(before, 'upgrader')
    await before.close()

    const after = await buildApp(loadConfig({ DATABASE_URL: db.url }), { hasher: fastHasher })
    try {
      expect((await greet(after, token)).statusCode).toBe(200)
      expect(decodeProtectedHeader(await tokenFor(after, 'newcomer')).alg).toBe('HS256')
      expect(await jwks(after)).toEqual([RS256_JWK])
      expect((await keyRows(db.url)).map((r) => [r.chain, r.alg])).toEqual([['rs256', 'RS256']])
    } finally {
      await after.close()
    }
  })

  it('keeps its ES256 key across a restart', async () => {
    const db = await freshDb()
    const first = await buildApp(loadConfig({ DATABASE_URL: db.url }), { hasher: fastHasher })
    const token = await tokenFor(first, 'restarter')
    await first.close()
    const second = await buildApp(loadConfig({ DATABASE_URL: db.url }), { hasher: fastHasher })
    try {
      expect((await greet(second, token)).statusCode).toBe(200)
      expect((await keyRows(db.url)).map((r) => r.chain).sort()).toEqual(['primary', 'rs256'])
    } finally {
      await second.close()
    }
  })
})

describe('rotation', () => {
  it('keeps tokens of the old key valid, then drops the old key once its tokens have expired', async () => {
    const clock = frozenClock()
    const t = await buildTestApp({}, { clock, keyReloadMs: 50 })
    try {
      const before = await tokenFor(t.app, 'rotor')
      const oldKid = decodeProtectedHeader(before).kid
      const oldRs = await jwksOf(t.app, 'RS256')
      const { key: current, previous, rs256 } = await rotate(t.dbUrl, {}, clock)
      expect(previous?.kid).toBe(oldKid)
      // The app notices within its reload interval and publishes the next keys, but signs with
      // them only once the activation delay has passed (every process and JWKS cache has them by then).
      await expect.poll(async () => (await jwks(t.app)).length, { timeout: 5_000, interval: 20 }).toBe(4)
      expect((await jwks(t.app)).map((k) => k.kid)).toEqual([oldKid, ...oldRs, current.kid, rs256?.key.kid])
      expect(decodeProtectedHeader(await tokenFor(t.app, 'rotor')).kid).toBe(oldKid)
      clock.advance(t.config.keyActivationDelayMs)
      expect((await jwks(t.app)).map((k) => k.kid)).toEqual([current.kid, rs256?.key.kid, oldKid, ...oldRs])
      const after = (await logIn(t.app, 'rotor')).json().access_token
      expect(decodeProtectedHeader(after).kid).toBe(current.kid)
      expect((await greet(t.app, before)).statusCode).toBe(200)
      expect((await greet(t.app, after)).statusCode).toBe(200)

      // A token of the old key that outlives it, as a process that missed the rotation could sign.
      const oldKey = (await keyRows(t.dbUrl)).find((k) => k.kid === oldKid)
      const now = Math.floor(clock.now() / 1000)
      // Low-S, as AuthGate signs (a high s is refused).
      const longLived = toLowS(
        createSigner({ key: oldKey?.private_key ?? '', algorithm: 'ES256', kid: oldKid })({
          ...decodeJwt<Record<string, unknown>>(before),
          exp: now + 86_400,
        }),
      )
      expect((await greet(t.app, longLived)).statusCode).toBe(200)

      clock.advance(TTL_MS + RETIREMENT_SLACK_MS)
      expect((await jwks(t.app)).map((k) => k.kid)).toEqual([current.kid, rs256?.key.kid])
      expect((await greet(t.app, longLived)).statusCode).toBe(401)
    } finally {
      await t.close()
    }
  })

  it('by the CLI is picked up by running apps: by polling, by signal, and at once on an unknown kid', async () => {
    const db = await freshDb()
    const config = loadConfig({ DATABASE_URL: db.url })
    // The apps' clock stands still: the new key starts signing when the test moves it, not a real second later.
    const clock = frozenClock()
    const polling = await buildApp(config, { hasher: fastHasher, clock, keyReloadMs: 100 })
    // This one would not poll for an hour: only a token with a kid it does not know makes it look.
    const idle = await buildApp(config, { hasher: fastHasher, clock, keyReloadMs: 3_600_000 })
    try {
      const before = await tokenFor(polling, 'wanderer')
      const rotated = await runCli(['keys', 'rotate'], {
        DATABASE_URL: db.url,
        KEY_ACTIVATION_DELAY_SECONDS: '60',
      })
      expect(rotated, rotated.stderr).toMatchObject({ code: 0 })
      const announced = /New signing key (\S+) \(ES256\) is published now and signs from (\S+Z)/
      expect(rotated.stdout).toMatch(announced)
      const [, newKid, signsFrom] = rotated.stdout.match(announced) as RegExpMatchArray
      const signsAt = Date.parse(signsFrom as string)
      expect(signsAt - clock.now()).toBeGreaterThan(59_000)

      // Polling (every 100 ms) publishes it; it does not sign before its time.
      const kids = async (app: FastifyInstance) => (await jwks(app)).map((k) => k.kid)
      await expect.poll(() => kids(polling), { timeout: 5_000, interval: 20 }).toContain(newKid)
      const signIn = async () => (await pairOf(await logIn(polling, 'wanderer'))).access_token
      const kidOf = (token: string) => decodeProtectedHeader(token).kid
      expect(kidOf(await signIn())).toBe(kidOf(before))
      clock.set(signsAt - 1)
      expect(kidOf(await signIn())).toBe(kidOf(before))
      clock.set(signsAt)
      const after = await signIn()
      expect(kidOf(after)).toBe(newKid)

      if (onPostgres) {
        // PostgreSQL: the CLI's NOTIFY told it already (or is about to); nobody waits for an hour.
        await expect.poll(() => kids(idle), { timeout: 2_000, interval: 20 }).toContain(newKid)
      } else {
        // SQLite: no signal, so it does not know the key until a token names it.
        expect(await kids(idle)).not.toContain(newKid)
      }
      await expect
        .poll(async () => (await greet(idle, after)).statusCode, { timeout: 2_000, interval: 20 })
        .toBe(200)
      expect(await kids(idle)).toContain(newKid)
      expect((await greet(idle, before)).statusCode).toBe(200)
    } finally {
      await Promise.all([polling.close(), idle.close()])
    }
  })

  it('leaves one current key when three processes start together on a fresh database', async () => {
    const db = await freshDb()
    const runs = await Promise.all(
      ['ann', 'ben', 'cat'].map((name) =>
        spawnCli(['user', 'create', name], { DATABASE_URL: db.url }, `${PASSWORD}\n`),
      ),
    )
    for (const run of runs) expect(run, run.stderr).toMatchObject({ code: 0 })
    const rows = await keyRows(db.url)
    // One key per chain, whoever made it.
    expect(rows.map((r) => [r.chain, r.alg, r.retired_at]).sort()).toEqual([
      ['primary', 'ES256', null],
      ['rs256', 'RS256', null],
    ])
  })
})

describe('making a key current', () => {
  it('from several callers at once keeps the first key, and none of them fails', async () => {
    const { url } = await freshDb()
    // PostgreSQL: separate pools, as separate processes would have, racing in the same instant.
    // SQLite: one connection (better-sqlite3 is synchronous: a second connection in this process
    // waiting on busy_timeout would block the first one's commit); across processes BEGIN
    // IMMEDIATE serialises them (the three-process start above).
    const shared = onPostgres ? undefined : createDatabase(url)
    const dbs = Array.from({ length: 4 }, () => shared ?? createDatabase(url))
    try {
      await migrateToLatest(dbs[0] as (typeof dbs)[0])
      for (let round = 0; round < 3; round++) {
        const candidates = await Promise.all(dbs.map(() => generateSigningKey('ES256', Date.now())))
        const results = await Promise.all(
          dbs.map((db, i) =>
            createKeysRepository(db).schedule(candidates[i] as (typeof candidates)[0], {
              activatesAt: Date.now(),
              keepIfAlg: 'ES256',
            }),
          ),
        )
        // Round 0: one of them inserts, the others find it and keep it; later rounds all keep it.
        expect(new Set(results.map((r) => r.current.kid)).size).toBe(1)
        expect(results.every((r) => r.retired === undefined)).toBe(true)
        expect(await keyRows(url)).toHaveLength(1)
      }
      // Rotations (no keepIfAlg) from every connection at once: each retires the one before it.
      const rotations = await Promise.all(
        dbs.map(async (db) =>
          createKeysRepository(db).schedule(await generateSigningKey('ES256', Date.now()), {
            activatesAt: Date.now(),
          }),
        ),
      )
      const rows = await keyRows(url)
      expect(rows).toHaveLength(1 + dbs.length)
      expect(rows.filter((r) => r.retired_at === null)).toHaveLength(1)
      expect(new Set(rotations.map((r) => r.retired)).size).toBe(dbs.length)
    } finally {
      await Promise.all([...new Set(dbs)].map((db) => db.destroy()))
    }
  })
})

describe('authgate keys', () => {
  it('rotate, rotate --now and list: kid, alg, state, times; never private material', async () => {
    const db = await freshDb()
    const env = { DATABASE_URL: db.url }
    // On a fresh database the first key signs at once: there is nothing to wait for.
    const first = await runCli(['keys', 'rotate'], env)
    expect(first, first.stderr).toMatchObject({ code: 0 })
    const second = await runCli(['keys', 'rotate'], env)
    expect(second.stdout).toMatch(
      /^New signing key \S+ \(ES256\) is published now and signs from \S+Z \(in 66 s: KEY_ACTIVATION_DELAY_SECONDS\)\.\n\S+ \(ES256\) signs until then; it verifies until \S+Z\.\nNew signing key \S+ \(RS256\) for ID tokens is published now and signs from \S+Z \(in 66 s: KEY_ACTIVATION_DELAY_SECONDS\)\.\n\S+ \(RS256\) signs until then; it verifies until \S+Z\.\n$/,
    )

    const list = await runCli(['keys', 'list'], env)
    expect(list.code).toBe(0)
    expect(list.stderr).toMatch(/publishes the next key 66 s before it signs/)
    const lines = list.stdout.trim().split('\n')
    expect(lines[0]).toBe('kid\talg\tstate\tcreated\tactivates\tretires\tverifies_until\tchain')
    const primary = lines.filter((l) => l.endsWith('\tprimary'))
    expect(primary).toHaveLength(2)
    expect(primary[0]).toMatch(/^\S+\tES256\tnext\t\S+Z\t\S+Z\t-\t-\tprimary$/)
    expect(primary[1]).toMatch(/^\S+\tES256\tcurrent\t\S+Z\t\S+Z\t\S+Z\t\S+Z\tprimary$/)
    const rs256 = lines.filter((l) => l.endsWith('\trs256'))
    expect(rs256).toHaveLength(2)
    expect(rs256[0]).toMatch(/^\S+\tRS256\tnext\t\S+Z\t\S+Z\t-\t-\trs256$/)
    expect(rs256[1]).toMatch(/^\S+\tRS256\tcurrent\t\S+Z\t\S+Z\t\S+Z\t\S+Z\trs256$/)
    expect(lines).toHaveLength(5)

    const json = await runCli(['keys', 'list', '--json'], env)
    const all = json.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
    const keys = all.filter((k) => k.chain === 'primary')
    expect(keys.map((k) => k.state)).toEqual(['next', 'current'])
    expect(all.filter((k) => k.chain === 'rs256').map((k) => [k.alg, k.state])).toEqual([
      ['RS256', 'next'],
      ['RS256', 'current'],
    ])
    expect(Object.keys(keys[0])).toEqual([
      'kid',
      'alg',
      'state',
      'created_at',
      'activates_at',
      'retires_at',
      'verifies_until',
      'chain',
    ])
    // The current key retires when the next one activates.
    expect(keys[1].retires_at).toBe(keys[0].activates_at)
    expect(keys.map((k) => k.kid)).toEqual(
      (await keyRows(db.url))
        .filter((r) => r.chain === 'primary')
        .map((r) => r.kid)
        .reverse(),
    )

    // --now: the new key signs at once, and the older keys stop verifying at once.
    const now = await runCli(['keys', 'rotate', '--now'], env)
    expect(now, now.stderr).toMatchObject({ code: 0 })
    expect(now.stdout).toMatch(/^New signing key \S+ \(ES256\) signs now\.\n/)
    expect(now.stdout).toMatch(/Revoked \S+ \(ES256\): its tokens are refused from now on\./)
    expect(now.stdout).toMatch(/\nNew signing key \S+ \(RS256\) for ID tokens signs now\.\n/)
    expect(now.stdout).toMatch(/Revoked \S+ \(RS256\): its tokens are refused from now on\./)
    expect(now.stdout).toMatch(/What this costs: every access token issued before now is refused/)
    const after = (await runCli(['keys', 'list', '--json'], env)).stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
    for (const chain of ['primary', 'rs256']) {
      expect(after.filter((k) => k.chain === chain).map((k) => k.state)).toEqual([
        'current',
        'revoked',
        'revoked',
      ])
    }
    expect(list.stdout + json.stdout).not.toMatch(/PRIVATE|"d"/)
  }, 90_000)

  it('with HS256 rotates only the RS256 key, and says why the secret is not rotated', async () => {
    const db = await freshDb()
    const run = await runCli(['keys', 'rotate'], { DATABASE_URL: db.url, SECRET_KEY: 's'.repeat(40) })
    expect(run, run.stderr).toMatchObject({ code: 0 })
    expect(run.stderr).toMatch(/HS256.*SECRET_KEY.*not rotated/)
    expect(run.stdout).toMatch(/^New signing key \S+ \(RS256\) for ID tokens is published now/)
    expect((await keyRows(db.url)).map((r) => [r.chain, r.alg])).toEqual([['rs256', 'RS256']])
  })

  it('is in the help', async () => {
    const run = await runCli(['keys', '--help'], {})
    expect(run.code).toBe(0)
    expect(run.stdout).toMatch(/rotate/)
    expect(run.stdout).toMatch(/list/)
  })
})
