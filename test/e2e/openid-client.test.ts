// AuthGate as an OpenID Connect provider, started the way the README says (`npm start`, in a copy of
// the project so its dist/ is this file's own), its clients made with the CLI as an operator would,
// and two relying parties it knows nothing about:
// - panva's openid-client (a certified RP library) in this process: discovery, an authorization
//   URL with PKCE, Chromium through the real login and consent pages, the callback, the code
//   exchange with ID token validation, UserInfo, refresh, introspection by a resource server,
//   revocation, single sign-on into a second client, prompt=none with and without a session, and
//   RP-initiated logout;
// - examples/web-app, run as its own process, which a person signs in to, refreshes and signs
//   out of in Chromium.
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import * as oidc from 'openid-client'
import type { Browser, BrowserContext, Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { PASSWORD, tempDir } from '../helpers/app.js'
import { hasChromium as chromiumInstalled, launchChromium, withPage as openPage } from '../helpers/browser.js'
import { runCli } from '../helpers/cli.js'
import { copyProject } from '../helpers/project-copy.js'
import { freePort, type Spawned, STARTED_LINE, spawnUntilReady } from '../helpers/server-process.js'

const hasChromium = chromiumInstalled()
const USERNAME = 'oidc-user'
// A tsc build (5-30 s on a busy 2-core host), then the start.
const STARTUP_MS = 120_000

interface CreatedClient {
  client_id: string
  client_secret?: string
}

/** The test's own relying party site: /cb and /bye hand every request to whoever waits for it. */
function callbackSite() {
  const waiting = new Map<string, ((url: URL) => void)[]>()
  const server = createServer((request, response) => {
    // As the browser asked for it: openid-client takes the redirect_uri from this URL.
    const url = new URL(request.url ?? '/', `http://${request.headers.host}`)
    waiting.get(url.pathname)?.shift()?.(url)
    response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' })
    response.end(
      '<!doctype html><title>client</title><link rel="icon" href="data:,"><h1>Back at the client</h1>',
    )
  })
  return {
    server,
    /** The next request `path` receives. */
    next: (path: string) =>
      new Promise<URL>((resolve) => {
        const queue = waiting.get(path) ?? []
        queue.push(resolve)
        waiting.set(path, queue)
      }),
  }
}

const listen = (server: Server) =>
  new Promise<number>((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)),
  )

describe.skipIf(!hasChromium)('OpenID Connect against npm start, in Chromium', () => {
  const tree = copyProject('authgate-oidc-tree-')
  const data = tempDir('authgate-oidc-db-')
  const env = { DATABASE_URL: `sqlite:///${join(data.path, 'authgate.db')}` }
  const site = callbackSite()
  let authgate: Spawned | undefined
  let webApp: Spawned | undefined
  let browser: Browser
  let base: string
  let sitePort: number
  let webPort: number
  let printer: CreatedClient
  let dashboard: CreatedClient
  let inventory: CreatedClient
  let example: CreatedClient

  async function createClient(args: string[]): Promise<CreatedClient> {
    const run = await runCli(['clients', 'create', ...args, '--json'], env)
    expect(run.stderr).toBe('')
    expect(run.code).toBe(0)
    return JSON.parse(run.stdout) as CreatedClient
  }

  beforeAll(async () => {
    sitePort = await listen(site.server)
    webPort = await freePort()
    const cb = `http://127.0.0.1:${sitePort}/cb`
    // An operator registers the clients first (the CLI migrates a new database), then serves.
    printer = await createClient([
      ...['--name', 'Photo Printer', '--redirect-uri', cb],
      ...['--post-logout-redirect-uri', `http://127.0.0.1:${sitePort}/bye`],
    ])
    dashboard = await createClient(['--name', 'Dashboard', '--redirect-uri', cb, '--public', '--first-party'])
    inventory = await createClient([
      ...['--name', 'Inventory API', '--grant', 'client_credentials', '--scope', 'inventory'],
    ])
    example = await createClient([
      ...['--name', 'Example web app', '--redirect-uri', `http://localhost:${webPort}/callback`],
      ...['--post-logout-redirect-uri', `http://localhost:${webPort}/signed-out`],
    ])
    const port = await freePort()
    base = `http://127.0.0.1:${port}`
    authgate = await spawnUntilReady({
      command: 'npm',
      args: ['start'],
      url: base,
      cwd: tree.path,
      detached: true,
      env: {
        ...env,
        HOME: process.env.HOME ?? data.path,
        PORT: String(port),
        HOST: '127.0.0.1',
        LOG_LEVEL: 'info',
        npm_config_update_notifier: 'false',
        npm_config_fund: 'false',
      },
      ready: STARTED_LINE,
      timeoutMs: STARTUP_MS,
    })
    const signUp = await fetch(`${base}/auth/`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: USERNAME, password: PASSWORD }),
    })
    expect(signUp.status).toBe(201)
    browser = await launchChromium()
  }, STARTUP_MS + 30_000)

  afterAll(async () => {
    await browser?.close()
    await webApp?.stop()
    const pid = authgate?.child.pid
    if (pid !== undefined) {
      try {
        process.kill(-pid, 'SIGKILL') // npm, its sh and the server: the whole group
      } catch {
        // gone already
      }
      await authgate?.exited
    }
    await new Promise<void>((resolve) => site.server.close(() => resolve()))
    tree.cleanup()
    data.cleanup()
  })

  /** openid-client's view of AuthGate for one client, from discovery (http: loopback only here). */
  const configFor = (client: CreatedClient) =>
    oidc.discovery(
      new URL(base),
      client.client_id,
      undefined,
      client.client_secret === undefined ? oidc.None() : oidc.ClientSecretBasic(client.client_secret),
      { execute: [oidc.allowInsecureRequests] },
    )

  /** An authorization request with PKCE, state and nonce, and the checks its answer must pass. */
  async function authorizationRequest(config: oidc.Configuration, extra: Record<string, string> = {}) {
    const checks = {
      pkceCodeVerifier: oidc.randomPKCECodeVerifier(),
      expectedState: oidc.randomState(),
      expectedNonce: oidc.randomNonce(),
      idTokenExpected: true,
    }
    const url = oidc.buildAuthorizationUrl(config, {
      redirect_uri: `http://127.0.0.1:${sitePort}/cb`,
      scope: 'openid profile offline_access',
      code_challenge: await oidc.calculatePKCECodeChallenge(checks.pkceCodeVerifier),
      code_challenge_method: 'S256',
      state: checks.expectedState,
      nonce: checks.expectedNonce,
      ...extra,
    })
    return { url, checks }
  }

  const withPage = (run: (page: Page, problems: string[], context: BrowserContext) => Promise<void>) =>
    openPage(browser, async (page, problems, context) => {
      await run(page, problems, context)
      expect(problems).toEqual([])
    })

  /** Every AuthGate document the page navigated to, in order. */
  function visited(page: Page): string[] {
    const urls: string[] = []
    page.on('framenavigated', (frame) => {
      if (frame === page.mainFrame() && frame.url().startsWith(base)) urls.push(new URL(frame.url()).pathname)
    })
    return urls
  }

  async function logIn(page: Page) {
    await page.waitForURL((url) => url.pathname === '/login')
    await page.getByLabel('Username').fill(USERNAME)
    await page.getByLabel('Password').fill(PASSWORD)
    await page.getByRole('button', { name: 'Sign in' }).click()
  }

  it('discovery, login and consent in Chromium, the code exchange, UserInfo, introspection, refresh, single sign-on, prompt=none, revocation, RP-initiated logout', {
    timeout: 120_000,
  }, async () => {
    const config = await configFor(printer)
    const metadata = config.serverMetadata()
    expect(metadata.issuer).toBe(base)
    expect(metadata.code_challenge_methods_supported).toEqual(['S256'])
    expect(metadata.authorization_response_iss_parameter_supported).toBe(true)

    await withPage(async (page, _problems, context) => {
      // Login, then the consent page (Photo Printer is not first-party), Allow.
      const { url, checks } = await authorizationRequest(config)
      const arrived = site.next('/cb')
      await page.goto(url.href)
      await logIn(page)
      await page.getByRole('heading', { name: 'Allow Photo Printer to use your account?' }).waitFor()
      await page.getByRole('button', { name: 'Allow' }).click()
      const callback = await arrived
      await page.getByText('Back at the client').waitFor()

      // openid-client checks state and iss (RFC 9207), exchanges the code with the verifier, and
      // validates the ID token: signature through the JWKS, iss, aud, exp, iat, nonce.
      const tokens = await oidc.authorizationCodeGrant(config, callback, checks)
      const claims = tokens.claims()
      expect(claims).toMatchObject({
        iss: base,
        aud: printer.client_id,
        nonce: checks.expectedNonce,
        amr: ['pwd'],
        preferred_username: USERNAME,
        sid: expect.any(String),
        auth_time: expect.any(Number),
      })
      const sub = claims?.sub as string
      expect(sub).not.toBe(USERNAME)
      expect(tokens.scope).toBe('openid profile offline_access')
      expect(tokens.refresh_token).toEqual(expect.any(String))

      // UserInfo (OIDC Core §5.3), about the ID token's subject.
      expect(await oidc.fetchUserInfo(config, tokens.access_token, sub)).toEqual({
        sub,
        preferred_username: USERNAME,
      })

      // A resource server introspects the access token (RFC 7662): active, the user's, the client's.
      const resourceServer = await configFor(inventory)
      expect(await oidc.tokenIntrospection(resourceServer, tokens.access_token)).toMatchObject({
        active: true,
        sub,
        client_id: printer.client_id,
        scope: 'openid profile offline_access',
      })
      // Its own client_credentials token, for good measure (RFC 6749 §4.4).
      const machine = await oidc.clientCredentialsGrant(resourceServer, { scope: 'inventory' })
      expect(machine.scope).toBe('inventory')

      // Refresh, with rotation: a new refresh token, a new access token for the same user.
      const refreshed = await oidc.refreshTokenGrant(config, tokens.refresh_token as string)
      expect(refreshed.refresh_token).toEqual(expect.any(String))
      expect(refreshed.refresh_token).not.toBe(tokens.refresh_token)
      expect(await oidc.fetchUserInfo(config, refreshed.access_token, sub)).toMatchObject({ sub })

      // Single sign-on: a second, first-party client, in the same browser, without any AuthGate page.
      const dashboardConfig = await configFor(dashboard)
      const pages = visited(page)
      const second = await authorizationRequest(dashboardConfig)
      const secondArrived = site.next('/cb')
      await page.goto(second.url.href)
      const secondTokens = await oidc.authorizationCodeGrant(
        dashboardConfig,
        await secondArrived,
        second.checks,
      )
      expect(pages.filter((path) => path !== '/authorize')).toEqual([])
      expect(secondTokens.claims()).toMatchObject({ sub, aud: dashboard.client_id, sid: claims?.sid })

      // prompt=none with the browser session: a code at once.
      const silent = await authorizationRequest(dashboardConfig, { prompt: 'none' })
      const silentArrived = site.next('/cb')
      await page.goto(silent.url.href)
      const silentTokens = await oidc.authorizationCodeGrant(
        dashboardConfig,
        await silentArrived,
        silent.checks,
      )
      expect(silentTokens.claims()?.sub).toBe(sub)

      // prompt=none in another browser, with no session: login_required, with state and iss.
      const other = await browser.newContext()
      try {
        const otherPage = await other.newPage()
        const none = await authorizationRequest(dashboardConfig, { prompt: 'none' })
        const noneArrived = site.next('/cb')
        await otherPage.goto(none.url.href)
        const answer = await noneArrived
        expect(answer.searchParams.get('iss')).toBe(base)
        await expect(oidc.authorizationCodeGrant(dashboardConfig, answer, none.checks)).rejects.toMatchObject(
          {
            error: 'login_required',
          },
        )
      } finally {
        await other.close()
      }

      // Revocation (RFC 7009) by the client: the refresh token is dead, and so is its access token.
      await oidc.tokenRevocation(config, refreshed.refresh_token as string)
      await expect(oidc.refreshTokenGrant(config, refreshed.refresh_token as string)).rejects.toMatchObject({
        error: 'invalid_grant',
      })
      expect(await oidc.tokenIntrospection(resourceServer, refreshed.access_token)).toEqual({ active: false })
      // The other client's session, from the same browser session, is untouched.
      expect(await oidc.tokenIntrospection(resourceServer, secondTokens.access_token)).toMatchObject({
        active: true,
      })

      // RP-initiated logout (RP-Initiated Logout 1.0) with the ID token of this browser session:
      // back at the registered URI with state, and every session the browser session started ends.
      expect(await oidc.tokenIntrospection(resourceServer, silentTokens.access_token)).toMatchObject({
        active: true,
      })
      const logoutState = oidc.randomState()
      const endSession = oidc.buildEndSessionUrl(config, {
        id_token_hint: tokens.id_token as string,
        post_logout_redirect_uri: `http://127.0.0.1:${sitePort}/bye`,
        state: logoutState,
      })
      expect(`${endSession.origin}${endSession.pathname}`).toBe(`${base}/logout`)
      const bye = site.next('/bye')
      await page.goto(endSession.href)
      expect((await bye).searchParams.get('state')).toBe(logoutState)
      await page.getByText('Back at the client').waitFor()
      for (const ended of [secondTokens, silentTokens]) {
        expect(await oidc.tokenIntrospection(resourceServer, ended.access_token)).toEqual({ active: false })
      }
      await expect(
        oidc.refreshTokenGrant(dashboardConfig, secondTokens.refresh_token as string),
      ).rejects.toMatchObject({ error: 'invalid_grant' })
      // This browser is signed out: prompt=none answers login_required now.
      const after = await authorizationRequest(dashboardConfig, { prompt: 'none' })
      const afterArrived = site.next('/cb')
      await page.goto(after.url.href)
      await expect(
        oidc.authorizationCodeGrant(dashboardConfig, await afterArrived, after.checks),
      ).rejects.toMatchObject({ error: 'login_required' })
      expect(context).toBeDefined()
    })
  })

  it('examples/web-app: a person signs in through openid-client, sees who they are, refreshes, signs out', {
    timeout: 120_000,
  }, async () => {
    webApp = await spawnUntilReady({
      args: ['examples/web-app/index.ts'],
      url: `http://localhost:${webPort}`,
      env: {
        AUTHGATE_ISSUER: base,
        CLIENT_ID: example.client_id,
        CLIENT_SECRET: example.client_secret as string,
        PORT: String(webPort),
      },
      ready: /example web app listening/,
    })
    await withPage(async (page) => {
      await page.goto(`http://localhost:${webPort}/`)
      await page.getByRole('link', { name: 'Sign in with AuthGate' }).click()
      await logIn(page)
      await page.getByRole('button', { name: 'Allow' }).click()
      await page.getByRole('heading', { name: `Hello, ${USERNAME}` }).waitFor()
      expect(new URL(page.url()).origin).toBe(`http://localhost:${webPort}`)
      expect(await page.locator('#sub').textContent()).toMatch(/^[0-9a-f]{32}$/)

      await page.getByRole('button', { name: 'Refresh tokens' }).click()
      await page.getByRole('status').filter({ hasText: 'Your tokens were refreshed.' }).waitFor()
      expect(await page.locator('#refreshes').textContent()).toBe('1')

      // Sign out: the app revokes its refresh token and sends the browser to AuthGate's
      // end_session_endpoint with the ID token, which ends the session and sends it back.
      await page.getByRole('button', { name: 'Sign out' }).click()
      await page
        .getByRole('status')
        .filter({ hasText: 'You are signed out of the app and of AuthGate.' })
        .waitFor()
      expect(new URL(page.url()).pathname).toBe('/signed-out')
      // Signed out of AuthGate too: signing in again asks for the password.
      await page.getByRole('link', { name: 'Sign in again' }).click()
      await page.waitForURL((url) => url.origin === base && url.pathname === '/login')
      await page.getByLabel('Password').waitFor()
    })
  })
})
