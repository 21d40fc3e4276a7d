// The seed app's own tokens ({sub, id, exp}, HS256 under SECRET_KEY: no sid, no iat, no jti) are
// accepted during a migration, and logout and RFC 7009 revocation end them (issue 9, item 6).
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildApp } from '../../src/app.js'
import { frozenClock } from '../../src/lib/clock.js'
import { buildTestApp, fastHasher, inspect, PASSWORD, type TestApp } from '../helpers/app.js'
import { bearer, form, greet, signUp, tokenFor } from '../helpers/http.js'
import { craft, hmac } from '../helpers/jwt.js'
import { type ServerProcess, startServerProcess } from '../helpers/server-process.js'

const SECRET = 'the-seed-and-authgate-share-this-secret-key'
const MINUTE = 60_000
// The seed's POST /auth/token: create_access_token(..., timedelta(minutes=30)).
const SEED_LIFETIME_MS = 30 * MINUTE

interface Account {
  username: string
  id: number
}

/** A token as the seed's create_access_token makes it (python-jose: header alg and typ, then sub, id, exp). */
function seedToken(
  account: Account,
  nowMs: number,
  { issuedAgoMs = 0, lifetimeMs = SEED_LIFETIME_MS, extra = {} } = {},
): string {
  const exp = Math.floor((nowMs - issuedAgoMs + lifetimeMs) / 1000)
  return craft(
    { alg: 'HS256', typ: 'JWT' },
    { sub: account.username, id: account.id, exp, ...extra },
    hmac('sha256', SECRET),
  )
}

/** Signs up through AuthGate (which answers as the seed does, without the id) and reads the id. */
async function seedAccount(t: TestApp, username: string): Promise<Account> {
  expect((await signUp(t.app, username)).statusCode).toBe(201)
  const row = await inspect(t.dbUrl)
    .selectFrom('users')
    .select('id')
    .where('username', '=', username)
    .executeTakeFirstOrThrow()
  return { username, id: Number(row.id) }
}

describe('seed tokens on one server', () => {
  const clock = frozenClock()
  let t: TestApp
  beforeAll(async () => {
    t = await buildTestApp({ SECRET_KEY: SECRET }, { clock })
  })
  afterAll(async () => {
    await t.close()
  })

  const account = (username: string) => seedAccount(t, username)
  const logout = async (token: string) =>
    (await t.app.inject({ method: 'POST', url: '/auth/logout', headers: bearer(token) })).statusCode
  const revoke = async (token: string) =>
    (
      await t.app.inject({
        method: 'POST',
        url: '/auth/revoke',
        headers: form,
        payload: new URLSearchParams({ token }).toString(),
      })
    ).statusCode
  const revocationRows = async () =>
    (await inspect(t.dbUrl).selectFrom('authgate_revocations').selectAll().execute()).length

  it('accepts a seed token (the control case)', async () => {
    const carol = await account('carol')
    const res = await t.app.inject({ url: '/', headers: bearer(seedToken(carol, clock.now())) })
    expect(res.statusCode).toBe(200)
    expect(res.json()).toEqual({ message: `Hello, carol with ID: ${carol.id}!` })
  })

  it("ends a seed token at logout, with every sid-less token of its user issued before; others' stay", async () => {
    const dave = await account('dave')
    const erin = await account('erin')
    const presented = seedToken(dave, clock.now())
    const older = seedToken(dave, clock.now(), { issuedAgoMs: 10 * MINUTE })
    const someoneElse = seedToken(erin, clock.now())
    const ownSession = await tokenFor(t.app, 'dave')
    for (const token of [presented, older, someoneElse])
      expect((await greet(t.app, token)).statusCode).toBe(200)

    expect(await logout(presented)).toBe(204)
    expect((await greet(t.app, presented)).statusCode).toBe(401)
    expect((await greet(t.app, older)).statusCode).toBe(401)
    expect(await logout(presented)).toBe(401)
    expect((await greet(t.app, someoneElse)).statusCode).toBe(200)
    // A session's token (it has a sid) is not a seed token: the seed token's logout leaves it be.
    expect((await greet(t.app, ownSession)).statusCode).toBe(200)

    // A seed token issued after the logout works.
    clock.advance(2_000)
    expect((await greet(t.app, seedToken(dave, clock.now()))).statusCode).toBe(200)
    // The presented token stays void to its last minute.
    clock.advance(SEED_LIFETIME_MS - 3 * MINUTE)
    expect((await greet(t.app, presented)).statusCode).toBe(401)
  })

  it('keeps a longer-lived seed token void for its whole life', async () => {
    const frank = await account('frank')
    const longLived = seedToken(frank, clock.now(), { lifetimeMs: 120 * MINUTE })
    expect((await greet(t.app, longLived)).statusCode).toBe(200)
    expect(await logout(longLived)).toBe(204)
    clock.advance(90 * MINUTE)
    expect((await greet(t.app, longLived)).statusCode).toBe(401)
  })

  it('ends a seed token by RFC 7009 revocation, once (a repeat writes nothing)', async () => {
    const gina = await account('gina')
    const token = seedToken(gina, clock.now())
    const older = seedToken(gina, clock.now(), { issuedAgoMs: 5 * MINUTE })
    expect((await greet(t.app, token)).statusCode).toBe(200)
    expect(await revoke(token)).toBe(200)
    expect((await greet(t.app, token)).statusCode).toBe(401)
    expect((await greet(t.app, older)).statusCode).toBe(401)
    const rows = await revocationRows()
    expect(await revoke(token)).toBe(200)
    expect(await revoke(older)).toBe(200)
    expect(await revocationRows()).toBe(rows)
  })

  it('ends a sid-less token that has a jti by its jti alone', async () => {
    const hugo = await account('hugo')
    const first = seedToken(hugo, clock.now(), { extra: { jti: 'first' } })
    const second = seedToken(hugo, clock.now(), { extra: { jti: 'second' } })
    const plain = seedToken(hugo, clock.now(), { issuedAgoMs: MINUTE })
    expect(await logout(first)).toBe(204)
    expect((await greet(t.app, first)).statusCode).toBe(401)
    expect((await greet(t.app, second)).statusCode).toBe(200)
    expect((await greet(t.app, plain)).statusCode).toBe(200)
    expect(await revoke(second)).toBe(200)
    expect((await greet(t.app, second)).statusCode).toBe(401)
    expect((await greet(t.app, plain)).statusCode).toBe(200)
  })

  it('accepts a jti of another user untouched (a jti names one token, of one user)', async () => {
    const ida = await account('ida')
    const jay = await account('jay')
    expect(await logout(seedToken(ida, clock.now(), { extra: { jti: 'shared-name' } }))).toBe(204)
    expect(
      (await greet(t.app, seedToken(jay, clock.now(), { extra: { jti: 'shared-name' } }))).statusCode,
    ).toBe(200)
  })
})

describe('a password change with short AuthGate tokens', () => {
  const clock = frozenClock()
  let t: TestApp
  beforeAll(async () => {
    t = await buildTestApp({ SECRET_KEY: SECRET, ACCESS_TOKEN_EXPIRE_MINUTES: '5' }, { clock })
  })
  afterAll(async () => {
    await t.close()
  })

  it("voids the user's seed tokens for the seed's 30 minutes, not only for AuthGate's 5", async () => {
    const kim = await seedAccount(t, 'kim')
    const seed = seedToken(kim, clock.now(), { issuedAgoMs: MINUTE })
    const session = await tokenFor(t.app, 'kim')
    const changed = await t.app.inject({
      method: 'POST',
      url: '/auth/password',
      headers: bearer(session),
      payload: { current_password: PASSWORD, new_password: 'another long passphrase entirely' },
    })
    expect(changed.statusCode).toBe(204)
    expect((await greet(t.app, seed)).statusCode).toBe(401)
    // 10 minutes on, a process that starts now reads the feed from scratch: the cutoff is there.
    clock.advance(10 * MINUTE)
    const fresh = await buildApp(t.config, { hasher: fastHasher, clock })
    try {
      expect((await greet(fresh, seed)).statusCode).toBe(401)
      expect(
        (await fresh.inject({ url: '/', headers: bearer(seedToken(kim, clock.now())) })).statusCode,
      ).toBe(200)
    } finally {
      await fresh.close()
    }
  })
})

describe('seed tokens across two server processes', () => {
  let t: TestApp
  let other: ServerProcess
  beforeAll(async () => {
    t = await buildTestApp({ SECRET_KEY: SECRET })
    other = await startServerProcess({ DATABASE_URL: t.dbUrl, SECRET_KEY: SECRET, RATE_LIMIT: 'off' })
  })
  afterAll(async () => {
    await other?.stop()
    await t?.close()
  })

  it('a logout on one process ends the seed token on the other, and a revocation the other way', async () => {
    const lena = await seedAccount(t, 'lena')
    const loggedOut = seedToken(lena, Date.now(), { issuedAgoMs: MINUTE })
    expect((await greet(t.app, loggedOut)).statusCode).toBe(200)
    expect((await greet(other, loggedOut)).status).toBe(200)
    const bye = await fetch(`${other.url}/auth/logout`, { method: 'POST', headers: bearer(loggedOut) })
    expect(bye.status).toBe(204)
    await expect
      .poll(async () => (await greet(t.app, loggedOut)).statusCode, { timeout: 5_000, interval: 100 })
      .toBe(401)

    const mona = await seedAccount(t, 'mona')
    const revoked = seedToken(mona, Date.now(), { issuedAgoMs: MINUTE })
    expect((await greet(other, revoked)).status).toBe(200)
    const answer = await t.app.inject({
      method: 'POST',
      url: '/auth/revoke',
      headers: form,
      payload: new URLSearchParams({ token: revoked }).toString(),
    })
    expect(answer.statusCode).toBe(200)
    await expect
      .poll(async () => (await greet(other, revoked)).status, { timeout: 5_000, interval: 100 })
      .toBe(401)
  })
})
