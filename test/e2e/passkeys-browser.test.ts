import type { Browser, BrowserContext, CDPSession, Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { servicesOf } from '../../src/app.js'
import { auditWritten, buildTestApp, inspect, type TestApp } from '../helpers/app.js'
import { hasChromium as chromiumInstalled, launchChromium, watchProblems } from '../helpers/browser.js'
import { account, bearer, decodeJwt, greet } from '../helpers/http.js'
import { freePort } from '../helpers/server-process.js'

const hasChromium = chromiumInstalled()
const JSON_TYPE = { 'content-type': 'application/json' }

describe.skipIf(!hasChromium)('passkeys, in Chromium with a virtual authenticator', () => {
  let browser: Browser
  let t: TestApp
  // WebAuthn needs a domain as relying party: localhost, which Chromium treats as secure.
  let origin: string
  let context: BrowserContext
  let page: Page
  let cdp: CDPSession
  let authenticatorId: string
  let problems: string[]
  let accessToken: string

  beforeAll(async () => {
    browser = await launchChromium()
    const port = await freePort()
    origin = `http://localhost:${port}`
    t = await buildTestApp({ PUBLIC_URL: origin })
    await t.app.listen({ port, host: '127.0.0.1' })
    accessToken = (await account(t.app, 'passkey-user')).access_token
    context = await browser.newContext()
    page = await context.newPage()
    page.setDefaultTimeout(15_000)
    problems = await watchProblems(page)
    cdp = await context.newCDPSession(page)
    await cdp.send('WebAuthn.enable')
    authenticatorId = await addAuthenticator()
    // A document of this origin for navigator.credentials to run in; not the login page, whose
    // script waits on a passkey of its own (conditional mediation).
    await page.goto(`${origin}/healthz`)
  })

  afterAll(async () => {
    await context?.close()
    await browser?.close()
    await t?.close()
  })

  async function addAuthenticator(): Promise<string> {
    const added = await cdp.send('WebAuthn.addVirtualAuthenticator', {
      options: {
        protocol: 'ctap2',
        transport: 'internal',
        hasResidentKey: true,
        hasUserVerification: true,
        isUserVerified: true,
        automaticPresenceSimulation: true,
      },
    })
    return added.authenticatorId
  }

  const signedIn = async () =>
    (await context.cookies(origin)).find((c) => c.name === 'authgate_session')?.value
  const signedInAs = async () => servicesOf(t.app)?.browserSessions.resolve(await signedIn())

  const post = (url: string, payload: unknown, headers: Record<string, string> = {}) =>
    t.app.inject({
      method: 'POST',
      url,
      headers: { ...JSON_TYPE, ...headers },
      payload: JSON.stringify(payload),
    })

  /** navigator.credentials.get() in the page, with fresh options from the server: the assertion's JSON. */
  async function assertion(): Promise<Record<string, unknown>> {
    const options = (await post('/auth/webauthn/login/options', {})).json()
    // A string: this project's TypeScript has no DOM types.
    return page.evaluate(`(async () => {
      const publicKey = PublicKeyCredential.parseRequestOptionsFromJSON(${JSON.stringify(options)})
      return (await navigator.credentials.get({ publicKey })).toJSON()
    })()`)
  }

  it('registers a passkey with a bearer token: a discoverable credential, user verification required', async () => {
    const res = await post('/auth/webauthn/register/options', {}, bearer(accessToken))
    expect(res.statusCode).toBe(200)
    const options = res.json()
    expect(options).toMatchObject({
      rp: { id: 'localhost', name: 'AuthGate' },
      user: { name: 'passkey-user' },
      authenticatorSelection: { residentKey: 'required', userVerification: 'required' },
    })
    const created = await page.evaluate(`(async () => {
      const publicKey = PublicKeyCredential.parseCreationOptionsFromJSON(${JSON.stringify(options)})
      return (await navigator.credentials.create({ publicKey })).toJSON()
    })()`)
    const registered = await post(
      '/auth/webauthn/register/verify',
      { ...(created as object), name: 'Laptop' },
      bearer(accessToken),
    )
    expect(registered.statusCode).toBe(201)
    expect(registered.json()).toMatchObject({ name: 'Laptop', last_used_at: null })
    // The same answer again: its challenge is spent.
    const again = await post('/auth/webauthn/register/verify', created, bearer(accessToken))
    expect(again.statusCode).toBe(400)
    expect(again.json().code).toBe('invalid_passkey')
    const listed = await t.app.inject({ url: '/auth/webauthn/credentials', headers: bearer(accessToken) })
    expect(listed.json()).toEqual([expect.objectContaining({ id: registered.json().id, name: 'Laptop' })])
  })

  it('signs in without a password through the API; the same assertion twice is refused', {
    timeout: 30_000,
  }, async () => {
    const signed = await assertion()
    const res = await post('/auth/webauthn/login/verify', signed)
    expect(res.statusCode).toBe(200)
    const pair = res.json()
    expect((await greet(t.app, pair.access_token)).statusCode).toBe(200)
    const sid = decodeJwt(pair.access_token).sid as string
    const session = await inspect(t.dbUrl)
      .selectFrom('authgate_sessions')
      .select('amr')
      .where('id', '=', sid)
      .executeTakeFirstOrThrow()
    expect(JSON.parse(session.amr as string)).toEqual(['hwk', 'user'])
    const replayed = await post('/auth/webauthn/login/verify', signed)
    expect(replayed.statusCode).toBe(400)
    expect(replayed.json()).toEqual({ detail: 'The passkey could not be verified', code: 'invalid_passkey' })
  })

  it('refuses an assertion whose client data names another origin', async () => {
    const signed = (await assertion()) as { response: { clientDataJSON: string } }
    const data = JSON.parse(Buffer.from(signed.response.clientDataJSON, 'base64url').toString('utf8'))
    data.origin = 'https://evil.example'
    signed.response.clientDataJSON = Buffer.from(JSON.stringify(data)).toString('base64url')
    const res = await post('/auth/webauthn/login/verify', signed)
    expect(res.statusCode).toBe(400)
  })

  it('the login page offers the passkey in the username autofill (conditional mediation), which signs in', {
    timeout: 30_000,
  }, async () => {
    // The virtual authenticator answers a conditional request at once: a person picks the
    // passkey from the username field's autofill instead.
    await page.goto(`${origin}/login?return_to=${encodeURIComponent('/login?autofill=1')}`)
    await page.waitForURL(`${origin}/login?autofill=1`)
    await page.getByText('You are signed in as passkey-user.').waitFor()
    expect(await signedInAs()).toMatchObject({ username: 'passkey-user', amr: ['hwk', 'user'] })
    expect(problems).toEqual([])
  })

  it('signs in through "Sign in with a passkey" where the browser has no autofill for passkeys', {
    timeout: 30_000,
  }, async () => {
    await context.clearCookies()
    // A browser without conditional mediation: the button is the way.
    await page.addInitScript(
      "if (location.search.includes('button')) PublicKeyCredential.isConditionalMediationAvailable = async () => false",
    )
    await page.goto(`${origin}/login?return_to=${encodeURIComponent('/login?button=1')}`)
    expect(await page.getByLabel('Username').getAttribute('autocomplete')).toBe('username webauthn')
    expect(await signedInAs()).toBeUndefined()
    await page.getByRole('button', { name: 'Sign in with a passkey' }).click()
    await page.waitForURL(`${origin}/login?button=1`)
    await page.getByText('You are signed in as passkey-user.').waitFor()
    expect(await signedInAs()).toMatchObject({ username: 'passkey-user', amr: ['hwk', 'user'] })
    expect(problems).toEqual([])
    await page.goto(`${origin}/healthz`)
  })

  it('refuses a cloned authenticator: its counter does not move past the one on record', {
    timeout: 30_000,
  }, async () => {
    // One more use, so the counter on record is well past zero.
    expect((await post('/auth/webauthn/login/verify', await assertion())).statusCode).toBe(200)
    const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId })
    const original = credentials[0]
    expect(original?.signCount).toBeGreaterThan(1)
    // The clone: the same key on another authenticator, its counter back at zero.
    await cdp.send('WebAuthn.removeVirtualAuthenticator', { authenticatorId })
    authenticatorId = await addAuthenticator()
    await cdp.send('WebAuthn.addCredential', {
      authenticatorId,
      credential: { ...(original as NonNullable<typeof original>), signCount: 0 },
    })
    const cloned = await post('/auth/webauthn/login/verify', await assertion())
    expect(cloned.statusCode).toBe(400)
    expect(cloned.json().code).toBe('invalid_passkey')
    await auditWritten(t.app)
    const flagged = await inspect(t.dbUrl)
      .selectFrom('authgate_audit_log')
      .select('detail')
      .where('type', '=', 'webauthn.counter_regressed')
      .execute()
    expect(flagged).toHaveLength(1)
    // Removed, the passkey signs in no more.
    const id = (
      await t.app.inject({ url: '/auth/webauthn/credentials', headers: bearer(accessToken) })
    ).json()[0].id
    const removed = await t.app.inject({
      method: 'DELETE',
      url: `/auth/webauthn/credentials/${id}`,
      headers: bearer(accessToken),
    })
    expect(removed.statusCode).toBe(204)
    const afterRemoval = await post('/auth/webauthn/login/verify', await assertion())
    expect(afterRemoval.statusCode).toBe(400)
  })
})
