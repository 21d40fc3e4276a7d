// The seed tutorial's Swagger UI journey in a real browser, over real HTTP: sign up with
// "Try it out", log in with the Authorize button (OAuth2 password flow, relative tokenUrl
// "auth/token"), then call GET /. Every asset must come from the server itself: no CDN.
import type { Browser, Locator, Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ErrorCode } from '../../src/domain/errors.js'
import { buildTestApp, type TestApp } from '../helpers/app.js'
import { hasChromium as chromiumInstalled, launchChromium, watchProblems } from '../helpers/browser.js'
import { logIn, signUp } from '../helpers/http.js'

const hasChromium = chromiumInstalled()

const USERNAME = 'testuser'
// Not on the common-password list (the seed's "testpassword" is, and is refused).
const PASSWORD = 'plum kettle orbit 7 swagger'

/** Starts the real server on an ephemeral port over a fresh SQLite file. */
async function startServer(): Promise<{ t: TestApp; origin: string }> {
  const t = await buildTestApp()
  await t.app.listen({ port: 0, host: '127.0.0.1' })
  const address = t.app.server.address()
  if (address === null || typeof address === 'string') throw new Error('no TCP address')
  return { t, origin: `http://127.0.0.1:${address.port}` }
}

/** The operation block for `method path`, e.g. ('post', '/auth/') but not '/auth/token'. */
function operation(page: Page, method: string, path: string): Locator {
  return page
    .locator(`.opblock-${method}`)
    .filter({ has: page.locator(`.opblock-summary-path[data-path="${path}"]`) })
}

/** Expands the operation and clicks "Try it out". */
async function tryItOut(page: Page, method: string, path: string): Promise<Locator> {
  const op = operation(page, method, path)
  await op.locator('.opblock-summary').first().click()
  await op.getByRole('button', { name: 'Try it out' }).click()
  return op
}

/** Clicks Execute and reads the live response's status code and body. */
async function execute(op: Locator): Promise<{ status: string | undefined; body: unknown }> {
  await op.getByRole('button', { name: 'Execute' }).click()
  const live = op.locator('.live-responses-table .response').first()
  await live.waitFor()
  return {
    status: (await live.locator('.response-col_status').textContent())?.trim(),
    body: JSON.parse(
      (await live.locator('.response-col_description .microlight').first().textContent()) ?? '',
    ),
  }
}

describe.skipIf(!hasChromium)('Swagger UI at /docs, in Chromium', () => {
  let browser: Browser

  beforeAll(async () => {
    browser = await launchChromium(
      [],
      [
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    )
  })

  afterAll(async () => {
    await browser?.close()
  })

  // /docs/ matters: Swagger UI resolves the relative tokenUrl against the page, so from /docs/
  // it would post to /docs/auth/token; the server redirects /docs/ to /docs as FastAPI does.
  it.each(['/docs', '/docs/'])(
    'from %s: sign up, Authorize (password flow), GET / greets the user',
    {
      timeout: 90_000,
    },
    async (entry) => {
      const { t, origin } = await startServer()
      const context = await browser.newContext()
      try {
        const page = await context.newPage()
        page.setDefaultTimeout(15_000)
        const requested: string[] = []
        page.on('request', (request) => {
          requested.push(request.url())
        })
        const problems = await watchProblems(page)

        await page.goto(`${origin}${entry}`)
        expect(page.url()).toBe(`${origin}/docs`)
        await operation(page, 'post', '/auth/').waitFor()

        // (1) POST /auth/: Try it out, the JSON body, Execute -> 201.
        const signUp = await tryItOut(page, 'post', '/auth/')
        await signUp
          .locator('textarea.body-param__text')
          .fill(JSON.stringify({ username: USERNAME, password: PASSWORD }))
        expect(await execute(signUp)).toEqual({
          status: '201',
          body: { message: 'User created successfully' },
        })

        // (2) The top Authorize button opens the OAuth2 password flow dialog.
        await page.locator('.auth-wrapper button.authorize').click()
        const dialog = page.locator('.modal-ux')
        await expect
          .poll(async () => (await dialog.locator('code').first().textContent())?.trim())
          .toBe('auth/token')
        // The dialog lists every security scheme (ClientAccessToken too): the password flow's own box.
        const password = dialog.locator('.auth-container').filter({ hasText: 'OAuth2PasswordBearer' })
        await dialog.locator('#oauth_username').fill(USERNAME)
        await dialog.locator('#oauth_password').fill(PASSWORD)
        // The buttons' accessible names are aria-labels ("Apply given OAuth2 credentials",
        // "Remove authorization"); match what the user reads instead.
        const tokenResponse = page.waitForResponse(
          (res) => res.request().method() === 'POST' && res.url().endsWith('/token'),
        )
        await password.locator('.auth-btn-wrapper button.authorize', { hasText: 'Authorize' }).click()
        const token = await tokenResponse
        expect(token.url()).toBe(`${origin}/auth/token`)
        expect(token.status()).toBe(200)
        await password.locator('.auth-btn-wrapper button.authorize', { hasText: 'Logout' }).waitFor()
        await password.getByText('Authorized', { exact: true }).waitFor()
        await password.getByRole('button', { name: 'Close' }).click()
        await dialog.waitFor({ state: 'detached' })

        // (3) GET /: Try it out, Execute -> 200 and the greeting, sent with the bearer token.
        const greet = await tryItOut(page, 'get', '/')
        const greetRequest = page.waitForRequest(
          (req) => req.method() === 'GET' && req.url() === `${origin}/`,
        )
        expect(await execute(greet)).toEqual({
          status: '200',
          body: { message: `Hello, ${USERNAME} with ID: 1!` },
        })
        expect((await greetRequest).headers().authorization).toMatch(/^Bearer [\w-]+\.[\w-]+\.[\w-]+$/)

        await page.screenshot({ path: `/tmp/authgate-docs${entry.replaceAll('/', '-')}.png`, fullPage: true })

        // No CDN, no phoning home: every request the page made went to this server.
        expect(requested).toContain(`${origin}/docs/static/swagger-ui-bundle.js`)
        expect(requested.filter((url) => !url.startsWith(`${origin}/`))).toEqual([])
        // No console error, exception or CSP violation (the Swagger logo's inline <style> was one).
        expect(problems).toEqual([])
      } finally {
        await context.close()
        await t.close()
      }
    },
  )
})

describe.skipIf(!hasChromium)('the /docs page, in Chromium', () => {
  let browser: Browser
  let t: TestApp
  let origin: string

  beforeAll(async () => {
    browser = await launchChromium()
    ;({ t, origin } = await startServer())
  })

  afterAll(async () => {
    await browser?.close()
    await t?.close()
  })

  // Swagger UI's resolveUrl appended "/./json" to the whole href: from /docs?x=1 it fetched
  // "/docs?x=1/./json", the HTML page, as the spec, and showed no operation.
  it.each(['/docs', '/docs?x=1', '/docs/?x', '/docs#/auth'])(
    '%s shows the operations, AuthGate in the top bar and /openapi.json, and no console error',
    { timeout: 60_000 },
    async (entry) => {
      const context = await browser.newContext()
      try {
        const page = await context.newPage()
        page.setDefaultTimeout(15_000)
        const problems = await watchProblems(page)
        const specRequests: string[] = []
        page.on('request', (request) => {
          if (request.resourceType() === 'fetch') specRequests.push(new URL(request.url()).pathname)
        })
        await page.goto(`${origin}${entry}`)
        await operation(page, 'post', '/auth/').waitFor()
        await operation(page, 'get', '/').waitFor()
        expect(await page.title()).toBe('AuthGate API docs')
        expect((await page.locator('.topbar .authgate-logo').textContent())?.trim()).toBe('AuthGate')
        expect(await page.locator('.topbar .download-url-input').inputValue()).toBe('/openapi.json')
        expect(specRequests).toEqual(['/openapi.json'])

        // The sign-up example is one a reader can send as it is: not the README's user (a 409 for
        // anyone who followed it), and no Swagger filler such as "additionalProp1".
        const signUp = await tryItOut(page, 'post', '/auth/')
        const example = JSON.parse(await signUp.locator('textarea.body-param__text').inputValue())
        expect(Object.keys(example).sort()).toEqual(['password', 'username'])
        expect(example.username).not.toBe('testuser')
        expect(problems).toEqual([])
      } finally {
        await context.close()
      }
    },
  )

  it('Authorize with a wrong password says why, then works with the right one', {
    timeout: 60_000,
  }, async () => {
    const username = 'docs-authorize'
    expect((await signUp(origin, username, PASSWORD)).status).toBe(201)
    const context = await browser.newContext()
    try {
      const page = await context.newPage()
      page.setDefaultTimeout(15_000)
      const problems = await watchProblems(page)
      await page.goto(`${origin}/docs`)
      await operation(page, 'get', '/').waitFor()
      await page.locator('.auth-wrapper button.authorize').click()
      const dialog = page.locator('.modal-ux')
      // The dialog lists every security scheme (ClientAccessToken too): the password flow's own box.
      const password = dialog.locator('.auth-container').filter({ hasText: 'OAuth2PasswordBearer' })
      const authorize = password.locator('.auth-btn-wrapper button.authorize', { hasText: 'Authorize' })

      await dialog.locator('#oauth_username').fill(username)
      await dialog.locator('#oauth_password').fill('not the password')
      const refused = page.waitForResponse((res) => res.url() === `${origin}/auth/token`)
      await authorize.click()
      expect((await refused).status()).toBe(401)
      const error = dialog.locator('.errors')
      await expect
        .poll(async () => (await error.textContent())?.trim())
        .toContain('Incorrect username or password (401)')
      expect(await error.textContent()).not.toContain('Error: Unauthorized')
      // Chromium logs every failed fetch; that one is the only problem the page reports.
      expect(problems).toEqual([
        `Failed to load resource: the server responded with a status of 401 (Unauthorized) @ ${origin}/auth/token`,
      ])

      await dialog.locator('#oauth_password').fill(PASSWORD)
      const accepted = page.waitForResponse((res) => res.url() === `${origin}/auth/token`)
      await authorize.click()
      expect((await accepted).status()).toBe(200)
      await password.getByText('Authorized', { exact: true }).waitFor()
      expect(problems).toHaveLength(1)
    } finally {
      await context.close()
    }
  })
})

describe('the docs routes, without a browser', () => {
  let t: TestApp

  beforeAll(async () => {
    t = await buildTestApp()
  })

  afterAll(async () => {
    await t.close()
  })

  // Everything that reads the database can answer 503 (http/plugins/errors.ts): all but GET / (a
  // token check in memory), /healthz and the well-known documents (keys in memory).
  const NO_DATABASE = new Set(['GET /', 'GET /healthz', 'GET /.well-known/jwks.json'])
  const THROTTLED = [
    'POST /auth/',
    'POST /auth/token',
    'POST /auth/password',
    'DELETE /auth/me',
    'POST /auth/mfa/totp',
    'POST /auth/mfa/totp/confirm',
    'DELETE /auth/mfa/totp',
  ]
  type Media = {
    schema: { $ref?: string }
    examples?: Record<string, { value: { detail: unknown; code: string } }>
  }
  type Answer = { description: string; headers?: Record<string, unknown>; content?: Record<string, Media> }

  async function operations(): Promise<[string, Record<string, Answer>][]> {
    const spec = (await t.app.inject({ url: '/openapi.json' })).json()
    return Object.entries(
      spec.paths as Record<string, Record<string, { responses: Record<string, Answer> }>>,
    ).flatMap(([path, methods]) =>
      Object.entries(methods).map(([method, op]): [string, Record<string, Answer>] => [
        `${method.toUpperCase()} ${path}`,
        op.responses,
      ]),
    )
  }

  it('documents 503 on every route that reads the database, and 429 on every throttled one, with Retry-After', async () => {
    const ops = await operations()
    expect(ops.length).toBeGreaterThan(10)
    for (const [op, responses] of ops) {
      const expected = NO_DATABASE.has(op) || op.includes('/.well-known/') ? undefined : 'service_unavailable'
      expect([op, Object.keys(responses['503']?.content?.['application/json']?.examples ?? {})[0]]).toEqual([
        op,
        expected,
      ])
      // /readyz answers a probe, not a client: no Retry-After there.
      if (expected && op !== 'GET /readyz')
        expect([op, Object.keys(responses['503']?.headers ?? {})]).toEqual([op, ['retry-after']])
    }
    const throttled = ops.filter(([, responses]) => responses['429'] !== undefined).map(([op]) => op)
    expect(throttled.sort()).toEqual([...THROTTLED].sort())
    for (const [op, responses] of ops.filter(([o]) => THROTTLED.includes(o))) {
      expect([
        op,
        responses['429']?.content?.['application/json']?.examples?.too_many_requests?.value,
      ]).toEqual([op, { detail: 'Too many attempts; try again later', code: 'too_many_requests' }])
      expect([op, Object.keys(responses['429']?.headers ?? {})]).toEqual([op, ['retry-after']])
    }
  })

  it('gives every error answer a real example with a registered code, never "string"', async () => {
    const codes = new Set(Object.values(ErrorCode))
    let examples = 0
    for (const [op, responses] of await operations()) {
      for (const [status, answer] of Object.entries(responses)) {
        if (Number(status) < 400) continue
        const media = answer.content?.['application/json']
        if (media?.schema.$ref === '#/components/schemas/ValidationErrorResponse') continue
        expect([op, status, Object.keys(media?.examples ?? {}).length > 0]).toEqual([op, status, true])
        for (const { value } of Object.values(media?.examples ?? {})) {
          examples++
          expect([op, status, codes.has(value.code as ErrorCode)]).toEqual([op, status, true])
          expect(
            typeof value.detail === 'string' && value.detail !== 'string' && value.detail !== value.code,
          ).toBe(true)
        }
      }
    }
    expect(examples).toBeGreaterThan(20)
  })

  it('answers as its examples say (a wrong login, no token, a taken name)', async () => {
    const responses = Object.fromEntries(await operations())
    const example = (op: string, status: string, code: string) =>
      responses[op]?.[status]?.content?.['application/json']?.examples?.[code]?.value
    const wrong = await logIn(t.app, 'nobody', 'whatever')
    expect(wrong.json()).toEqual(example('POST /auth/token', '401', 'invalid_credentials'))
    expect((await t.app.inject({ url: '/' })).json()).toEqual(example('GET /', '401', 'not_authenticated'))
    expect((await signUp(t.app, 'twice', PASSWORD)).statusCode).toBe(201)
    expect((await signUp(t.app, 'twice', PASSWORD)).json()).toEqual(
      example('POST /auth/', '409', 'username_taken'),
    )
  })

  it('gives sign-up a real example (not the README user, no additionalProp1) and still ignores extra fields', async () => {
    const spec = (await t.app.inject({ url: '/openapi.json' })).json()
    const media = spec.paths['/auth/'].post.requestBody.content['application/json']
    expect(media.example).toEqual({ username: expect.any(String), password: expect.any(String) })
    expect(media.example.username).not.toBe('testuser')
    expect(media.schema.additionalProperties).toBeUndefined()
    // The example works as it is, once.
    expect((await t.app.inject({ method: 'POST', url: '/auth/', payload: media.example })).statusCode).toBe(
      201,
    )
    // The seed's pydantic model ignored unknown fields; so does this (the drop-in promise).
    const extra = { username: 'extra-fields', password: PASSWORD, email: 'x@example.com', full_name: 'X' }
    expect((await t.app.inject({ method: 'POST', url: '/auth/', payload: extra })).statusCode).toBe(201)
  })

  it('serves the same spec at /openapi.json and /docs/json', async () => {
    const a = await t.app.inject({ url: '/openapi.json' })
    const b = await t.app.inject({ url: '/docs/json' })
    expect(a.statusCode).toBe(200)
    expect(b.json()).toEqual(a.json())
  })

  it("keeps the seed's relative tokenUrl in /openapi.json", async () => {
    const spec = (await t.app.inject({ url: '/openapi.json' })).json()
    expect(spec.components.securitySchemes.OAuth2PasswordBearer).toEqual({
      type: 'oauth2',
      flows: { password: { tokenUrl: 'auth/token', scopes: {} } },
    })
  })

  it('redirects /docs/ to /docs (keeping the query), so "auth/token" resolves to /auth/token', async () => {
    const res = await t.app.inject({ url: '/docs/' })
    expect(res.statusCode).toBe(307)
    expect(res.headers.location).toBe('/docs')
    expect((await t.app.inject({ url: '/docs/?x=1' })).headers.location).toBe('/docs?x=1')
    const page = await t.app.inject({ url: '/docs' })
    expect(page.statusCode).toBe(200)
    expect(page.headers['content-type']).toMatch(/^text\/html/)
    expect((await t.app.inject({ url: '/docs/static/swagger-initializer.js' })).statusCode).toBe(200)
  })
})
