// The authorization code flow as a person goes through it, in Chromium over real HTTP: a client
// on another site sends the browser to /authorize, the login page, back, the consent page,
// allow, and the client's callback (a small server of the test's own, on another port) receives
// the code, the state and iss; a first-party client then signs in without the password (single
// sign-on); deny sends access_denied; the buttons are reached with the keyboard; and no page
// reports a console error or a CSP violation.
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Browser, BrowserContext, Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { servicesOf } from '../../src/app.js'
import type { Client } from '../../src/domain/clients.js'
import type { Services } from '../../src/services.js'
import { buildTestApp, PASSWORD, type TestApp } from '../helpers/app.js'
import { CHALLENGE, VERIFIER } from '../helpers/authorization-codes.js'
import { hasChromium as chromiumInstalled, launchChromium, withPage as openPage } from '../helpers/browser.js'
import { signUp } from '../helpers/http.js'

const hasChromium = chromiumInstalled()

// client.test is another site than 127.0.0.1, where AuthGate is reached: the client's own pages.
const OPERATOR = { actor: 'cli', osUser: 'authorize-browser-test' } as const

/**
 * The client's side: GET /start?to=URL sends the browser to AuthGate (as a client's "Sign in"
 * does), GET /cb is the redirect URI, whose every request is handed to whoever waits for it.
 */
function clientSite() {
  const waiting: ((url: URL) => void)[] = []
  const server = createServer((request, response) => {
    const url = new URL(request.url ?? '/', 'http://client.invalid')
    if (url.pathname === '/start') {
      response.writeHead(302, { location: url.searchParams.get('to') ?? '/' })
      response.end()
      return
    }
    if (url.pathname === '/cb') waiting.shift()?.(url)
    response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' })
    response.end(
      '<!doctype html><title>client</title><link rel="icon" href="data:,"><h1>Back at the client</h1>',
    )
  })
  return {
    server,
    /** The next request the callback receives. */
    callback: () => new Promise<URL>((resolve) => waiting.push(resolve)),
  }
}

describe.skipIf(!hasChromium)('the authorization code flow, in Chromium', () => {
  let browser: Browser
  let t: TestApp
  let services: Services
  let origin: string
  let client: ReturnType<typeof clientSite>
  let clientPort: number
  let redirectUri: string
  let thirdParty: Client
  let firstParty: Client

  beforeAll(async () => {
    browser = await launchChromium(['client.test'])
    t = await buildTestApp()
    services = servicesOf(t.app) as Services
    await t.app.listen({ port: 0, host: '127.0.0.1' })
    origin = `http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}`
    client = clientSite()
    await new Promise<void>((resolve) => client.server.listen(0, '127.0.0.1', resolve))
    clientPort = (client.server.address() as AddressInfo).port
    // Loopback http, as RFC 8252 §7.3 allows: the client's callback, on a port of its own.
    redirectUri = `http://127.0.0.1:${clientPort}/cb`
    const create = async (name: string, firstPartyClient: boolean) =>
      (
        await services.clients.create(OPERATOR, {
          name,
          redirectUris: [redirectUri],
          public: true,
          firstParty: firstPartyClient,
        })
      ).client
    thirdParty = await create('Photo Printer', false)
    firstParty = await create('Our Dashboard', true)
    await signUp(t.app, 'browser-user')
  })

  afterAll(async () => {
    await browser?.close()
    await new Promise<void>((resolve) => (client ? client.server.close(() => resolve()) : resolve()))
    await t?.close()
  })

  const authorizeUrl = (of: Client, state: string, extra: Record<string, string> = {}) =>
    `${origin}/authorize?${new URLSearchParams({
      response_type: 'code',
      client_id: of.clientId,
      redirect_uri: redirectUri,
      scope: 'openid profile offline_access',
      state,
      nonce: `nonce-${state}`,
      code_challenge: CHALLENGE,
      code_challenge_method: 'S256',
      ...extra,
    })}`

  /** Starts sign-in from the client's own site, as its "Sign in" button would. */
  const startAt = (page: Page, url: string) =>
    page.goto(`http://client.test:${clientPort}/start?to=${encodeURIComponent(url)}`)

  // Strings, evaluated in the page: this project's TypeScript has no DOM types.
  const focused = (page: Page) =>
    page.evaluate<string>(
      '(() => { const el = document.activeElement; return el.id || el.textContent.trim() || el.tagName })()',
    )

  /** A fresh context and page that record every problem; closed after `run`. */
  const withPage = (run: (page: Page, problems: string[], context: BrowserContext) => Promise<void>) =>
    openPage(browser, run)

  /** Every document the page navigated to, in order. */
  function visited(page: Page): string[] {
    const urls: string[] = []
    page.on('framenavigated', (frame) => {
      if (frame === page.mainFrame()) urls.push(frame.url())
    })
    return urls
  }

  it('login, consent with the keyboard, allow: the callback gets code, state and iss; then single sign-on into a first-party client', {
    timeout: 90_000,
  }, async () => {
    await withPage(async (page, problems, context) => {
      const pages = visited(page)
      const issuer = services.issuers.current()

      await startAt(page, authorizeUrl(thirdParty, 'first-state', { login_hint: 'browser-user' }))
      await page.waitForURL((url) => url.pathname === '/login')
      expect(await page.title()).toBe('Sign in – AuthGate')
      // login_hint: the username is there already.
      expect(await page.getByLabel('Username').inputValue()).toBe('browser-user')
      await page.getByLabel('Password').fill(PASSWORD)
      await page.getByRole('button', { name: 'Sign in' }).click()

      // Back at /authorize with the very same request, which shows the consent page.
      await page.waitForURL((url) => url.pathname === '/authorize')
      expect(page.url()).toBe(authorizeUrl(thirdParty, 'first-state', { login_hint: 'browser-user' }))
      expect(await page.title()).toBe('Allow Photo Printer? – AuthGate')
      await page.getByRole('heading', { name: 'Allow Photo Printer to use your account?' }).waitFor()
      expect(await page.getByRole('list').getByRole('listitem').allTextContents()).toEqual([
        'Confirm who you are',
        'See your username',
        'Stay signed in to Photo Printer (refresh tokens)',
      ])

      // Keyboard only: Tab reaches Allow, then Deny; Enter on Allow answers.
      const order: string[] = []
      for (let i = 0; i < 4; i++) {
        await page.keyboard.press('Tab')
        order.push(await focused(page))
      }
      expect(order).toEqual(['Skip to main content', 'Not you?', 'Allow', 'Deny'])
      await page.keyboard.press('Shift+Tab')
      expect(await focused(page)).toBe('Allow')
      const arrived = client.callback()
      await page.keyboard.press('Enter')
      const callback = await arrived
      await page.getByText('Back at the client').waitFor()
      expect(callback.searchParams.get('state')).toBe('first-state')
      expect(callback.searchParams.get('iss')).toBe(issuer)
      const code = callback.searchParams.get('code') as string
      await expect(
        services.authorizationCodes.redeem({
          code,
          clientId: thirdParty.clientId,
          redirectUri,
          codeVerifier: VERIFIER,
        }),
      ).resolves.toMatchObject({
        scope: 'openid profile offline_access',
        nonce: 'nonce-first-state',
        amr: ['pwd'],
      })
      const session = (await context.cookies(origin)).find((c) => c.name === 'authgate_session')
      expect(session).toMatchObject({ httpOnly: true, sameSite: 'Lax' })

      // Single sign-on: a first-party client, started from the client's site, gets its code
      // without the login page and without the consent page.
      pages.length = 0
      const second = client.callback()
      await startAt(page, authorizeUrl(firstParty, 'second-state'))
      const sso = await second
      expect(sso.searchParams.get('state')).toBe('second-state')
      expect(sso.searchParams.get('iss')).toBe(issuer)
      expect(sso.searchParams.get('code')).toEqual(expect.any(String))
      await page.getByText('Back at the client').waitFor()
      expect(pages.filter((url) => url.startsWith(origin))).toEqual([])

      // The consent given is remembered: the third-party client again, no page either.
      const third = client.callback()
      await startAt(page, authorizeUrl(thirdParty, 'third-state', { scope: 'openid' }))
      expect((await third).searchParams.get('code')).toEqual(expect.any(String))
      expect(problems).toEqual([])
    })
  })

  it('deny: the callback gets error=access_denied, with state and iss, and no code', {
    timeout: 90_000,
  }, async () => {
    await withPage(async (page, problems) => {
      await startAt(page, authorizeUrl(thirdParty, 'deny-state', { prompt: 'consent' }))
      await page.waitForURL((url) => url.pathname === '/login')
      await page.getByLabel('Username').fill('browser-user')
      await page.getByLabel('Password').fill(PASSWORD)
      await page.getByRole('button', { name: 'Sign in' }).click()
      await page.getByRole('button', { name: 'Deny' }).waitFor()
      const arrived = client.callback()
      await page.getByRole('button', { name: 'Deny' }).click()
      const callback = await arrived
      expect(Object.fromEntries(callback.searchParams)).toEqual({
        error: 'access_denied',
        error_description: 'The user did not allow this client',
        state: 'deny-state',
        iss: services.issuers.current(),
      })
      await page.getByText('Back at the client').waitFor()
      expect(problems).toEqual([])
    })
  })

  it('prompt=none without a browser session: straight back with login_required, no page shown', {
    timeout: 60_000,
  }, async () => {
    await withPage(async (page, problems) => {
      const arrived = client.callback()
      await startAt(page, authorizeUrl(firstParty, 'silent', { prompt: 'none' }))
      const callback = await arrived
      expect([callback.searchParams.get('error'), callback.searchParams.get('state')]).toEqual([
        'login_required',
        'silent',
      ])
      expect(problems).toEqual([])
    })
  })
})
