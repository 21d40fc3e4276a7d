// The login and sign-up pages under attack, through app.inject on both dialects: forged posts
// (no token, a wrong one, another origin) are refused before anything is counted; return_to is
// never an open redirect; an unknown user and a wrong password get the same page in the same
// time; a guess through the page counts against the password grant's throttle and back; and
// whatever a user types comes back escaped.
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { afterAll, beforeAll, describe, expect, it, type MockInstance, vi } from 'vitest'
import { servicesOf } from '../../src/app.js'
import { createPasswordHasher } from '../../src/domain/passwords.js'
import { ICON_PATH, STYLESHEET_PATH } from '../../src/http/pages/assets.js'
import { PAGE_HEADERS } from '../../src/http/plugins/security.js'
import { randomToken, sha256Hex } from '../../src/lib/crypto.js'
import type { Services } from '../../src/services.js'
import { buildTestApp, inspect, PASSWORD, TEST_REDIS_ENV, type TestApp } from '../helpers/app.js'
import { runCli } from '../helpers/cli.js'
import { bearer, logIn, signUp, tokenFor } from '../helpers/http.js'
import { throttleCounter } from '../helpers/redis-server.js'

const FORM = 'application/x-www-form-urlencoded'

interface PageForm {
  /** The Cookie header that carries the form's CSRF binding. */
  cookie: string
  token: string
}

/** GETs a page with a form, as a browser would first: its CSRF cookie and token. */
async function openForm(app: FastifyInstance, url = '/login', cookie?: string): Promise<PageForm> {
  const res = await app.inject({ url, ...(cookie ? { headers: { cookie } } : {}) })
  expect(res.statusCode).toBe(200)
  const set = res.cookies.find((c) => c.name === 'authgate_csrf')
  const token = /name="csrf_token" value="([^"]+)"/.exec(res.body)?.[1]
  if (token === undefined) throw new Error(`no csrf_token in ${url}`)
  return { cookie: cookie ?? `authgate_csrf=${set?.value}`, token }
}

interface Post {
  form?: PageForm | undefined
  fields: Record<string, string>
  headers?: Record<string, string>
  ip?: string
}

function post(app: FastifyInstance, url: string, { form, fields, headers = {}, ip }: Post) {
  return app.inject({
    method: 'POST',
    url,
    ...(ip ? { remoteAddress: ip } : {}),
    headers: { 'content-type': FORM, ...(form ? { cookie: form.cookie } : {}), ...headers },
    payload: new URLSearchParams({ ...(form ? { csrf_token: form.token } : {}), ...fields }).toString(),
  })
}

/** A page login as a browser sends it: the page's form first, then its post. */
async function pageLogin(app: FastifyInstance, fields: Record<string, string>, ip?: string) {
  return post(app, '/login', { form: await openForm(app), fields, ...(ip ? { ip } : {}) })
}

/** The services the app runs on: the browser sessions the pages start are theirs. */
function servicesFor(t: TestApp): Services {
  const services = servicesOf(t.app)
  if (!services) throw new Error('the app has no services')
  return services
}

/** The browser sessions the pages started (authgate_sessions, kind 'browser'), live or ended. */
const browserRows = (t: TestApp) =>
  inspect(t.dbUrl).selectFrom('authgate_sessions').selectAll().where('kind', '=', 'browser').execute()

/** The browser-session cookie a page's answer set. */
const sessionCookieOf = (res: LightMyRequestResponse) =>
  res.cookies.find((c) => c.name === 'authgate_session')?.value

/** A page's form, then its post, from a browser that holds the browser-session cookie `session`. */
async function postWithSession(
  app: FastifyInstance,
  path: '/login' | '/signup',
  session: string,
  fields: Record<string, string>,
) {
  const form = await openForm(app, path)
  return post(app, path, { form: { ...form, cookie: `${form.cookie}; authgate_session=${session}` }, fields })
}

const failedLogins = async (dbUrl: string, ip: string) =>
  (await throttleCounter(dbUrl, `login-ip:${ip}`)).database.reduce((a, b) => a + b, 0)

/** The page as a user sees it, without what differs per answer (the CSRF token). */
const withoutToken = (body: string) => body.replace(/name="csrf_token" value="[^"]+"/, 'name="csrf_token"')

function expectPageHeaders(res: LightMyRequestResponse) {
  expect(res.headers['content-type']).toBe('text/html; charset=utf-8')
  // script-src 'self': the login page's passkey script, a file of ours; never inline, never eval.
  expect(res.headers['content-security-policy']).toBe(
    "default-src 'none';style-src 'self';img-src 'self';script-src 'self';connect-src 'self';frame-ancestors 'none';base-uri 'none'",
  )
  expect(res.headers['x-frame-options']).toBe('DENY')
  expect(res.headers['cache-control']).toBe('no-store')
  expect(res.headers['referrer-policy']).toBe('same-origin')
  expect(res.headers['x-content-type-options']).toBe('nosniff')
}

describe('the pages, on forged posts and crafted input', () => {
  let t: TestApp

  beforeAll(async () => {
    t = await buildTestApp({ RATE_LIMIT: 'on', LOGIN_MAX_FAILURES: '3' })
    await signUp(t.app, 'alice')
  })

  afterAll(async () => {
    await t.close()
  })

  it('sends the page headers on every page, the 403 and the error pages included, and caches the stylesheet for good', async () => {
    expectPageHeaders(await t.app.inject({ url: '/login' }))
    expectPageHeaders(await t.app.inject({ url: '/signup' }))
    expectPageHeaders(await post(t.app, '/login', { fields: { username: 'alice', password: PASSWORD } }))
    const json = await t.app.inject({
      method: 'POST',
      url: '/login',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ username: 'alice', password: PASSWORD }),
    })
    expect(json.statusCode).toBe(415)
    expectPageHeaders(json)
    expect(json.body).toContain('<h1>Request not understood</h1>')
    // The JSON API keeps its own CSP: no style, no image.
    expect((await t.app.inject({ url: '/' })).headers['content-security-policy']).toBe(
      "default-src 'none';frame-ancestors 'none'",
    )
    expect(PAGE_HEADERS['content-security-policy']).not.toContain('form-action')
    // HTML pages are not API operations: the OpenAPI document leaves them out.
    const spec = (await t.app.inject({ url: '/openapi.json' })).json()
    expect(Object.keys(spec.paths).filter((p) => /^\/(login|signup|assets)/.test(p))).toEqual([])

    const css = await t.app.inject({ url: STYLESHEET_PATH })
    expect(css.statusCode).toBe(200)
    expect(css.headers['content-type']).toBe('text/css; charset=utf-8')
    expect(css.headers['cache-control']).toBe('public, max-age=31536000, immutable')
    expect(STYLESHEET_PATH).toMatch(/^\/assets\/authgate-[0-9a-f]{12}\.css$/)
    const icon = await t.app.inject({ url: ICON_PATH })
    expect([icon.statusCode, icon.headers['content-type']]).toEqual([200, 'image/svg+xml'])
    expect(icon.headers['cache-control']).toBe('public, max-age=31536000, immutable')
    expect((await t.app.inject({ url: '/login' })).body).toContain(
      `<link rel="stylesheet" href="${STYLESHEET_PATH}">`,
    )
  })

  describe('CSRF (OWASP ASVS 5.0 3.5.1)', () => {
    type Forgery = Omit<Post, 'fields'> & { fields?: Record<string, string> }
    const FORGED: [string, (form: PageForm) => Forgery][] = [
      ['no token, no cookie', () => ({})],
      ['the cookie but no token', (form) => ({ headers: { cookie: form.cookie } })],
      ['a token but no cookie', (form) => ({ fields: { csrf_token: form.token } })],
      [
        'a token bound to another cookie',
        (form) => ({ form: { ...form, cookie: `authgate_csrf=${'A'.repeat(43)}` } }),
      ],
      ['a tampered token', (form) => ({ form: { ...form, token: `${form.token.slice(0, -2)}AA` } })],
      [
        'a valid token from another origin',
        (form) => ({ form, headers: { origin: 'https://evil.example' } }),
      ],
      ['a valid token from a null origin', (form) => ({ form, headers: { origin: 'null' } })],
      [
        'a valid token, Sec-Fetch-Site: cross-site',
        (form) => ({ form, headers: { 'sec-fetch-site': 'cross-site' } }),
      ],
      [
        'a valid token, Sec-Fetch-Site: same-site',
        (form) => ({ form, headers: { 'sec-fetch-site': 'same-site' } }),
      ],
    ]

    it.each(FORGED.map(([name, make], i) => ({ name, make, ip: `192.0.2.${10 + i}` })))(
      'refuses a login post with $name: a 403 page, and no attempt counted',
      async ({ make, ip }) => {
        const form = await openForm(t.app)
        const forgery = make(form)
        const attempt = (password: string) =>
          post(t.app, '/login', {
            ...forgery,
            fields: { username: 'alice', password, ...forgery.fields },
            ip,
          })
        const before = (await browserRows(t)).length
        // More forged wrong guesses than LOGIN_MAX_FAILURES (3).
        for (let i = 0; i < 5; i++) {
          const res = await attempt(`wrong password ${i}`)
          expect(res.statusCode).toBe(403)
          expectPageHeaders(res)
          expect(res.body).toContain('<h1>This form cannot be accepted</h1>')
          expect(res.headers['set-cookie']).toBeUndefined()
        }
        expect(await failedLogins(t.dbUrl, ip)).toBe(0)
        // The right password with the same forgery is refused too: nothing starts.
        expect((await attempt(PASSWORD)).statusCode).toBe(403)
        expect((await browserRows(t)).length).toBe(before)
        // The control: the same form, posted as the page posts it, signs in.
        const ok = await post(t.app, '/login', {
          form,
          fields: { username: 'alice', password: PASSWORD },
          ip,
        })
        expect(ok.statusCode).toBe(303)
        const started = await browserRows(t)
        expect(started.length).toBe(before + 1)
        expect(started).toContainEqual(
          expect.objectContaining({
            secret_hash: sha256Hex(sessionCookieOf(ok) ?? ''),
            ip,
            revoked_at: null,
          }),
        )
      },
    )

    it('refuses a forged sign-up the same way, and creates nobody', async () => {
      const form = await openForm(t.app, '/signup')
      const res = await post(t.app, '/signup', {
        form,
        fields: { username: 'forged-signup', password: PASSWORD },
        headers: { origin: 'https://evil.example' },
      })
      expect(res.statusCode).toBe(403)
      const noToken = await post(t.app, '/signup', {
        fields: { username: 'forged-signup', password: PASSWORD },
      })
      expect(noToken.statusCode).toBe(403)
      const rows = await inspect(t.dbUrl)
        .selectFrom('users')
        .select('id')
        .where('username', '=', 'forged-signup')
        .execute()
      expect(rows).toEqual([])
    })

    it('accepts its own origin (PUBLIC_URL or the Host it was sent to) and Sec-Fetch-Site: same-origin', async () => {
      for (const headers of [
        { origin: 'http://localhost:80', 'sec-fetch-site': 'same-origin' },
        { origin: 'http://127.0.0.1:8000' },
        {},
      ] as Record<string, string>[]) {
        const res = await post(t.app, '/login', {
          form: await openForm(t.app),
          fields: { username: 'alice', password: PASSWORD },
          headers,
        })
        expect([headers, res.statusCode]).toEqual([headers, 303])
      }
    })

    it('keeps the browser’s binding across pages: a second GET sets no new cookie, and its token works', async () => {
      const first = await openForm(t.app)
      const again = await t.app.inject({ url: '/login', headers: { cookie: first.cookie } })
      expect(again.headers['set-cookie']).toBeUndefined()
      const second = await openForm(t.app, '/login', first.cookie)
      expect(second.token).not.toBe(first.token)
      expect(
        (await post(t.app, '/login', { form: second, fields: { username: 'alice', password: PASSWORD } }))
          .statusCode,
      ).toBe(303)
    })
  })

  describe('return_to', () => {
    const REFUSED = [
      '//evil.example',
      '//evil.example/login',
      '/\\evil.example',
      '\\/evil.example',
      'https://evil.example',
      'http://localhost:80/x',
      'javascript:alert(1)',
      '/\t/evil.example',
      'evil.example',
    ]

    it.each(REFUSED)(
      'after a login, %j is replaced by the default (/login), never followed',
      async (returnTo) => {
        const res = await pageLogin(t.app, { username: 'alice', password: PASSWORD, return_to: returnTo })
        expect(res.statusCode).toBe(303)
        expect(res.headers.location).toBe('/login')
      },
    )

    it.each(REFUSED)('the login and sign-up pages drop %j from the form and the links', async (returnTo) => {
      for (const path of ['/login', '/signup']) {
        const page = await t.app.inject({ url: `${path}?${new URLSearchParams({ return_to: returnTo })}` })
        expect(page.statusCode).toBe(200)
        expect(page.body).not.toContain('name="return_to"')
        expect(page.body).not.toContain('evil.example')
        expect(page.body).not.toContain('return_to=')
      }
    })

    it('follows a local path, and keeps it through the link to sign-up and back', async () => {
      const target = '/authorize?client_id=abc&state=x%20y'
      const res = await pageLogin(t.app, { username: 'alice', password: PASSWORD, return_to: target })
      expect(res.statusCode).toBe(303)
      expect(res.headers.location).toBe(target)
      const page = await t.app.inject({ url: `/login?${new URLSearchParams({ return_to: target })}` })
      const encoded = new URLSearchParams({ return_to: target }).toString().replaceAll('&', '&amp;')
      expect(page.body).toContain(
        `<input type="hidden" name="return_to" value="${target.replaceAll('&', '&amp;')}">`,
      )
      expect(page.body).toContain(`<a href="/signup?${encoded}">Create an account</a>`)
      const signup = await t.app.inject({ url: `/signup?${new URLSearchParams({ return_to: target })}` })
      expect(signup.body).toContain(`<a href="/login?${encoded}">Sign in</a>`)
    })
  })

  it('gives an unknown user and a wrong password the same page: status, headers and words', async () => {
    const wrong = await pageLogin(t.app, { username: 'alice', password: 'not the password' }, '198.51.100.20')
    const unknown = await pageLogin(
      t.app,
      { username: 'nobody-here', password: 'not the password' },
      '198.51.100.21',
    )
    expect(wrong.statusCode).toBe(400)
    expect(unknown.statusCode).toBe(wrong.statusCode)
    expect(Object.keys(unknown.headers).sort()).toEqual(Object.keys(wrong.headers).sort())
    expect(withoutToken(unknown.body).replace('value="nobody-here"', 'value="alice"')).toBe(
      withoutToken(wrong.body),
    )
    expect(wrong.body).toContain('<p id="form-error">Incorrect username or password.</p>')
    expect(wrong.body).toContain('role="alert"')
    // The name is typed back, the password never.
    expect(wrong.body).toContain('value="alice"')
    expect(wrong.body).not.toContain('not the password')
  })

  it('counts a guess through the page as a guess: the password grant is throttled after page failures, and back', async () => {
    await signUp(t.app, 'shared-throttle')
    await signUp(t.app, 'shared-throttle-2')
    // LOGIN_MAX_FAILURES=3, from three addresses: the account's counter, not an address's.
    for (let i = 0; i < 3; i++) {
      const res = await pageLogin(
        t.app,
        { username: 'shared-throttle', password: `guess ${i}` },
        `203.0.113.${i}`,
      )
      expect(res.statusCode).toBe(400)
    }
    const grant = await logIn(t.app, 'shared-throttle', PASSWORD, { remoteAddress: '203.0.113.50' })
    expect(grant.statusCode).toBe(429)
    const page = await pageLogin(t.app, { username: 'shared-throttle', password: PASSWORD }, '203.0.113.51')
    expect(page.statusCode).toBe(429)
    expect(page.headers['retry-after']).toMatch(/^[1-9]\d*$/)
    expect(page.body).toContain(`Too many attempts. Try again in ${page.headers['retry-after']} seconds.`)
    expect(page.body).toContain('role="alert"')

    // The other way: guesses at the token endpoint throttle the page.
    for (let i = 0; i < 3; i++)
      expect(
        (await logIn(t.app, 'shared-throttle-2', `guess ${i}`, { remoteAddress: `203.0.113.${10 + i}` }))
          .statusCode,
      ).toBe(401)
    expect(
      (await pageLogin(t.app, { username: 'shared-throttle-2', password: PASSWORD }, '203.0.113.60'))
        .statusCode,
    ).toBe(429)
  })

  it('escapes what a user typed: a <script> username on every page it comes back on', async () => {
    const name = '<script>alert(1)</script>'
    const attribute = '"><img/src=x/onerror=alert(1)>'
    const wrong = await pageLogin(t.app, { username: attribute, password: 'nope nope nope' })
    expect(wrong.body).not.toContain('<img')
    expect(wrong.body).toContain('value="&quot;&gt;&lt;img/src=x/onerror=alert(1)&gt;"')

    const signup = await post(t.app, '/signup', {
      form: await openForm(t.app, '/signup'),
      fields: { username: name, password: PASSWORD },
    })
    expect(signup.statusCode).toBe(303)
    const cookie = signup.cookies.find((c) => c.name === 'authgate_session')
    const signedIn = await t.app.inject({
      url: '/login',
      headers: { cookie: `authgate_session=${cookie?.value}` },
    })
    expect(signedIn.statusCode).toBe(200)
    expect(signedIn.body).toContain(
      'You are signed in as <strong>&lt;script&gt;alert(1)&lt;/script&gt;</strong>.',
    )
    expect(signedIn.body).not.toContain('<script')
  })
})

describe('the sign-in and sign-up flows', () => {
  let t: TestApp

  beforeAll(async () => {
    t = await buildTestApp()
    await signUp(t.app, 'bob')
  })

  afterAll(async () => {
    await t.close()
  })

  it('signs in: a browser session with amr pwd, its cookie (HttpOnly, Path=/, SameSite=Lax), a 303 to return_to', async () => {
    const before = Date.now()
    const res = await post(t.app, '/login', {
      form: await openForm(t.app),
      fields: { username: 'bob', password: PASSWORD, return_to: '/somewhere?x=1' },
      headers: { 'user-agent': 'Firefox/140.0' },
    })
    expect(res.statusCode).toBe(303)
    expect(res.headers.location).toBe('/somewhere?x=1')
    const session = res.cookies.find((c) => c.name === 'authgate_session')
    expect(session).toMatchObject({ path: '/', httpOnly: true, sameSite: 'Lax' })
    expect(session?.secure).toBeUndefined()
    expect(session?.maxAge).toBeUndefined()
    // What the page started, as the app's own service reads it back from the cookie.
    const started = await servicesFor(t).browserSessions.resolve(session?.value)
    expect(started).toMatchObject({ username: 'bob', amr: ['pwd'] })
    expect(started?.authTime).toBeGreaterThanOrEqual(before)
    expect(started?.authTime).toBeLessThanOrEqual(Date.now())
    // And as it is stored: the client's facts, the cookie only as its hash.
    const rows = await browserRows(t)
    expect(rows.filter((r) => r.user_id === started?.userId)).toEqual([
      expect.objectContaining({
        id: started?.id,
        secret_hash: sha256Hex(session?.value ?? ''),
        ip: '127.0.0.1',
        user_agent: 'Firefox/140.0',
        amr: '["pwd"]',
        auth_time: started?.authTime,
        revoked_at: null,
      }),
    ])
    expect(JSON.stringify(rows)).not.toContain(session?.value)
    // The device cookie, for the login page only.
    expect(res.cookies.find((c) => c.name === 'authgate_device')).toMatchObject({
      path: '/login',
      httpOnly: true,
    })
  })

  it('asks for what is missing, field by field, and counts nothing', async () => {
    const res = await pageLogin(t.app, { username: '', password: '' }, '198.51.100.99')
    expect(res.statusCode).toBe(422)
    expect(res.body).toContain('<a href="#username">Enter your username</a>')
    expect(res.body).toContain('<a href="#password">Enter your password</a>')
    expect(res.body).toMatch(
      /<input id="username"[^>]* aria-invalid="true" aria-describedby="username-error">/,
    )
    expect(res.body).toMatch(/<title>Error: Sign in – AuthGate<\/title>/)
    expect(await failedLogins(t.dbUrl, '198.51.100.99')).toBe(0)
  })

  it('signs up: the policy’s messages on their field, a taken name on its own, then a session and a 303', async () => {
    const short = await post(t.app, '/signup', {
      form: await openForm(t.app, '/signup'),
      fields: { username: 'carol', password: 'short' },
    })
    expect(short.statusCode).toBe(422)
    expect(short.body).toContain(
      '<span class="field-error" id="password-error">Error: Password should have at least 8 characters</span>',
    )
    expect(short.body).toMatch(
      /<input id="password" name="password" type="password" autocomplete="new-password"[^>]* aria-invalid="true" aria-describedby="password-hint password-error">/,
    )
    expect(short.body).toContain('value="carol"')
    const common = await post(t.app, '/signup', {
      form: await openForm(t.app, '/signup'),
      fields: { username: 'carol', password: 'password123' },
    })
    expect(common.body).toContain('Password is too common; choose a less predictable one')
    const taken = await post(t.app, '/signup', {
      form: await openForm(t.app, '/signup'),
      fields: { username: 'BOB', password: PASSWORD },
    })
    expect(taken.statusCode).toBe(409)
    expect(taken.body).toContain('Username already registered. Choose another, or sign in.')

    const ok = await post(t.app, '/signup', {
      form: await openForm(t.app, '/signup'),
      fields: { username: 'carol', password: PASSWORD, return_to: '/after-signup' },
    })
    expect(ok.statusCode).toBe(303)
    expect(ok.headers.location).toBe('/after-signup')
    expect(await servicesFor(t).browserSessions.resolve(sessionCookieOf(ok))).toMatchObject({
      username: 'carol',
      amr: ['pwd'],
    })
    // The account is a real one: the password grant knows it.
    expect((await logIn(t.app, 'carol')).statusCode).toBe(200)
  })

  it('shows who is signed in at GET /login without return_to, and the form with one', async () => {
    const res = await pageLogin(t.app, { username: 'bob', password: PASSWORD })
    expect(res.headers.location).toBe('/login')
    const value = sessionCookieOf(res) ?? ''
    const cookie = `authgate_session=${value}`
    const page = await t.app.inject({ url: '/login', headers: { cookie } })
    expect(page.body).toContain('You are signed in as <strong>bob</strong>.')
    const form = await t.app.inject({ url: '/login?return_to=/next', headers: { cookie } })
    expect(form.body).toContain('<h1>Sign in</h1>')
    // An ended session is no session.
    expect(await servicesFor(t).browserSessions.end(value, 'logout')).toBe(1)
    expect((await t.app.inject({ url: '/login', headers: { cookie } })).body).toContain('<h1>Sign in</h1>')
  })

  it('signing in again while signed in ends the previous browser session; a refused attempt ends nothing (OWASP ASVS 5.0 7.2.4)', async () => {
    await signUp(t.app, 'dana')
    const resolve = (value: string | undefined) => servicesFor(t).browserSessions.resolve(value)
    const ended = async (value: string) =>
      (await browserRows(t)).find((r) => r.secret_hash === sha256Hex(value))?.revoked_reason
    const first = sessionCookieOf(await pageLogin(t.app, { username: 'bob', password: PASSWORD })) ?? ''
    expect(await resolve(first)).toMatchObject({ username: 'bob' })

    // A wrong password, a missing one, a forged post: the session the browser holds stays.
    const wrong = await postWithSession(t.app, '/login', first, { username: 'bob', password: 'not it' })
    expect(wrong.statusCode).toBe(400)
    expect(
      (await postWithSession(t.app, '/login', first, { username: 'bob', password: '' })).statusCode,
    ).toBe(422)
    const forged = await post(t.app, '/login', {
      fields: { username: 'bob', password: PASSWORD },
      headers: { cookie: `authgate_session=${first}` },
    })
    expect(forged.statusCode).toBe(403)
    expect(await resolve(first)).toMatchObject({ username: 'bob' })

    // The same user again: a new cookie, and the old one names nothing any more.
    const again = await postWithSession(t.app, '/login', first, { username: 'bob', password: PASSWORD })
    expect(again.statusCode).toBe(303)
    const second = sessionCookieOf(again) ?? ''
    expect(second).not.toBe(first)
    expect(await resolve(second)).toMatchObject({ username: 'bob' })
    expect(await resolve(first)).toBeUndefined()
    expect(await ended(first)).toBe('logout')

    // Another user on the same browser: bob's session ends, GET /login shows dana.
    const other = await postWithSession(t.app, '/login', second, { username: 'dana', password: PASSWORD })
    const third = sessionCookieOf(other) ?? ''
    expect(await resolve(second)).toBeUndefined()
    const page = await t.app.inject({ url: '/login', headers: { cookie: `authgate_session=${second}` } })
    expect(page.body).toContain('<h1>Sign in</h1>')
    expect(
      (await t.app.inject({ url: '/login', headers: { cookie: `authgate_session=${third}` } })).body,
    ).toContain('You are signed in as <strong>dana</strong>.')

    // Signing up is signing in: it ends the session the browser held too.
    const signedUp = await postWithSession(t.app, '/signup', third, { username: 'erin', password: PASSWORD })
    expect(signedUp.statusCode).toBe(303)
    expect(await resolve(sessionCookieOf(signedUp))).toMatchObject({ username: 'erin' })
    expect(await resolve(third)).toBeUndefined()

    // A cookie that names no session (ended, unknown) is no obstacle.
    for (const stale of [first, randomToken()])
      expect(
        (await postWithSession(t.app, '/login', stale, { username: 'bob', password: PASSWORD })).statusCode,
      ).toBe(303)
  })

  // Each way the user's password changes, by its new password.
  const CHANGES: [string, (name: string) => Promise<string>][] = [
    [
      'POST /auth/password',
      async (name) => {
        const res = await t.app.inject({
          method: 'POST',
          url: '/auth/password',
          headers: bearer(await tokenFor(t.app, name)),
          payload: { current_password: PASSWORD, new_password: 'a changed passphrase 1' },
        })
        expect(res.statusCode).toBe(204)
        return 'a changed passphrase 1'
      },
    ],
    [
      'an operator’s authgate user set-password',
      async (name) => {
        const env = { DATABASE_URL: t.dbUrl, ...TEST_REDIS_ENV }
        const run = await runCli(['user', 'set-password', name], env, 'an operator passphrase 2\n')
        expect(run).toMatchObject({ code: 0, stderr: '' })
        return 'an operator passphrase 2'
      },
    ],
  ]

  it.each(CHANGES.map(([how, change], i) => ({ how, change, name: `changer-${i}` })))(
    'after $how, the page’s browser session is over: GET /login shows the form, not who was signed in',
    async ({ change, name }) => {
      expect((await signUp(t.app, name)).statusCode).toBe(201)
      const value = sessionCookieOf(await pageLogin(t.app, { username: name, password: PASSWORD })) ?? ''
      const cookie = `authgate_session=${value}`
      const signedIn = await t.app.inject({ url: '/login', headers: { cookie } })
      expect(signedIn.body).toContain(`You are signed in as <strong>${name}</strong>.`)
      const started = await servicesFor(t).browserSessions.resolve(value)

      const password = await change(name)
      expect(await servicesFor(t).browserSessions.resolve(value)).toBeUndefined()
      const rows = await browserRows(t)
      expect(rows.find((r) => r.id === started?.id)).toMatchObject({ revoked_reason: 'password_changed' })
      const page = await t.app.inject({ url: '/login', headers: { cookie } })
      expect(page.statusCode).toBe(200)
      expect(page.body).toContain('<h1>Sign in</h1>')
      expect(page.body).not.toContain('You are signed in')
      // The old password no longer signs in through the page; the new one does.
      expect((await pageLogin(t.app, { username: name, password: PASSWORD })).statusCode).toBe(400)
      const again = await pageLogin(t.app, { username: name, password })
      expect(again.statusCode).toBe(303)
      expect(await servicesFor(t).browserSessions.resolve(sessionCookieOf(again))).toMatchObject({
        username: name,
      })
    },
  )
})

describe('the error page', () => {
  let t: TestApp
  let failure: Error = new Error('boom')
  let failing: MockInstance
  beforeAll(async () => {
    t = await buildTestApp()
    // The app's own browser sessions, made to fail as told (a healthy database cannot be told
    // what to throw): the page must say what went wrong, not what broke.
    failing = vi.spyOn(servicesFor(t).browserSessions, 'resolve').mockImplementation(async () => {
      throw failure
    })
  })
  afterAll(async () => {
    await t.close()
  })

  it('answers a failure with a 500 page in words, without the internal message', async () => {
    failure = new Error('SELECT secret_column FROM internal_table failed at db.ts:42')
    const res = await t.app.inject({ url: '/login' })
    expect(res.statusCode).toBe(500)
    expectPageHeaders(res)
    expect(res.body).toContain('<h1>Something went wrong</h1>')
    expect(res.body).toContain('Something went wrong on our side. Try again later.')
    expect(res.body).not.toMatch(/secret_column|internal_table|db\.ts|stack/)
  })

  it('answers an unreachable database with a 503 page and Retry-After', async () => {
    failure = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' })
    const res = await t.app.inject({ url: '/login' })
    expect(res.statusCode).toBe(503)
    expect(res.headers['retry-after']).toBe('5')
    expectPageHeaders(res)
    expect(res.body).toContain('<h1>Temporarily unavailable</h1>')
    expect(res.body).not.toContain('ECONNREFUSED')
  })

  it('answers a body over the limit with a 413 page', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/login',
      headers: { 'content-type': FORM },
      payload: `username=${'x'.repeat(20_000)}`,
    })
    expect(res.statusCode).toBe(413)
    expectPageHeaders(res)
    expect(res.body).toContain('<h1>Form too large</h1>')
  })

  it('answers a real database error (the sessions table gone) with the same 500 page, the SQL error kept out', async () => {
    failing.mockRestore()
    await inspect(t.dbUrl).schema.alterTable('authgate_sessions').renameTo('authgate_sessions_gone').execute()
    // A cookie, so the page asks the database which session it names.
    const res = await t.app.inject({
      url: '/login',
      headers: { cookie: `authgate_session=${randomToken()}` },
    })
    expect(res.statusCode).toBe(500)
    expectPageHeaders(res)
    expect(res.body).toContain('Something went wrong on our side. Try again later.')
    expect(res.body).not.toMatch(/authgate_sessions|no such table|does not exist|SQLITE|select/i)
  })
})

describe('behind https (PUBLIC_URL https://…)', () => {
  let t: TestApp
  beforeAll(async () => {
    t = await buildTestApp({ PUBLIC_URL: 'https://auth.example.com' })
    await signUp(t.app, 'dave')
  })
  afterAll(async () => {
    await t.close()
  })

  it('names its cookies __Host- and marks them Secure; the origin is PUBLIC_URL’s', async () => {
    const page = await t.app.inject({ url: '/login' })
    const csrf = page.cookies.find((c) => c.name === '__Host-authgate_csrf')
    expect(csrf).toMatchObject({ path: '/', httpOnly: true, secure: true, sameSite: 'Lax' })
    expect(csrf?.domain).toBeUndefined()
    const form = {
      cookie: `__Host-authgate_csrf=${csrf?.value}`,
      token: /name="csrf_token" value="([^"]+)"/.exec(page.body)?.[1] ?? '',
    }
    // A plain-named cookie does not stand in for the __Host- one.
    const plain = await post(t.app, '/login', {
      form: { ...form, cookie: `authgate_csrf=${csrf?.value}` },
      fields: { username: 'dave', password: PASSWORD },
    })
    expect(plain.statusCode).toBe(403)
    const res = await post(t.app, '/login', {
      form,
      fields: { username: 'dave', password: PASSWORD },
      headers: { origin: 'https://auth.example.com' },
    })
    expect(res.statusCode).toBe(303)
    expect(res.cookies.find((c) => c.name === '__Host-authgate_session')).toMatchObject({
      path: '/',
      httpOnly: true,
      secure: true,
      sameSite: 'Lax',
    })
  })
})

describe('timing', () => {
  let t: TestApp
  let verifies = 0
  beforeAll(async () => {
    // The production hasher: the point is the real cost of a verify. Counted, to show the work.
    const hasher = createPasswordHasher()
    const counted = {
      ...hasher,
      verify: (stored: string, password: string) => {
        verifies++
        return hasher.verify(stored, password)
      },
    }
    t = await buildTestApp({}, { hasher: counted })
    await signUp(t.app, 'known-page-user')
  })
  afterAll(async () => {
    await t.close()
  })

  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0

  async function timed(username: string): Promise<{ ms: number; verifies: number }> {
    const form = await openForm(t.app)
    const before = verifies
    const start = process.hrtime.bigint()
    const res = await post(t.app, '/login', { form, fields: { username, password: `${PASSWORD}-wrong` } })
    const ms = Number(process.hrtime.bigint() - start) / 1e6
    expect(res.statusCode).toBe(400)
    return { ms, verifies: verifies - before }
  }

  it('answers an unknown user and a wrong password through the page with the same work, in the same time', async () => {
    const known: number[] = []
    const unknown: number[] = []
    // Interleaved, so machine noise hits both series alike.
    for (let i = 0; i < 25; i++) {
      const k = await timed('known-page-user')
      const u = await timed(`ghost-page-${i}`)
      // One argon2id verify each: the unknown user's against a dummy hash.
      expect([k.verifies, u.verifies]).toEqual([1, 1])
      known.push(k.ms)
      unknown.push(u.ms)
    }
    const [k, u] = [median(known), median(unknown)]
    // Without the dummy verify an unknown user answers in well under a millisecond, against
    // several milliseconds for a real argon2id verify: a ratio far outside this band.
    expect(u / k).toBeGreaterThan(0.6)
    expect(u / k).toBeLessThan(1.6)
    expect(Math.min(k, u)).toBeGreaterThan(2)
  })
})
