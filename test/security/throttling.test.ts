// Throttling: brute force is stopped early, a 429 reveals nothing about existence, and an
// attack on an account does not lock out its owner's known device.
import type { FastifyInstance } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildApp } from '../../src/app.js'
import { loadConfig } from '../../src/config.js'
import { buildTestApp, fastHasher, inspect, PASSWORD, TEST_REDIS_ENV, type TestApp } from '../helpers/app.js'
import { bearer, logIn, signUp } from '../helpers/http.js'
import { throttleCounter } from '../helpers/redis-server.js'

const attempt = (app: FastifyInstance, username: string, password: string, ip: string, cookie?: string) =>
  logIn(app, username, password, { remoteAddress: ip, headers: cookie ? { cookie } : {} })

function deviceCookie(res: { headers: Record<string, unknown> }): string {
  const set = String(res.headers['set-cookie'] ?? '')
  expect(set).toMatch(/^authgate_device=[\w-]+\.[\w-]+; Max-Age=\d+; Path=\/auth; HttpOnly; SameSite=Strict/)
  return set.split(';')[0] as string
}

async function sessionsOf(dbUrl: string, username: string): Promise<number> {
  const row = await inspect(dbUrl)
    .selectFrom('authgate_sessions as s')
    .innerJoin('users as u', 'u.id', 's.user_id')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('u.username', '=', username)
    .executeTakeFirstOrThrow()
  return row.n
}

describe('login throttling', () => {
  let t: TestApp
  beforeAll(async () => {
    t = await buildTestApp({ RATE_LIMIT: 'on' })
  })
  afterAll(async () => {
    await t.close()
  })

  it('stops a 1000-attempt brute force after 10 failures, while the owner still logs in', async () => {
    await signUp(t.app, 'owner')
    // The owner logged in from this device before the attack: it holds a device cookie.
    const cookie = deviceCookie(await attempt(t.app, 'owner', PASSWORD, '198.51.100.1'))
    const before = await sessionsOf(t.dbUrl, 'owner')

    const codes: number[] = []
    for (let i = 0; i < 1000; i++) {
      // Spread over 100 addresses, so no single IP reaches its own limit.
      const res = await attempt(t.app, 'owner', `guess-${i}`, `203.0.113.${i % 100}`)
      expect(res.json()).not.toHaveProperty('access_token')
      codes.push(res.statusCode)
    }
    expect(codes.slice(0, 10)).toEqual(Array(10).fill(401))
    expect(codes.slice(10)).toEqual(Array(990).fill(429))
    // Even the right password from an unknown client waits out the window.
    expect((await attempt(t.app, 'owner', PASSWORD, '203.0.113.7')).statusCode).toBe(429)
    expect(await sessionsOf(t.dbUrl, 'owner')).toBe(before)

    // The owner's device has its own allowance.
    const res = await attempt(t.app, 'owner', PASSWORD, '198.51.100.1', cookie)
    expect(res.statusCode).toBe(200)
    expect(res.json().access_token).toEqual(expect.any(String))
  })

  it('answers 429 with Retry-After and the {detail} shape', async () => {
    await signUp(t.app, 'patient')
    let res = await attempt(t.app, 'patient', 'wrong', '192.0.2.10')
    for (let i = 0; i < 10; i++) res = await attempt(t.app, 'patient', 'wrong', '192.0.2.10')
    expect(res.statusCode).toBe(429)
    expect(res.json()).toEqual({ detail: 'Too many attempts; try again later', code: 'too_many_requests' })
    const retryAfter = Number(res.headers['retry-after'])
    expect(retryAfter).toBeGreaterThan(0)
    expect(retryAfter).toBeLessThanOrEqual(15 * 60)
  })

  it('throttles unknown usernames exactly like known ones', async () => {
    await signUp(t.app, 'exists')
    const run = async (username: string, ip: string) => {
      const codes: number[] = []
      for (let i = 0; i < 13; i++) codes.push((await attempt(t.app, username, `nope-${i}`, ip)).statusCode)
      return codes
    }
    const known = await run('exists', '192.0.2.20')
    const unknown = await run('does-not-exist', '192.0.2.21')
    expect(unknown).toEqual(known)
    expect(known).toEqual([...Array(10).fill(401), ...Array(3).fill(429)])
  })

  it('does not count successful logins as failures', async () => {
    await signUp(t.app, 'regular')
    for (let i = 0; i < 25; i++) {
      expect((await attempt(t.app, 'regular', PASSWORD, '192.0.2.30')).statusCode).toBe(200)
    }
  })

  it('never locks an account through concurrent good logins, even past the limit', async () => {
    await signUp(t.app, 'popular')
    const burst = await Promise.all(
      Array.from({ length: 30 }, () => attempt(t.app, 'popular', PASSWORD, '192.0.2.31')),
    )
    // Some of the burst may be refused while the others are still in flight (each attempt is
    // counted before its hash, and a success taken back off after), but never the first ten
    // (LOGIN_MAX_FAILURES), whose counts are within the limit whatever the others do...
    for (const res of burst) expect([200, 429]).toContain(res.statusCode)
    expect(burst.filter((res) => res.statusCode === 200).length).toBeGreaterThanOrEqual(10)
    // ...but once they are done, nothing is left counted against the account.
    for (let i = 0; i < 3; i++)
      expect((await attempt(t.app, 'popular', PASSWORD, '192.0.2.32')).statusCode).toBe(200)
    for (let i = 0; i < 9; i++)
      expect((await attempt(t.app, 'popular', 'wrong', '192.0.2.33')).statusCode).toBe(401)
    expect((await attempt(t.app, 'popular', 'wrong', '192.0.2.33')).statusCode).toBe(401)
    expect((await attempt(t.app, 'popular', 'wrong', '192.0.2.33')).statusCode).toBe(429)
  })

  it('limits failures per client IP across accounts', async () => {
    const codes: number[] = []
    for (let i = 0; i < 105; i++) {
      codes.push((await attempt(t.app, `sprayed-${i}`, 'Winter2026!', '192.0.2.40')).statusCode)
    }
    expect(codes.slice(0, 100)).toEqual(Array(100).fill(401))
    expect(codes.slice(100)).toEqual(Array(5).fill(429))
  })

  it('refuses a device cookie made for another account, or forged', async () => {
    await signUp(t.app, 'alpha')
    await signUp(t.app, 'beta')
    const alphaCookie = deviceCookie(await attempt(t.app, 'alpha', PASSWORD, '192.0.2.50'))
    // Lock beta for unknown clients, then try alpha's cookie and a forged one on beta.
    for (let i = 0; i < 10; i++) await attempt(t.app, 'beta', 'wrong', '192.0.2.51')
    expect((await attempt(t.app, 'beta', PASSWORD, '192.0.2.50', alphaCookie)).statusCode).toBe(429)
    const forged = `${alphaCookie.split('.')[0]}.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA`
    expect((await attempt(t.app, 'beta', PASSWORD, '192.0.2.50', forged)).statusCode).toBe(429)
  })
})

describe('re-authentication throttling (issue 9 item 4)', () => {
  let t: TestApp
  let verifies = 0
  beforeAll(async () => {
    // Counts the hashing work: a throttled attempt must not cost a verify.
    t = await buildTestApp(
      { RATE_LIMIT: 'on' },
      {
        hasher: {
          hash: (p) => fastHasher.hash(p),
          needsRehash: (h) => fastHasher.needsRehash(h),
          verify: (h, p) => {
            verifies++
            return fastHasher.verify(h, p)
          },
        },
      },
    )
  })
  afterAll(async () => {
    await t.close()
  })

  const bearerOf = async (username: string, ip: string) => {
    const res = await attempt(t.app, username, PASSWORD, ip)
    expect(res.statusCode).toBe(200)
    return { token: res.json().access_token as string, cookie: deviceCookie(res) }
  }
  const changePassword = (token: string, current: string, ip: string, cookie?: string) =>
    t.app.inject({
      method: 'POST',
      url: '/auth/password',
      remoteAddress: ip,
      headers: { ...bearer(token), ...(cookie ? { cookie } : {}) },
      payload: { current_password: current, new_password: 'the new passphrase 2026' },
    })
  const deleteAccount = (token: string, password: string, ip: string) =>
    t.app.inject({
      method: 'DELETE',
      url: '/auth/me',
      remoteAddress: ip,
      headers: bearer(token),
      payload: { password },
    })

  it('counts wrong current passwords with the password grant, and refuses even the right one past 10', async () => {
    await signUp(t.app, 'stolen-token')
    const { token } = await bearerOf('stolen-token', '192.0.2.100')
    const codes: number[] = []
    for (let i = 0; i < 5; i++)
      codes.push((await attempt(t.app, 'stolen-token', `guess-${i}`, '203.0.113.1')).statusCode)
    for (let i = 0; i < 5; i++)
      codes.push((await changePassword(token, `guess-${i + 5}`, '203.0.113.2')).statusCode)
    expect(codes).toEqual([...Array(5).fill(401), ...Array(5).fill(400)])

    const before = verifies
    const refused = await changePassword(token, PASSWORD, '203.0.113.3')
    expect(refused.statusCode).toBe(429)
    expect(refused.json()).toEqual({
      detail: 'Too many attempts; try again later',
      code: 'too_many_requests',
    })
    expect(Number(refused.headers['retry-after'])).toBeGreaterThan(0)
    expect((await deleteAccount(token, PASSWORD, '203.0.113.4')).statusCode).toBe(429)
    expect((await attempt(t.app, 'stolen-token', PASSWORD, '203.0.113.5')).statusCode).toBe(429)
    expect(verifies - before).toBe(0) // no argon2 work once throttled
    // Nothing changed: the old password still opens the account from its known device.
    expect((await t.app.inject({ url: '/auth/me', headers: bearer(token) })).statusCode).toBe(200)
  })

  it('counts account deletion attempts too', async () => {
    await signUp(t.app, 'delete-guessed')
    const { token } = await bearerOf('delete-guessed', '192.0.2.101')
    for (let i = 0; i < 10; i++)
      expect((await deleteAccount(token, `guess-${i}`, '203.0.113.10')).statusCode).toBe(400)
    expect((await deleteAccount(token, PASSWORD, '203.0.113.10')).statusCode).toBe(429)
    expect((await t.app.inject({ url: '/auth/me', headers: bearer(token) })).statusCode).toBe(200)
  })

  it("keeps the owner's device on its own allowance, and takes a success back off", async () => {
    await signUp(t.app, 'attacked-owner')
    const owner = await bearerOf('attacked-owner', '192.0.2.102')
    for (let i = 0; i < 10; i++) await attempt(t.app, 'attacked-owner', `guess-${i}`, `203.0.113.${20 + i}`)
    expect((await attempt(t.app, 'attacked-owner', PASSWORD, '203.0.113.40')).statusCode).toBe(429)
    // The owner, on the device that logged in before, still changes the password.
    expect(
      (await changePassword(owner.token, 'a slip of the finger', '192.0.2.102', owner.cookie)).statusCode,
    ).toBe(400)
    expect((await changePassword(owner.token, PASSWORD, '192.0.2.102', owner.cookie)).statusCode).toBe(204)
  })
})

describe('device cookies bound to the credential (issue 9 item 5)', () => {
  let t: TestApp
  beforeAll(async () => {
    t = await buildTestApp({ RATE_LIMIT: 'on' })
  })
  afterAll(async () => {
    await t.close()
  })

  const NEW = 'the owner changed it 2026'
  /** `count` logins with the password as an attacker who knows it would make, each from its own address. */
  async function collectCookies(username: string, count: number, net: string): Promise<string[]> {
    const cookies: string[] = []
    for (let i = 0; i < count; i++)
      cookies.push(deviceCookie(await attempt(t.app, username, PASSWORD, `${net}.${i}`)))
    return cookies
  }

  it('a password change voids every cookie issued before it: 12 cookies give no 120 guesses', async () => {
    await signUp(t.app, 'changed-owner')
    const owner = (await attempt(t.app, 'changed-owner', PASSWORD, '192.0.2.110')).json().access_token
    const stolen = await collectCookies('changed-owner', 12, '198.18.1')
    const changed = await t.app.inject({
      method: 'POST',
      url: '/auth/password',
      remoteAddress: '192.0.2.110',
      headers: bearer(owner),
      payload: { current_password: PASSWORD, new_password: NEW },
    })
    expect(changed.statusCode).toBe(204)
    let evaluated = 0
    for (const [i, cookie] of stolen.entries()) {
      for (let g = 0; g < 10; g++) {
        const res = await attempt(t.app, 'changed-owner', `guess-${g}`, `198.18.2.${i}`, cookie)
        if (res.statusCode === 401) evaluated++
      }
    }
    // The cookies count as none: the account's own allowance, once.
    expect(evaluated).toBe(10)
  })

  it("gives the owner's device a new cookie with the 204 of its own change, which keeps its allowance", async () => {
    await signUp(t.app, 'own-change')
    const first = await attempt(t.app, 'own-change', PASSWORD, '192.0.2.111')
    const changed = await t.app.inject({
      method: 'POST',
      url: '/auth/password',
      remoteAddress: '192.0.2.111',
      headers: { ...bearer(first.json().access_token), cookie: deviceCookie(first) },
      payload: { current_password: PASSWORD, new_password: NEW },
    })
    expect(changed.statusCode).toBe(204)
    const renewed = deviceCookie(changed)
    for (let i = 0; i < 10; i++) await attempt(t.app, 'own-change', `guess-${i}`, `198.18.3.${i}`)
    expect((await attempt(t.app, 'own-change', NEW, '198.18.3.99')).statusCode).toBe(429)
    expect((await attempt(t.app, 'own-change', NEW, '192.0.2.111', renewed)).statusCode).toBe(200)
    expect((await attempt(t.app, 'own-change', NEW, '192.0.2.111', deviceCookie(first))).statusCode).toBe(429)
  })

  it('lets only the 5 most recent devices hold their own allowance', async () => {
    await signUp(t.app, 'many-devices')
    const cookies = await collectCookies('many-devices', 12, '198.18.4')
    for (let i = 0; i < 10; i++) await attempt(t.app, 'many-devices', `guess-${i}`, `198.18.5.${i}`)
    const codes: number[] = []
    for (const [i, cookie] of cookies.entries())
      codes.push((await attempt(t.app, 'many-devices', PASSWORD, `198.18.6.${i}`, cookie)).statusCode)
    expect(codes).toEqual([...Array(7).fill(429), ...Array(5).fill(200)])
  })

  it("gives a deleted account's cookie nothing on a new account under the same name", async () => {
    await signUp(t.app, 'reborn')
    const old = await attempt(t.app, 'reborn', PASSWORD, '192.0.2.112')
    const cookie = deviceCookie(old)
    const deleted = await t.app.inject({
      method: 'DELETE',
      url: '/auth/me',
      remoteAddress: '192.0.2.112',
      headers: bearer(old.json().access_token),
      payload: { password: PASSWORD },
    })
    expect(deleted.statusCode).toBe(204)
    await signUp(t.app, 'reborn', NEW)
    for (let i = 0; i < 10; i++) await attempt(t.app, 'reborn', `guess-${i}`, `198.18.7.${i}`)
    expect((await attempt(t.app, 'reborn', NEW, '192.0.2.112', cookie)).statusCode).toBe(429)
  })
})

describe('registration throttling', () => {
  it('limits sign-ups per client IP, and stores nothing past the limit', async () => {
    const t = await buildTestApp({ RATE_LIMIT: 'on', REGISTRATIONS_PER_IP_PER_HOUR: '3' })
    const codes: number[] = []
    for (let i = 0; i < 5; i++) {
      const res = await signUp(t.app, `signup-${i}`, PASSWORD, { remoteAddress: '192.0.2.60' })
      codes.push(res.statusCode)
    }
    expect(codes).toEqual([201, 201, 201, 429, 429])
    const other = await signUp(t.app, 'signup-other', PASSWORD, { remoteAddress: '192.0.2.61' })
    expect(other.statusCode).toBe(201)
    const stored = await inspect(t.dbUrl)
      .selectFrom('users')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('username', 'like', 'signup-%')
      .executeTakeFirstOrThrow()
    expect(stored).toEqual({ n: 4 })
    await t.close()
  })
})

describe('throttling settings', () => {
  it('marks the device cookie Secure when PUBLIC_URL is https', async () => {
    for (const [publicUrl, secure] of [
      ['https://auth.example.com', true],
      ['http://127.0.0.1:8000', false],
    ] as const) {
      const t = await buildTestApp({
        RATE_LIMIT: 'on',
        PUBLIC_URL: publicUrl,
        JWT_ISSUER: 'https://issuer.test',
      })
      await signUp(t.app, 'cookie-jar')
      const res = await attempt(t.app, 'cookie-jar', PASSWORD, '192.0.2.90')
      expect(String(res.headers['set-cookie']).includes('; Secure'), publicUrl).toBe(secure)
      await t.close()
    }
  })

  it('RATE_LIMIT=off turns it off', async () => {
    const t = await buildTestApp({ RATE_LIMIT: 'off' })
    await signUp(t.app, 'free')
    for (let i = 0; i < 15; i++)
      expect((await attempt(t.app, 'free', 'wrong', '192.0.2.70')).statusCode).toBe(401)
    await t.close()
  })

  it('counts in the shared store (the database, or Redis), so two processes share the counters', async () => {
    const a = await buildTestApp({ RATE_LIMIT: 'on' })
    const b = await buildApp(loadConfig({ DATABASE_URL: a.dbUrl, RATE_LIMIT: 'on', ...TEST_REDIS_ENV }), {
      hasher: fastHasher,
    })
    await signUp(a.app, 'shared')
    for (let i = 0; i < 5; i++) await attempt(a.app, 'shared', 'wrong', '192.0.2.80')
    for (let i = 0; i < 5; i++) await attempt(b, 'shared', 'wrong', '192.0.2.81')
    expect((await attempt(a.app, 'shared', 'wrong', '192.0.2.82')).statusCode).toBe(429)
    expect((await attempt(b, 'shared', 'wrong', '192.0.2.83')).statusCode).toBe(429)
    // Where the counter is: in Redis (the redis run, and only there), else a database row.
    const { REDIS_URL: redisUrl, REDIS_KEY_PREFIX: prefix } = TEST_REDIS_ENV
    expect(
      await throttleCounter(
        a.dbUrl,
        'login-account:shared',
        redisUrl ? { url: redisUrl, prefix: prefix ?? '' } : undefined,
      ),
    ).toEqual(redisUrl ? { database: [], redis: '10' } : { database: [10], redis: null })
    await b.close()
    await a.close()
  })

  it('believes X-Forwarded-For only with TRUST_PROXY', async () => {
    for (const [trust, expected] of [
      ['off', '127.0.0.1'],
      ['on', '203.0.113.99'],
    ] as const) {
      const t = await buildTestApp({ TRUST_PROXY: trust })
      await signUp(t.app, 'proxied')
      const res = await logIn(t.app, 'proxied', PASSWORD, { headers: { 'x-forwarded-for': '203.0.113.99' } })
      const list = await t.app.inject({
        url: '/auth/sessions',
        headers: bearer(res.json().access_token),
      })
      expect(list.json()[0].ip, trust).toBe(expected)
      await t.close()
    }
  })
})
