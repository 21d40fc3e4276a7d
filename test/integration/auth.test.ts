// The seed's API through app.inject() on a real database (a SQLite file; PostgreSQL in the second
// run): sign up, log in, the protected route.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildTestApp, inspect, PASSWORD, type TestApp } from '../helpers/app.js'
import { form, greet, logIn, signUp, tokenFor } from '../helpers/http.js'

let t: TestApp

beforeAll(async () => {
  t = await buildTestApp()
})
afterAll(async () => {
  await t.close()
})

async function countUsers(): Promise<number> {
  const row = await inspect(t.dbUrl)
    .selectFrom('users')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .executeTakeFirstOrThrow()
  return row.n
}

describe('POST /auth/', () => {
  it('creates a user: 201 and the seed message', async () => {
    const res = await signUp(t.app, 'testuser')
    expect(res.statusCode).toBe(201)
    expect(res.json()).toEqual({ message: 'User created successfully' })
  })

  it('answers 409 for a taken name, in any case or compatibility form', async () => {
    await signUp(t.app, 'Carol')
    for (const name of ['Carol', 'carol', 'CAROL', 'Ｃａｒｏｌ']) {
      const res = await signUp(t.app, name)
      expect(res.statusCode, name).toBe(409)
      expect(res.json()).toEqual({ detail: 'Username already registered', code: 'username_taken' })
    }
  })

  it('keeps exactly one winner when 20 sign-ups race for one name', async () => {
    const before = await countUsers()
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => signUp(t.app, i % 2 ? 'Racer' : 'racer')),
    )
    const codes = results.map((r) => r.statusCode).sort()
    expect(codes.filter((c) => c === 201)).toHaveLength(1)
    expect(codes.filter((c) => c === 409)).toHaveLength(19)
    expect(await countUsers()).toBe(before + 1)
  })

  it.each([
    [
      'missing password',
      { username: 'u1' },
      [{ loc: ['body', 'password'], type: 'missing', msg: 'Field required' }],
    ],
    ['missing both', {}, [{ loc: ['body', 'username'] }, { loc: ['body', 'password'] }]],
    [
      'a number as username',
      { username: 5, password: PASSWORD },
      [{ loc: ['body', 'username'], type: 'string_type' }],
    ],
    [
      'an empty username',
      { username: '', password: PASSWORD },
      [{ loc: ['body', 'username'], type: 'string_too_short' }],
    ],
    [
      'a short password',
      { username: 'u2', password: 'short' },
      [{ loc: ['body', 'password'], type: 'string_too_short' }],
    ],
    ['a common password', { username: 'u3', password: 'password1' }, [{ type: 'password_too_common' }]],
    [
      'a 129-character password',
      { username: 'u4', password: 'x'.repeat(129) },
      [{ type: 'string_too_long' }],
    ],
    ['a 1 MB password', { username: 'u5', password: 'x'.repeat(1_000_000) }, undefined],
    [
      'an invisible character',
      { username: 'ali\u200bce', password: PASSWORD },
      [{ loc: ['body', 'username'] }],
    ],
    [
      'a right-to-left override',
      { username: '\u202eadmin', password: PASSWORD },
      [{ loc: ['body', 'username'] }],
    ],
    ['an array body', [1, 2], [{ loc: ['body'], type: 'dict_type' }]],
  ])('refuses %s with a 4xx and stores nothing', async (_what, payload, detail) => {
    const before = await countUsers()
    const res = await t.app.inject({ method: 'POST', url: '/auth/', payload })
    expect(res.statusCode).toBeGreaterThanOrEqual(400)
    expect(res.statusCode).toBeLessThan(500)
    if (detail) {
      expect(res.statusCode).toBe(422)
      expect(res.json().detail).toMatchObject(detail)
    }
    expect(await countUsers()).toBe(before)
  })

  it.each([
    ['malformed JSON', 'application/json', '{"username": "x",', 422, 'json_invalid'],
    ['an empty JSON body', 'application/json', '', 422, 'missing'],
    ['JSON null', 'application/json', 'null', 422, 'missing'],
    ['plain text', 'text/plain', 'username=x', 422, 'dict_type'],
    ['a form', 'application/x-www-form-urlencoded', 'username=x&password=y', 422, undefined],
    ['XML', 'application/xml', '<u/>', 415, undefined],
  ])('answers %s with a FastAPI-shaped 4xx', async (_what, type, body, status, errorType) => {
    const before = await countUsers()
    const res = await t.app.inject({
      method: 'POST',
      url: '/auth/',
      headers: { 'content-type': type },
      payload: body,
    })
    expect(res.statusCode).toBe(status)
    expect(res.json()).toHaveProperty('detail')
    if (errorType) expect(res.json().detail[0].type).toBe(errorType)
    expect(await countUsers()).toBe(before)
  })

  it('also answers at /auth without the slash', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/auth',
      payload: { username: 'noslash', password: PASSWORD },
    })
    expect(res.statusCode).toBe(201)
  })
})

describe('POST /auth/token', () => {
  beforeAll(async () => {
    await signUp(t.app, 'Dana')
  })

  it('returns a bearer token, uncacheable', async () => {
    const res = await logIn(t.app, 'Dana')
    expect(res.statusCode).toBe(200)
    expect(res.headers['cache-control']).toBe('no-store')
    const body = res.json()
    expect(body).toEqual({
      access_token: expect.any(String),
      token_type: 'bearer',
      expires_in: 1800,
      refresh_token: expect.stringMatching(/^[\w-]{43}$/),
    })
    expect(body.access_token.split('.')).toHaveLength(3)
  })

  it('finds the user by canonical name, and the token carries the registered name', async () => {
    const res = await logIn(t.app, 'DANA')
    expect(res.statusCode).toBe(200)
    const greeting = await greet(t.app, res.json().access_token)
    expect(greeting.json().message).toMatch(/^Hello, Dana with ID: \d+!$/)
  })

  it('accepts grant_type=password and a scope, as OAuth2PasswordRequestForm', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/auth/token',
      headers: form,
      payload: `grant_type=password&username=Dana&password=${encodeURIComponent(PASSWORD)}&scope=me+items`,
    })
    expect(res.statusCode).toBe(200)
  })

  it('answers a wrong password and an unknown user identically', async () => {
    const wrong = await logIn(t.app, 'Dana', 'not the password at all')
    const unknown = await logIn(t.app, 'nobody-here', PASSWORD)
    for (const res of [wrong, unknown]) {
      expect(res.statusCode).toBe(401)
      expect(res.headers['www-authenticate']).toBe('Bearer')
      expect(res.json()).toEqual({ detail: 'Incorrect username or password', code: 'invalid_credentials' })
    }
  })

  it('compares the password exactly: no trimming', async () => {
    await signUp(t.app, 'spacey', '  spaced out passphrase  ')
    expect((await logIn(t.app, 'spacey', '  spaced out passphrase  ')).statusCode).toBe(200)
    expect((await logIn(t.app, 'spacey', 'spaced out passphrase')).statusCode).toBe(401)
  })

  it.each([
    ['no password', 'username=Dana', 'missing'],
    ['a repeated field', 'username=Dana&username=Eve&password=x', 'string_type'],
    ['an oversized password', `username=Dana&password=${'x'.repeat(5000)}`, 'string_too_long'],
  ])('answers %s with 422', async (_what, payload, type) => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/auth/token',
      headers: form,
      payload,
    })
    expect(res.statusCode).toBe(422)
    expect(res.json().detail[0].type).toBe(type)
  })

  it('answers an unsupported grant_type with RFC 6749 §5.2 unsupported_grant_type', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/auth/token',
      headers: form,
      // client_credentials is a grant now (test/integration/client-credentials.test.ts); this is not.
      payload: 'grant_type=urn:ietf:params:oauth:grant-type:device_code&username=Dana&password=x',
    })
    expect(res.statusCode).toBe(400)
    const detail =
      'grant_type must be password, authorization_code, refresh_token, client_credentials, ' +
      'urn:authgate:grant-type:mfa-otp or urn:authgate:grant-type:mfa-recovery-code'
    expect(res.json()).toEqual({
      error: 'unsupported_grant_type',
      error_description: detail,
      detail,
      code: 'unsupported_grant_type',
    })
  })

  it('answers JSON and empty bodies with a 4xx, never a 500', async () => {
    const json = await t.app.inject({
      method: 'POST',
      url: '/auth/token',
      payload: { username: 'Dana', password: PASSWORD },
    })
    expect(json.statusCode).toBe(415)
    expect(json.json()).toMatchObject({ code: 'unsupported_media_type' })
    const empty = await t.app.inject({ method: 'POST', url: '/auth/token' })
    expect(empty.statusCode).toBe(422)
    expect(empty.json().detail[0]).toMatchObject({ loc: ['body'], type: 'missing' })
  })
})

describe('GET /', () => {
  let token: string
  beforeAll(async () => {
    token = await tokenFor(t.app, 'Eve')
  })

  it('greets the token holder, whatever the case of the scheme', async () => {
    for (const scheme of ['Bearer', 'bearer', 'BEARER']) {
      const res = await t.app.inject({ url: '/', headers: { authorization: `${scheme} ${token}` } })
      expect(res.statusCode, scheme).toBe(200)
      expect(res.json().message).toMatch(/^Hello, Eve with ID: \d+!$/)
    }
  })

  it('answers 401 Not authenticated without a bearer credential', async () => {
    for (const authorization of [undefined, 'Basic dXNlcjpwYXNz', token, 'Bearertoken']) {
      const res = await t.app.inject({ url: '/', headers: authorization ? { authorization } : {} })
      expect(res.statusCode).toBe(401)
      expect(res.headers['www-authenticate']).toBe('Bearer')
      expect(res.json()).toEqual({ detail: 'Not authenticated', code: 'not_authenticated' })
    }
  })

  it('answers 401 Could not validate credentials for a bad token', async () => {
    const [h, p, s] = token.split('.')
    const tampered = `${h}.${Buffer.from(JSON.stringify({ sub: 'Eve', id: 1, exp: 9999999999 })).toString('base64url')}.${s}`
    for (const bad of ['', 'garbage', `${h}.${p}.`, `${h}.${p}`, tampered, `${token}x`]) {
      const res = await greet(t.app, bad)
      expect(res.statusCode, bad).toBe(401)
      expect(res.headers['www-authenticate']).toBe('Bearer')
      expect(res.json()).toEqual({ detail: 'Could not validate credentials', code: 'invalid_token' })
    }
  })
})

describe('operations', () => {
  it('answers /healthz and /readyz', async () => {
    expect((await t.app.inject({ url: '/healthz' })).json()).toEqual({ status: 'ok' })
    expect((await t.app.inject({ url: '/readyz' })).json()).toEqual({ status: 'ready' })
  })

  it('answers unknown routes with a {detail} 404', async () => {
    const res = await t.app.inject({ url: '/nope' })
    expect(res.statusCode).toBe(404)
    expect(res.json()).toEqual({ detail: 'Not Found', code: 'not_found' })
  })

  it('publishes OpenAPI 3.1 with the seed OAuth2 password scheme', async () => {
    const spec = (await t.app.inject({ url: '/openapi.json' })).json()
    expect(spec.openapi).toMatch(/^3\.1/)
    expect(spec.components.securitySchemes.OAuth2PasswordBearer).toEqual({
      type: 'oauth2',
      flows: { password: { tokenUrl: 'auth/token', scopes: {} } },
    })
    expect(spec.paths['/'].get.security).toEqual([{ OAuth2PasswordBearer: [] }])
    expect(Object.keys(spec.paths['/auth/token'].post.requestBody.content)).toEqual([
      'application/x-www-form-urlencoded',
    ])
    expect(spec.paths['/auth/'].post.responses).toHaveProperty('409')
  })
})
