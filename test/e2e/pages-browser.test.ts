// The login and sign-up pages as people use them, in Chromium over real HTTP: forms filled by
// their labels, errors announced and focused, keyboard-only navigation, a phone-sized viewport,
// framing refused, no console error and no CSP violation anywhere. And the case that decided the
// CSP: a login post whose redirects end on another origin (/authorize on to a client's
// redirect_uri), which `form-action 'self'` would block in Chromium.
import { createServer, request as httpRequest, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Browser, BrowserContext, Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { servicesOf } from '../../src/app.js'
import { sha256Hex } from '../../src/lib/crypto.js'
import { buildTestApp, inspect, PASSWORD, type TestApp } from '../helpers/app.js'
import {
  hasChromium as chromiumInstalled,
  launchChromium,
  withPage as openPage,
  refusedForm,
} from '../helpers/browser.js'
import { signUp } from '../helpers/http.js'

const hasChromium = chromiumInstalled()

// other.test is another site than 127.0.0.1, where AuthGate is reached; both are this machine.

/**
 * The line Chromium logs for a document answered with an error status: the pages answer a refused
 * form with its status (400, 422, 429...), and Chromium reports every one. The only console
 * error a test allows, and only where it posted a form that must be refused.
 */

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return (server.address() as AddressInfo).port
}

/** Another site's pages: one that frames AuthGate's login page, and a client's landing page. */
function otherSite(authgate: () => string): Server {
  return createServer((request, response) => {
    response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' })
    if (request.url === '/frame') {
      response.end(`<!doctype html><title>framing</title><iframe src="${authgate()}/login"></iframe>`)
    } else {
      response.end('<!doctype html><title>client landing</title><h1>Welcome back to the client</h1>')
    }
  })
}

/**
 * A front for AuthGate, as /authorize will be: everything is passed through, Host and all, but
 * GET /bounce answers a 302 to another origin (a client's redirect_uri). With `strict`, it adds
 * `form-action 'self'` to the pages' CSP: the control that shows why AuthGate sends none.
 */
function front(authgatePort: () => number, landing: () => string, options: { strict: boolean }): Server {
  return createServer((request, response) => {
    if (request.url === '/bounce') {
      response.writeHead(302, { location: landing() })
      response.end()
      return
    }
    const upstream = httpRequest(
      {
        host: '127.0.0.1',
        port: authgatePort(),
        path: request.url,
        method: request.method,
        headers: request.headers,
      },
      (answer) => {
        const headers = { ...answer.headers }
        if (options.strict && headers['content-security-policy'])
          headers['content-security-policy'] += ";form-action 'self'"
        response.writeHead(answer.statusCode ?? 502, headers)
        answer.pipe(response)
      },
    )
    request.pipe(upstream)
  })
}

const close = (server: Server | undefined) =>
  new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()))

describe.skipIf(!hasChromium)('the login and sign-up pages, in Chromium', () => {
  let browser: Browser
  let t: TestApp
  let origin: string
  let authgatePort: number
  let other: Server
  let otherOrigin: string

  beforeAll(async () => {
    browser = await launchChromium(['other.test'])
    t = await buildTestApp()
    await t.app.listen({ port: 0, host: '127.0.0.1' })
    authgatePort = (t.app.server.address() as AddressInfo).port
    origin = `http://127.0.0.1:${authgatePort}`
    other = otherSite(() => origin)
    otherOrigin = `http://other.test:${await listen(other)}`
    await signUp(t.app, 'page-user')
  })

  afterAll(async () => {
    await browser?.close()
    await close(other)
    await t?.close()
  })

  /** A fresh context and page that record every problem; closed after `run`. */
  const withPage = (
    run: (page: Page, problems: string[], context: BrowserContext) => Promise<void>,
    options: Parameters<Browser['newContext']>[0] = {},
  ) => openPage(browser, run, options)

  /** The browser session a cookie names, as the app's own service reads it back. */
  const resolve = (cookie: string | undefined) => servicesOf(t.app)?.browserSessions.resolve(cookie)

  // Strings, evaluated in the page: this project's TypeScript has no DOM types.
  const focused = (page: Page) =>
    page.evaluate<string>(
      '(() => { const el = document.activeElement; return el.id || el.textContent.trim() || el.tagName })()',
    )

  it('a wrong password: the error is announced, focused and tied to the fields; then the right one signs in and lands on return_to', {
    timeout: 60_000,
  }, async () => {
    await withPage(async (page, problems, context) => {
      const returnTo = '/login?welcome=1'
      await page.goto(`${origin}/login?return_to=${encodeURIComponent(returnTo)}`)
      expect(await page.title()).toBe('Sign in – AuthGate')
      await page.getByLabel('Username').fill('page-user')
      await page.getByLabel('Password').fill('not the password')
      await page.getByRole('button', { name: 'Sign in' }).click()
      await page.waitForURL(`${origin}/login`)

      const alert = page.getByRole('alert')
      await expect.poll(() => alert.textContent()).toContain('Incorrect username or password.')
      expect(await page.title()).toBe('Error: Sign in – AuthGate')
      expect(await focused(page)).toBe('error-summary')
      for (const label of ['Username', 'Password']) {
        const input = page.getByLabel(label)
        expect(await input.getAttribute('aria-invalid')).toBe('true')
        expect(await input.getAttribute('aria-describedby')).toBe('form-error')
      }
      expect(await page.getByLabel('Username').inputValue()).toBe('page-user')
      expect(await page.getByLabel('Password').inputValue()).toBe('')
      expect(await context.cookies(origin)).not.toContainEqual(
        expect.objectContaining({ name: 'authgate_session' }),
      )

      await page.getByLabel('Password').fill(PASSWORD)
      await page.getByRole('button', { name: 'Sign in' }).click()
      await page.waitForURL(`${origin}${returnTo}`)
      await page.getByText('You are signed in as page-user.').waitFor()
      const session = (await context.cookies(origin)).find((c) => c.name === 'authgate_session')
      expect(session).toMatchObject({ httpOnly: true, sameSite: 'Lax', path: '/', secure: false })
      const started = await resolve(session?.value)
      expect(started).toMatchObject({ username: 'page-user', amr: ['pwd'] })
      // Stored with the browser's own facts, the cookie only as its hash.
      const row = await inspect(t.dbUrl)
        .selectFrom('authgate_sessions')
        .selectAll()
        .where('id', '=', started?.id ?? '')
        .executeTakeFirst()
      expect(row).toMatchObject({
        kind: 'browser',
        secret_hash: sha256Hex(session?.value ?? ''),
        ip: '127.0.0.1',
        user_agent: await page.evaluate<string>('navigator.userAgent'),
        revoked_at: null,
      })
      expect(problems).toEqual([refusedForm('400 (Bad Request)', `${origin}/login`)])
    })
  })

  it('signing in again in the same browser: a new cookie, and the session the old one named has ended', {
    timeout: 60_000,
  }, async () => {
    await withPage(async (page, problems, context) => {
      const session = async () =>
        (await context.cookies(origin)).find((c) => c.name === 'authgate_session')?.value
      const signIn = async (url: string) => {
        await page.goto(url)
        await page.getByLabel('Username').fill('page-user')
        await page.getByLabel('Password').fill(PASSWORD)
        await page.getByRole('button', { name: 'Sign in' }).click()
        await page.getByText('You are signed in as page-user.').waitFor()
      }
      await signIn(`${origin}/login`)
      const first = await session()
      expect(await resolve(first)).toMatchObject({ username: 'page-user' })
      // A return_to shows the form to a signed-in browser (as /authorize with prompt=login will).
      await signIn(`${origin}/login?return_to=${encodeURIComponent('/login?again=1')}`)
      const second = await session()
      expect(second).not.toBe(first)
      expect(await resolve(second)).toMatchObject({ username: 'page-user' })
      expect(await resolve(first)).toBeUndefined()
      expect(problems).toEqual([])
    })
  })

  it('sign-up from the login page’s link keeps return_to, shows the policy’s message on its field, then signs in', {
    timeout: 60_000,
  }, async () => {
    await withPage(async (page, problems, context) => {
      const returnTo = '/login?from=signup'
      await page.goto(`${origin}/login?return_to=${encodeURIComponent(returnTo)}`)
      await page.getByRole('link', { name: 'Create an account' }).click()
      await page.waitForURL(`${origin}/signup?return_to=${encodeURIComponent(returnTo)}`)
      expect(await page.getByLabel('Password').getAttribute('autocomplete')).toBe('new-password')
      await page.getByLabel('Username').fill('new-page-user')
      await page.getByLabel('Password').fill('short')
      await page.getByRole('button', { name: 'Create account' }).click()
      await expect
        .poll(() => page.getByRole('alert').textContent())
        .toContain('Password should have at least 8 characters')
      expect(await focused(page)).toBe('error-summary')
      expect(await page.getByLabel('Password').getAttribute('aria-invalid')).toBe('true')
      expect(await page.getByLabel('Username').getAttribute('aria-invalid')).toBeNull()
      // The summary's link takes the user to the field.
      await page.getByRole('alert').getByRole('link').click()
      expect(await focused(page)).toBe('password')

      await page.getByLabel('Password').fill(PASSWORD)
      await page.getByRole('button', { name: 'Create account' }).click()
      await page.waitForURL(`${origin}${returnTo}`)
      await page.getByText('You are signed in as new-page-user.').waitFor()
      const session = (await context.cookies(origin)).find((c) => c.name === 'authgate_session')
      expect(await resolve(session?.value)).toMatchObject({ username: 'new-page-user', amr: ['pwd'] })
      expect(problems).toEqual([refusedForm('422 (Unprocessable Entity)', `${origin}/signup`)])
    })
  })

  it('keyboard only: Tab goes skip link, username, password, submit, reset link, sign-up link; the skip link moves focus to main', {
    timeout: 60_000,
  }, async () => {
    await withPage(async (page, problems) => {
      await page.goto(`${origin}/login`)
      const order: (string | undefined)[] = []
      for (let i = 0; i < 6; i++) {
        await page.keyboard.press('Tab')
        order.push(await focused(page))
      }
      expect(order).toEqual([
        'Skip to main content',
        'username',
        'password',
        'Sign in',
        'Forgot your password?',
        'Create an account',
      ])
      // The skip link is hidden until focused, and then visible.
      await page.keyboard.press('Shift+Tab')
      for (let i = 0; i < 4; i++) await page.keyboard.press('Shift+Tab')
      expect(await focused(page)).toBe('Skip to main content')
      expect(await page.getByRole('link', { name: 'Skip to main content' }).isVisible()).toBe(true)
      const box = await page.getByRole('link', { name: 'Skip to main content' }).boundingBox()
      expect(box?.y).toBeGreaterThanOrEqual(0)
      await page.keyboard.press('Enter')
      expect(await focused(page)).toBe('main')

      // Signing in with the keyboard alone: type, Tab, type, Enter.
      await page.getByLabel('Username').focus()
      await page.keyboard.type('page-user')
      await page.keyboard.press('Tab')
      await page.keyboard.type(PASSWORD)
      await page.keyboard.press('Enter')
      await page.getByText('You are signed in as page-user.').waitFor()
      expect(problems).toEqual([])
    })
  })

  it('signing out at /logout: asked first, the Sign out button reached by keyboard ends the session, on a phone', {
    timeout: 60_000,
  }, async () => {
    await withPage(
      async (page, problems, context) => {
        const session = async () =>
          (await context.cookies(origin)).find((c) => c.name === 'authgate_session')?.value
        await page.goto(`${origin}/login`)
        await page.getByLabel('Username').fill('page-user')
        await page.getByLabel('Password').fill(PASSWORD)
        await page.getByRole('button', { name: 'Sign in' }).click()
        await page.getByText('You are signed in as page-user.').waitFor()
        const cookie = await session()
        expect(await resolve(cookie)).toMatchObject({ username: 'page-user' })

        // A logout link without an id_token_hint (anyone can send one): it asks, and ends nothing.
        await page.goto(`${origin}/logout`)
        await page.getByRole('heading', { name: 'Sign out of AuthGate?' }).waitFor()
        expect(await page.getByText('You are signed in as page-user.').count()).toBe(1)
        expect(await resolve(cookie)).toMatchObject({ username: 'page-user' })
        expect(await page.evaluate<number>('document.documentElement.scrollWidth')).toBeLessThanOrEqual(375)
        expect(
          (await page.getByRole('button', { name: 'Sign out' }).boundingBox())?.height,
        ).toBeGreaterThanOrEqual(44)
        // Keyboard only: the skip link, then the button; Enter signs out.
        await page.keyboard.press('Tab')
        await page.keyboard.press('Tab')
        expect(await focused(page)).toBe('Sign out')
        await page.keyboard.press('Enter')
        await page.getByRole('heading', { name: 'You are signed out' }).waitFor()
        expect(await page.getByRole('status').textContent()).toContain('Your AuthGate session has ended')
        expect(await session()).toBeUndefined()
        expect(await resolve(cookie)).toBeUndefined()
        // The way back: the link leads to the login page.
        await page.getByRole('link', { name: 'Sign in again' }).click()
        await page.getByLabel('Username').waitFor()
        expect(problems).toEqual([])
      },
      { viewport: { width: 375, height: 667 }, isMobile: true, hasTouch: true },
    )
  })

  it('on a 375 px phone: no horizontal scroll, 16 px inputs (no zoom on focus), targets at least 44 px tall', {
    timeout: 60_000,
  }, async () => {
    await withPage(
      async (page, problems) => {
        for (const path of ['/login', '/signup']) {
          await page.goto(
            `${origin}${path}?return_to=${encodeURIComponent(`/${'long-path-segment/'.repeat(20)}`)}`,
          )
          const width = await page.evaluate<{ scroll: number; view: number }>(
            '({ scroll: document.documentElement.scrollWidth, view: window.innerWidth })',
          )
          expect(width.view).toBe(375)
          expect(width.scroll).toBeLessThanOrEqual(width.view)
          for (const label of ['Username', 'Password']) {
            const input = page.getByLabel(label)
            const id = await input.getAttribute('id')
            const fontSize = await page.evaluate<string>(
              `getComputedStyle(document.getElementById(${JSON.stringify(id)})).fontSize`,
            )
            expect(Number.parseFloat(fontSize)).toBeGreaterThanOrEqual(16)
            expect((await input.boundingBox())?.height).toBeGreaterThanOrEqual(44)
          }
          expect((await page.getByRole('button').boundingBox())?.height).toBeGreaterThanOrEqual(44)
        }
        // An error summary and a long name do not widen the page either.
        await page.goto(`${origin}/login`)
        await page.getByLabel('Username').fill('x'.repeat(200))
        await page.getByLabel('Password').fill('wrong')
        await page.getByRole('button', { name: 'Sign in' }).click()
        await page.getByRole('alert').waitFor()
        expect(await page.evaluate<number>('document.documentElement.scrollWidth')).toBeLessThanOrEqual(375)
        await page.screenshot({ path: '/tmp/authgate-login-375.png', fullPage: true })
        expect(problems).toEqual([refusedForm('400 (Bad Request)', `${origin}/login`)])
      },
      { viewport: { width: 375, height: 667 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 },
    )
  })

  it('refuses to be framed by another origin (frame-ancestors)', { timeout: 60_000 }, async () => {
    await withPage(async (page, problems) => {
      await page.goto(`${otherOrigin}/frame`)
      const framed = page.frames().find((f) => f !== page.mainFrame())
      expect(framed).toBeDefined()
      await expect.poll(() => problems.join('\n')).toContain("frame-ancestors 'none'")
      // Nothing of the page rendered inside the frame.
      expect(await framed?.locator('input[name="username"]').count()).toBe(0)
      expect(framed?.url()).not.toBe(`${origin}/login`)
    })
  })

  describe('a login post whose redirects end on another origin', () => {
    let open: Server | undefined
    let strict: Server | undefined
    let openOrigin: string
    let strictOrigin: string

    beforeAll(async () => {
      const landing = () => `${otherOrigin}/landing`
      open = front(() => authgatePort, landing, { strict: false })
      strict = front(() => authgatePort, landing, { strict: true })
      openOrigin = `http://127.0.0.1:${await listen(open)}`
      strictOrigin = `http://127.0.0.1:${await listen(strict)}`
    })

    afterAll(async () => {
      await close(open)
      await close(strict)
    })

    async function signInThroughBounce(page: Page, front: string) {
      await page.goto(`${front}/login?return_to=/bounce`)
      await page.getByLabel('Username').fill('page-user')
      await page.getByLabel('Password').fill(PASSWORD)
      await page.getByRole('button', { name: 'Sign in' }).click()
    }

    it('arrives: POST /login, 303 to /bounce, 302 to the client on another origin', {
      timeout: 60_000,
    }, async () => {
      await withPage(async (page, problems) => {
        await signInThroughBounce(page, openOrigin)
        await page.waitForURL(`${otherOrigin}/landing`)
        await page.getByText('Welcome back to the client').waitFor()
        expect(problems).toEqual([])
      })
    })

    it("the control: with form-action 'self' added, Chromium blocks the same redirect", {
      timeout: 60_000,
    }, async () => {
      await withPage(async (page, problems) => {
        await signInThroughBounce(page, strictOrigin)
        await expect.poll(() => problems.join('\n')).toContain("form-action 'self'")
        expect(page.url()).not.toContain('other.test')
      })
    })
  })
})
