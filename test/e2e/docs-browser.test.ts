// The seed tutorial's Swagger UI journey in a real browser, over real HTTP: sign up with
// "Try it out", log in with the Authorize button (OAuth2 password flow, relative tokenUrl
// "auth/token"), then call GET /. Every asset must come from the server itself: no CDN.
import { existsSync } from 'node:fs'
import { type Browser, chromium, type Locator, type Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildTestApp, requirePrerequisite, type TestApp } from '../helpers/app.js'

const CHROMIUM = '/usr/bin/chromium'
const hasChromium = requirePrerequisite(existsSync(CHROMIUM), `Chromium (${CHROMIUM})`)

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
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    })
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
        const pageErrors: string[] = []
        page.on('pageerror', (err) => {
          pageErrors.push(err.message)
        })

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
        await dialog.locator('#oauth_username').fill(USERNAME)
        await dialog.locator('#oauth_password').fill(PASSWORD)
        // The buttons' accessible names are aria-labels ("Apply given OAuth2 credentials",
        // "Remove authorization"); match what the user reads instead.
        const tokenResponse = page.waitForResponse(
          (res) => res.request().method() === 'POST' && res.url().endsWith('/token'),
        )
        await dialog.locator('.auth-btn-wrapper button.authorize', { hasText: 'Authorize' }).click()
        const token = await tokenResponse
        expect(token.url()).toBe(`${origin}/auth/token`)
        expect(token.status()).toBe(200)
        await dialog.locator('.auth-btn-wrapper button.authorize', { hasText: 'Logout' }).waitFor()
        await dialog.getByText('Authorized', { exact: true }).waitFor()
        await dialog.getByRole('button', { name: 'Close' }).click()
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
        expect(pageErrors).toEqual([])
      } finally {
        await context.close()
        await t.close()
      }
    },
  )
})

describe('the docs routes, without a browser', () => {
  let t: TestApp

  beforeAll(async () => {
    t = await buildTestApp()
  })

  afterAll(async () => {
    await t.close()
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
