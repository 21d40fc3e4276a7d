// A browser app on another origin, in Chromium over real HTTP: a page served from a second local
// port calls AuthGate with fetch(..., { credentials: 'include' }). From a listed origin it logs in,
// keeps the device cookie (sent back on the next login) and reads Retry-After on a 429; from an
// unlisted origin the browser refuses to hand the script anything.
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Browser, BrowserContext, Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildTestApp, PASSWORD, type TestApp } from '../helpers/app.js'
import { hasChromium as chromiumInstalled, launchChromium } from '../helpers/browser.js'

const hasChromium = chromiumInstalled()

// app.test is another site than localhost (where AuthGate is reached: a secure context over http,
// so Chromium keeps a Secure cookie from it); both resolve to this machine (launchChromium).

/** A tiny page for the browser app's origin; the script runs through page.evaluate. */
async function pageServer(): Promise<{ server: Server; port: number }> {
  const server = createServer((_request, response) => {
    response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' })
    response.end('<!doctype html><title>a browser app</title><p>app</p>')
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { server, port: (server.address() as AddressInfo).port }
}

async function startAuthGate(env: Record<string, string>): Promise<{ t: TestApp; port: number }> {
  const t = await buildTestApp({ RATE_LIMIT: 'on', LOGIN_MAX_FAILURES: '2', ...env })
  await t.app.listen({ port: 0, host: '127.0.0.1' })
  return { t, port: (t.app.server.address() as AddressInfo).port }
}

interface Answer {
  status: number
  retryAfter: string | null
  wwwAuthenticate: string | null
  body: unknown
}

/** A login from the page's own script, with credentials, as a browser app would send it. */
function login(page: Page, authgate: string, username: string, password: string): Promise<Answer | string> {
  return page.evaluate(
    async ({ authgate, username, password }) => {
      try {
        const res = await fetch(`${authgate}/auth/token`, {
          method: 'POST',
          credentials: 'include',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({ username, password }),
        })
        return {
          status: res.status,
          retryAfter: res.headers.get('retry-after'),
          wwwAuthenticate: res.headers.get('www-authenticate'),
          body: await res.json(),
        }
      } catch (err) {
        return `refused: ${String(err)}`
      }
    },
    { authgate, username, password },
  )
}

/** The Cookie header Chromium sent with each POST /auth/token, in order. */
function cookiesSent(page: Page): Promise<string | undefined>[] {
  const sent: Promise<string | undefined>[] = []
  page.on('request', (request) => {
    if (request.method() === 'POST' && request.url().endsWith('/auth/token'))
      sent.push(request.allHeaders().then((h) => h.cookie))
  })
  return sent
}

describe.skipIf(!hasChromium)('a browser app on another origin, in Chromium', () => {
  let browser: Browser
  let app: { server: Server; port: number }

  beforeAll(async () => {
    browser = await launchChromium(['app.test', 'other.test'])
    app = await pageServer()
  })

  afterAll(async () => {
    await browser?.close()
    await new Promise((resolve) => app?.server.close(resolve))
  })

  async function journey(
    appOrigin: string,
    authgateHost: string,
    env: Record<string, string>,
    run: (page: Page, authgate: string, context: BrowserContext) => Promise<void>,
  ) {
    const { t, port } = await startAuthGate({ CORS_ORIGINS: appOrigin, ...env })
    const authgate = `http://${authgateHost}:${port}`
    const context = await browser.newContext()
    try {
      const created = await fetch(`http://127.0.0.1:${port}/auth/`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ username: 'spa-user', password: PASSWORD }),
      })
      expect(created.status).toBe(201)
      const page = await context.newPage()
      page.setDefaultTimeout(15_000)
      await page.goto(`${appOrigin}/`)
      await run(page, authgate, context)
    } finally {
      await context.close()
      await t.close()
    }
  }

  /** Logs in, then fails until throttled; the cookie of the login goes with every later try. */
  async function logInKeepCookieReadRetryAfter(page: Page, authgate: string, context: BrowserContext) {
    const sent = cookiesSent(page)
    const ok = await login(page, authgate, 'spa-user', PASSWORD)
    expect(ok).toMatchObject({ status: 200, body: { token_type: 'bearer' } })
    const [cookie] = await context.cookies(`${authgate}/auth/token`)
    expect(cookie).toMatchObject({ name: 'authgate_device', path: '/auth', httpOnly: true })

    let last: Answer | string = ''
    for (let i = 0; i < 10; i++) {
      last = await login(page, authgate, 'spa-user', 'not the password')
      if (typeof last === 'string' || last.status !== 401) break
      // The bearer challenge (RFC 6750 §3) is exposed to the script too.
      expect(last.wwwAuthenticate).toBe('Bearer')
    }
    expect(last).toMatchObject({
      status: 429,
      retryAfter: expect.stringMatching(/^\d+$/),
      body: { code: 'too_many_requests' },
    })
    // The device cookie went back with every attempt after the login.
    const headers = await Promise.all(sent)
    expect(headers.length).toBeGreaterThan(2)
    expect(headers[0]).toBeUndefined()
    for (const header of headers.slice(1)) expect(header).toBe(`authgate_device=${cookie?.value}`)
  }

  // Same site, other origin (Fetch standard: the port differs): SameSite=Strict is still sent.
  it('same site, another port: logs in with credentials, keeps the Strict cookie, reads Retry-After', {
    timeout: 60_000,
  }, async () => {
    await journey(`http://127.0.0.1:${app.port}`, '127.0.0.1', {}, async (page, authgate, context) => {
      await logInKeepCookieReadRetryAfter(page, authgate, context)
      expect((await context.cookies(`${authgate}/auth/token`))[0]?.sameSite).toBe('Strict')
    })
  })

  // Another site: only SameSite=None (always Secure) is sent on its requests.
  it('another site, DEVICE_COOKIE_SAMESITE=none: the same, with a SameSite=None; Secure; Partitioned cookie', {
    timeout: 60_000,
  }, async () => {
    const origin = `http://app.test:${app.port}`
    await journey(
      origin,
      'localhost',
      { DEVICE_COOKIE_SAMESITE: 'none' },
      async (page, authgate, context) => {
        await logInKeepCookieReadRetryAfter(page, authgate, context)
        // Partitioned by the app's site: Chromium blocks third-party cookies ("UserPreferences")
        // and dropped a SameSite=None cookie without it.
        expect((await context.cookies(`${authgate}/auth/token`))[0]).toMatchObject({
          sameSite: 'None',
          secure: true,
          partitionKey: 'http://app.test',
        })
      },
    )
  })

  // The control: why another site needs None. A Strict cookie is stored but never sent back.
  it('another site with the default Strict cookie: the cookie is not sent back', {
    timeout: 60_000,
  }, async () => {
    const origin = `http://app.test:${app.port}`
    await journey(origin, 'localhost', {}, async (page, authgate) => {
      const sent = cookiesSent(page)
      expect(await login(page, authgate, 'spa-user', PASSWORD)).toMatchObject({ status: 200 })
      expect(await login(page, authgate, 'spa-user', 'not the password')).toMatchObject({ status: 401 })
      expect(await Promise.all(sent)).toEqual([undefined, undefined])
    })
  })

  it('an origin that is not listed gets nothing: the browser refuses the answer to the script', {
    timeout: 60_000,
  }, async () => {
    const { t, port } = await startAuthGate({ CORS_ORIGINS: `http://app.test:${app.port}` })
    const context = await browser.newContext()
    try {
      const page = await context.newPage()
      await page.goto(`http://other.test:${app.port}/`)
      expect(await login(page, `http://127.0.0.1:${port}`, 'spa-user', PASSWORD)).toMatch(
        /^refused: TypeError: Failed to fetch/,
      )
      expect(await context.cookies(`http://127.0.0.1:${port}/auth/token`)).toEqual([])
    } finally {
      await context.close()
      await t.close()
    }
  })
})
