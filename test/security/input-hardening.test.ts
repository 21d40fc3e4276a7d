// Hostile input: every case gets a clear 4xx, issues no token and changes nothing.
import { request as httpRequest } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { PasswordHasher } from '../../src/domain/passwords.js'
import { openAudit } from '../../src/services.js'
import { auditWritten, buildTestApp, fastHasher, inspect, PASSWORD, type TestApp } from '../helpers/app.js'
import { bearer, form, logIn, signUp } from '../helpers/http.js'

// The real (cheap) hasher, counting its calls: "refused before any hashing" is then checkable.
const calls = { hash: 0, verify: 0 }
const countingHasher: PasswordHasher = {
  hash: (pw) => {
    calls.hash++
    return fastHasher.hash(pw)
  },
  verify: (stored, pw) => {
    calls.verify++
    return fastHasher.verify(stored, pw)
  },
  needsRehash: (stored) => fastHasher.needsRehash(stored),
}

let t: TestApp
beforeAll(async () => {
  t = await buildTestApp({ CORS_ORIGINS: 'https://app.example.com' }, { hasher: countingHasher })
})
afterAll(async () => {
  await t.close()
})

async function snapshot(): Promise<string> {
  const db = inspect(t.dbUrl)
  return JSON.stringify([
    await db.selectFrom('users').select(['id', 'username', 'password']).orderBy('id').execute(),
    await db.selectFrom('authgate_sessions').select('id').orderBy('id').execute(),
  ])
}

describe('bodies', () => {
  it('refuses a 1 MB password before any hashing', async () => {
    const before = await snapshot()
    const start = { ...calls }
    for (const url of ['/auth/', '/auth/token']) {
      const huge = 'p'.repeat(1_000_000)
      const res =
        url === '/auth/'
          ? await t.app.inject({ method: 'POST', url, payload: { username: 'big', password: huge } })
          : await logIn(t.app, 'big', huge)
      expect(res.statusCode).toBe(413)
      expect(res.json()).toEqual({ detail: 'Request body is too large', code: 'payload_too_large' })
    }
    expect(calls).toEqual(start)
    expect(await snapshot()).toBe(before)
  })

  it('refuses a password over the policy maximum before hashing it', async () => {
    const start = { ...calls }
    const res = await t.app.inject({
      method: 'POST',
      url: '/auth/',
      payload: { username: 'long', password: 'x'.repeat(2000) },
    })
    expect(res.statusCode).toBe(422)
    expect(calls.hash).toBe(start.hash)
  })

  it.each([
    ["' OR '1'='1", "' OR '1'='1"],
    ["admin'--", 'whatever'],
    ['"; DROP TABLE users; --', PASSWORD],
    ['<script>alert(1)</script>', PASSWORD],
    // biome-ignore lint/suspicious/noTemplateCurlyInString: the literal text is the point (Log4Shell probe)
    ['${jndi:ldap://x}', PASSWORD],
    ['{"$ne": null}', PASSWORD],
  ])('treats injection-looking credentials %s as plain text', async (username, password) => {
    const before = await snapshot()
    const res = await logIn(t.app, username, password)
    expect(res.statusCode).toBe(401)
    expect(res.json()).toEqual({ detail: 'Incorrect username or password', code: 'invalid_credentials' })
    expect(await snapshot()).toBe(before)
  })

  it('stores an injection-looking username verbatim, and it only ever matches itself', async () => {
    const name = "robert');DROP_TABLE_students;--"
    expect((await signUp(t.app, name)).statusCode).toBe(201)
    expect((await logIn(t.app, name)).statusCode).toBe(200)
    const stored = await inspect(t.dbUrl)
      .selectFrom('users')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('username', '=', name)
      .executeTakeFirstOrThrow()
    expect(stored).toEqual({ n: 1 })
  })

  it('accepts JSON with a prototype-pollution key without effect', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/auth/',
      headers: { 'content-type': 'application/json' },
      payload: '{"username":"proto","password":"a good long passphrase","__proto__":{"admin":true}}',
    })
    expect([201, 400, 422]).toContain(res.statusCode)
    expect(({} as Record<string, unknown>).admin).toBeUndefined()
  })
})

describe('usernames that look alike', () => {
  it.each([
    ['fullwidth', 'ｍａｌｌｏｒｙ'],
    ['upper case', 'MALLORY'],
    ['ligature-free compat form', 'ｍallory'],
  ])('refuses %s twins of a registered name (409)', async (_what, twin) => {
    await signUp(t.app, 'mallory')
    expect((await signUp(t.app, twin)).statusCode).toBe(409)
  })

  it.each([
    ['zero width space', 'mal\u200blory'],
    ['zero width non-joiner', 'mal\u200clory'],
    ['word joiner', 'mal\u2060lory'],
    ['right-to-left override', 'mal\u202elory'],
    ['left-to-right mark', '\u200emallory'],
    ['combining grapheme joiner', 'mal\u034flory'],
    ['hangul filler', 'mallory\u3164'],
    ['tag characters', 'mallory\u{e0041}'],
  ])('refuses %s with 422 and stores nothing', async (_what, name) => {
    const before = await snapshot()
    const res = await signUp(t.app, name)
    expect(res.statusCode).toBe(422)
    expect(res.json().detail[0].loc).toEqual(['body', 'username'])
    expect(await snapshot()).toBe(before)
  })
})

describe('races', () => {
  it('50 parallel registrations of one name: exactly one 201, the rest 409', async () => {
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        signUp(t.app, i % 3 === 0 ? 'Crowd' : i % 3 === 1 ? 'crowd' : 'CROWD'),
      ),
    )
    const codes = results.map((r) => r.statusCode)
    expect(codes.filter((c) => c === 201)).toHaveLength(1)
    expect(codes.filter((c) => c === 409)).toHaveLength(49)
  })
})

describe('text a database cannot store as sent', () => {
  // PostgreSQL refuses U+0000 in text outright; a username cut to the audit log's bound can split
  // an emoji into a lone surrogate, which either database gives back as U+FFFD.
  const nul = 'nul\u0000name'
  const cut = `x${'😀'.repeat(200)}`

  it('never turns into a 500, and is audited in a chain that still verifies', async () => {
    await signUp(t.app, 'textual')
    const token = (await logIn(t.app, 'textual')).json().access_token
    const answers = [
      // From an address of their own: past five failures a minute, an address's are summarised.
      (await logIn(t.app, nul, PASSWORD, { remoteAddress: '192.0.2.77' })).statusCode,
      (await logIn(t.app, cut, PASSWORD, { remoteAddress: '192.0.2.77' })).statusCode,
      (await signUp(t.app, nul)).statusCode,
      (
        await t.app.inject({
          method: 'DELETE',
          url: '/auth/sessions/a%00b',
          headers: bearer(token),
        })
      ).statusCode,
      (
        await t.app.inject({
          method: 'POST',
          url: '/auth/token',
          headers: form,
          payload: 'grant_type=refresh_token&refresh_token=a%00b',
        })
      ).statusCode,
      (await t.app.inject({ method: 'POST', url: '/auth/revoke', headers: form, payload: 'token=a%00b' }))
        .statusCode,
    ]
    expect(answers).toEqual([401, 401, 422, 404, 400, 200])
    // The failed logins are in the audit log (written in the background), as U+FFFD.
    await auditWritten(t.app)
    const failed = await inspect(t.dbUrl)
      .selectFrom('authgate_audit_log')
      .select('username')
      .where('type', '=', 'login.failed')
      .where('username', 'like', '%\uFFFD%')
      .orderBy('seq')
      .execute()
    expect(failed.map((r) => r.username)).toEqual(['nul\uFFFDname', `x${'😀'.repeat(127)}\uFFFD…`])
    expect(await openAudit(inspect(t.dbUrl), t.config).verify()).toMatchObject({ ok: true })
  })
})

describe('protocol', () => {
  it('answers a wrong method on a known path with 405 and Allow, in the {detail} shape', async () => {
    const res = await t.app.inject({ method: 'PUT', url: '/auth/token' })
    expect(res.statusCode).toBe(405)
    expect(res.headers.allow).toBe('POST')
    expect(res.json()).toEqual({ detail: 'Method Not Allowed', code: 'method_not_allowed' })
    const del = await t.app.inject({ method: 'PATCH', url: '/auth/sessions/abc' })
    expect(del.statusCode).toBe(405)
    expect(String(del.headers.allow)).toContain('DELETE')
    expect((await t.app.inject({ method: 'GET', url: '/no/such/path' })).statusCode).toBe(404)
  })

  it('answers 405 below a wildcard route too: /docs/static/* takes any path under it', async () => {
    for (const url of ['/docs/static/swagger-ui.css', '/docs/static/nested/x.js', '/docs/static/a.css?v=1']) {
      const res = await t.app.inject({ method: 'POST', url })
      // RFC 9110 §10.2.1: Allow is a set, in the order the routes were registered.
      const allow = String(res.headers.allow).split(', ').sort()
      expect({ url, status: res.statusCode, allow }).toEqual({ url, status: 405, allow: ['GET', 'HEAD'] })
    }
    // Not beside it: the wildcard stands for the rest of the path after /docs/static/.
    for (const url of ['/docs/staticx', '/docsx/static/a.css', '/x/docs/static/a.css']) {
      expect({ url, status: (await t.app.inject({ method: 'POST', url })).statusCode }).toEqual({
        url,
        status: 404,
      })
    }
  })

  it('sends security headers on API answers', async () => {
    const res = await t.app.inject({ url: '/healthz' })
    expect(res.headers['x-content-type-options']).toBe('nosniff')
    expect(res.headers['content-security-policy']).toContain("default-src 'none'")
    expect(res.headers['content-security-policy']).toContain("frame-ancestors 'none'")
    expect(res.headers['strict-transport-security']).toMatch(/max-age=\d+/)
    expect(res.headers['x-powered-by']).toBeUndefined()
  })

  it('lets /docs run its own scripts, from this server only', async () => {
    const res = await t.app.inject({ url: '/docs' })
    const csp = String(res.headers['content-security-policy'])
    expect(csp).toContain("default-src 'self'")
    expect(csp).toMatch(/script-src 'self'\s*;/)
    expect(csp).not.toMatch(/unsafe-inline|https:|swagger\.io|upgrade-insecure-requests/)
  })

  it('allows CORS from configured origins only', async () => {
    const preflight = (origin: string) =>
      t.app.inject({
        method: 'OPTIONS',
        url: '/auth/token',
        headers: { origin, 'access-control-request-method': 'POST' },
      })
    expect((await preflight('https://app.example.com')).headers['access-control-allow-origin']).toBe(
      'https://app.example.com',
    )
    expect((await preflight('https://evil.example')).headers['access-control-allow-origin']).toBeUndefined()
  })

  it('never answers with a stack trace or an internal message', async () => {
    for (const res of [
      await t.app.inject({
        method: 'POST',
        url: '/auth/',
        headers: { 'content-type': 'application/json' },
        payload: '{',
      }),
      await t.app.inject({
        method: 'POST',
        url: '/auth/token',
        headers: { 'content-type': 'application/json' },
        payload: '[]',
      }),
      await t.app.inject({ method: 'GET', url: '/%' }),
    ]) {
      expect(res.statusCode).toBeLessThan(500)
      expect(res.body).not.toMatch(/at .*\.(ts|js):\d+|node_modules|SqliteError|TypeError/)
    }
  })

  it('refuses oversized headers over real HTTP with 431', async () => {
    await t.app.listen({ port: 0, host: '127.0.0.1' })
    const { port } = t.app.server.address() as AddressInfo
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(
        { host: '127.0.0.1', port, path: '/', headers: bearer('a'.repeat(20_000)) },
        (res) => {
          res.resume()
          resolve(res.statusCode ?? 0)
        },
      )
      req.on('error', reject)
      req.end()
    })
    expect(status).toBe(431)
  })
})
