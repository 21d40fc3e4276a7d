// The login page's second step for an account with TOTP (issue 13 item 1), in Chromium over real
// HTTP: the code input that browsers and password managers fill (one-time-code, a digit keyboard),
// a wrong and a replayed code announced on the field, a recovery code instead, what the browser
// session records (amr), a phone-sized viewport, and no console error or CSP violation.
import type { AddressInfo } from 'node:net'
import type { Browser, BrowserContext, Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { servicesOf } from '../../src/app.js'
import { buildTestApp, PASSWORD, type TestApp } from '../helpers/app.js'
import {
  hasChromium as chromiumInstalled,
  launchChromium,
  withPage as openPage,
  refusedForm,
} from '../helpers/browser.js'
import { account } from '../helpers/http.js'
import { codeAt, enrolTotp, MFA_KEY, withOtp } from '../helpers/mfa.js'

const hasChromium = chromiumInstalled()
const STEP = 30_000

describe.skipIf(!hasChromium)('the second step of the login page, in Chromium', () => {
  let browser: Browser
  let t: TestApp
  let origin: string
  let secret: string
  let recoveryCodes: string[]
  // The code the first test signs in with: within its window for a minute, and spent.
  let usedCode = ''

  beforeAll(async () => {
    browser = await launchChromium()
    t = await buildTestApp({ MFA_ENCRYPTION_KEY: MFA_KEY })
    await t.app.listen({ port: 0, host: '127.0.0.1' })
    origin = `http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}`
    const pair = await account(t.app, 'two-step')
    // Confirmed with the previous step's code: now's and the next step's stay unused.
    ;({ secret, recoveryCodes } = await enrolTotp(t.app, pair.access_token, PASSWORD, Date.now() - STEP))
  })

  afterAll(async () => {
    await browser?.close()
    await t?.close()
  })

  const withPage = (
    run: (page: Page, problems: string[], context: BrowserContext) => Promise<void>,
    options: Parameters<Browser['newContext']>[0] = {},
  ) => openPage(browser, run, options)

  const resolve = async (context: BrowserContext) =>
    servicesOf(t.app)?.browserSessions.resolve(
      (await context.cookies(origin)).find((c) => c.name === 'authgate_session')?.value,
    )
  const focused = (page: Page) => page.evaluate<string>('document.activeElement.id')

  /** The password step: lands on the code page. */
  async function password(page: Page, returnTo = '/login?done=1') {
    await page.goto(`${origin}/login?return_to=${encodeURIComponent(returnTo)}`)
    await page.getByLabel('Username').fill('two-step')
    await page.getByLabel('Password').fill(PASSWORD)
    await page.getByRole('button', { name: 'Sign in' }).click()
    await page.getByRole('heading', { name: 'Enter the code from your app' }).waitFor()
  }

  it('asks for the code after the password; a wrong one is announced on the field; the right one signs in', {
    timeout: 60_000,
  }, async () => {
    await withPage(async (page, problems, context) => {
      await password(page)
      expect(await page.title()).toBe('Enter your code – AuthGate')
      // No session yet: the password alone signs nobody in.
      expect(await resolve(context)).toBeUndefined()
      const input = page.getByLabel('Code from your authenticator app')
      expect(await input.getAttribute('autocomplete')).toBe('one-time-code')
      expect(await input.getAttribute('inputmode')).toBe('numeric')
      expect(await input.getAttribute('aria-describedby')).toBe('code-hint')

      await input.fill(codeAt(secret, Date.now() + 10 * STEP))
      await page.getByRole('button', { name: 'Continue' }).click()
      const alert = page.getByRole('alert')
      await expect.poll(() => alert.textContent()).toContain('The code is incorrect.')
      expect(await page.title()).toBe('Error: Enter your code – AuthGate')
      expect(await focused(page)).toBe('error-summary')
      expect(await input.getAttribute('aria-invalid')).toBe('true')
      expect(await input.getAttribute('aria-describedby')).toBe('code-hint code-error')

      usedCode = codeAt(secret, Date.now())
      await input.fill(usedCode)
      await page.getByRole('button', { name: 'Continue' }).click()
      await page.waitForURL(`${origin}/login?done=1`)
      await page.getByText('You are signed in as two-step.').waitFor()
      expect(await resolve(context)).toMatchObject({ username: 'two-step', amr: ['pwd', 'otp'] })
      expect(problems).toEqual([refusedForm('400 (Bad Request)', `${origin}/login/mfa`)])
    })
  })

  it('refuses the same code again, and the page mfa_token at the token endpoint', {
    timeout: 60_000,
  }, async () => {
    await withPage(async (page, problems) => {
      await password(page)
      // The token endpoint does not take what the page was given (and the try spends nothing).
      const pageToken = await page.locator('input[name="mfa_token"]').getAttribute('value')
      const elsewhere = await withOtp(t.app, pageToken ?? '', codeAt(secret, Date.now() + STEP))
      expect(elsewhere.statusCode).toBe(400)
      // Typed with a space, as apps show it: "123 456".
      const used = usedCode
      expect(used).toMatch(/^[0-9]{6}$/)
      await page.getByLabel('Code from your authenticator app').fill(`${used.slice(0, 3)} ${used.slice(3)}`)
      await page.getByRole('button', { name: 'Continue' }).click()
      await expect
        .poll(() => page.getByRole('alert').textContent())
        .toContain('The code was already used; wait for the next one.')
      expect(problems).toEqual([refusedForm('400 (Bad Request)', `${origin}/login/mfa`)])
    })
  })

  it('takes a recovery code instead, on a phone-sized screen', { timeout: 60_000 }, async () => {
    await withPage(
      async (page, problems, context) => {
        await password(page)
        await page.getByRole('button', { name: 'Use a recovery code instead' }).click()
        await page.getByRole('heading', { name: 'Enter a recovery code' }).waitFor()
        const input = page.getByLabel('Recovery code')
        expect(await input.getAttribute('autocomplete')).toBe('off')
        expect(await page.evaluate<number>('document.documentElement.scrollWidth')).toBeLessThanOrEqual(375)
        expect((await input.boundingBox())?.height).toBeGreaterThanOrEqual(44)
        await input.fill(recoveryCodes[0] as string)
        await page.getByRole('button', { name: 'Continue' }).click()
        await page.getByText('You are signed in as two-step.').waitFor()
        expect(await resolve(context)).toMatchObject({ amr: ['pwd', 'mfa'] })
        expect(problems).toEqual([])
      },
      { viewport: { width: 375, height: 667 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 },
    )
  })
})
