// The account page (issue 13 item 4) in Chromium over real HTTP, on a phone-sized screen: behind
// the browser session, TOTP turned on from its QR code's key (a wrong first code refused on the
// same page, then the recovery codes) and off again, a passkey removed, another session signed
// out, the password changed; no console error, no CSP violation.
import type { Browser, Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildTestApp, PASSWORD, type TestApp } from '../helpers/app.js'
import {
  hasChromium as chromiumInstalled,
  launchChromium,
  withPage as openPage,
  PHONE,
  refusedForm,
} from '../helpers/browser.js'
import { account, bearer, greet, logIn, pairOf } from '../helpers/http.js'
import { codeAt, MFA_KEY } from '../helpers/mfa.js'
import { SoftwarePasskey } from '../helpers/passkey.js'
import { freePort } from '../helpers/server-process.js'

const hasChromium = chromiumInstalled()
const NEW_PASSWORD = 'a brand new horse battery staple'

describe.skipIf(!hasChromium)('the account page, in Chromium', () => {
  let browser: Browser
  let t: TestApp
  let origin: string

  beforeAll(async () => {
    browser = await launchChromium()
    const port = await freePort()
    origin = `http://localhost:${port}`
    t = await buildTestApp({ PUBLIC_URL: origin, MFA_ENCRYPTION_KEY: MFA_KEY })
    await t.app.listen({ port, host: '127.0.0.1' })
  })

  afterAll(async () => {
    await browser?.close()
    await t?.close()
  })

  const withPage = (run: (page: Page, problems: string[]) => Promise<void>) => openPage(browser, run, PHONE)

  it('signs in to reach it; turns TOTP on from the QR key and off; removes a passkey; signs out another session; changes the password', {
    timeout: 90_000,
  }, async () => {
    const { access_token } = await account(t.app, 'acct')
    // A passkey, registered by an app (a software authenticator for this origin).
    const passkey = new SoftwarePasskey('localhost', origin)
    const options = (
      await t.app.inject({
        method: 'POST',
        url: '/auth/webauthn/register/options',
        headers: bearer(access_token),
      })
    ).json()
    const registered = await t.app.inject({
      method: 'POST',
      url: '/auth/webauthn/register/verify',
      headers: { ...bearer(access_token), 'content-type': 'application/json' },
      payload: JSON.stringify({ ...passkey.register(options), name: 'Work laptop' }),
    })
    expect(registered.statusCode).toBe(201)
    const app = await pairOf(await logIn(t.app, 'acct'))

    await withPage(async (page, problems) => {
      await page.goto(`${origin}/account`)
      await page.waitForURL(/\/login\?return_to=%2Faccount$/)
      await page.getByLabel('Username').fill('acct')
      await page.getByLabel('Password').fill(PASSWORD)
      await page.getByRole('button', { name: 'Sign in', exact: true }).click()
      await page.waitForURL(`${origin}/account`)
      await page.getByText('Signed in as acct.').waitFor()
      expect(await page.title()).toBe('Your account – AuthGate')

      // TOTP on: the QR code, its key, a wrong first code, the right one, the recovery codes.
      await page.getByLabel('Password, to turn it on').fill(PASSWORD)
      await page.getByRole('button', { name: 'Set up an authenticator app' }).click()
      await page.getByRole('heading', { name: 'Set up an authenticator app' }).waitFor()
      expect(await page.locator('figure.qr svg').count()).toBe(1)
      const secret = ((await page.locator('code.secret').textContent()) ?? '').replace(/\s/g, '')
      await page.getByLabel('Code from your authenticator app').fill(codeAt(secret, Date.now() + 10 * 30_000))
      await page.getByRole('button', { name: 'Turn on two-step sign-in' }).click()
      await expect.poll(() => page.getByRole('alert').textContent()).toContain('The code is incorrect.')
      await page.getByLabel('Code from your authenticator app').fill(codeAt(secret, Date.now()))
      await page.getByRole('button', { name: 'Turn on two-step sign-in' }).click()
      await page.getByRole('heading', { name: 'Two-step sign-in is on' }).waitFor()
      expect(await page.locator('ul.codes li').count()).toBe(10)
      expect((await logIn(t.app, 'acct')).statusCode).toBe(401)
      await page.getByRole('link', { name: 'Back to your account' }).click()
      await page.getByText('10 recovery codes left').waitFor()

      // The passkey, then the app's session.
      await page.getByRole('button', { name: 'Remove the passkey Work laptop' }).click()
      await page.getByText('The passkey was removed.').waitFor()
      expect(
        (await t.app.inject({ url: '/auth/webauthn/credentials', headers: bearer(access_token) })).json(),
      ).toEqual([])
      const before = await page.getByRole('button', { name: /^Sign out the session/ }).count()
      expect(before).toBeGreaterThanOrEqual(2)
      await page
        .getByRole('button', { name: /^Sign out the session/ })
        .first()
        .click()
      await page.getByText('That session was signed out.').waitFor()
      expect(await page.getByRole('button', { name: /^Sign out the session/ }).count()).toBe(before - 1)

      // TOTP off, then the password.
      await page.getByLabel('Password, to turn it off').fill(PASSWORD)
      await page.getByRole('button', { name: 'Turn off two-step sign-in' }).click()
      await page.getByText('Two-step sign-in is off.').waitFor()
      await page.getByLabel('Current password').fill(PASSWORD)
      await page.getByLabel('New password').fill(NEW_PASSWORD)
      await page.getByRole('button', { name: 'Change password' }).click()
      await page.getByText('Your password was changed.').waitFor()
      expect(await page.evaluate<number>('document.documentElement.scrollWidth')).toBeLessThanOrEqual(375)
      expect(problems).toEqual([refusedForm('400 (Bad Request)', `${origin}/account/totp/confirm`)])
    })
    // Every other session ended with the password change.
    expect((await greet(t.app, app.access_token)).statusCode).toBe(401)
    expect((await logIn(t.app, 'acct', NEW_PASSWORD)).statusCode).toBe(200)
  })
})
