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
import { greet, logIn, pairOf } from '../helpers/http.js'
import { freePort } from '../helpers/server-process.js'
import { TestSmtpServer } from '../helpers/smtp.js'

const hasChromium = chromiumInstalled()
const NEW_PASSWORD = 'a brand new horse battery staple'

describe.skipIf(!hasChromium)('the email pages, in Chromium', () => {
  let browser: Browser
  let smtp: TestSmtpServer
  let t: TestApp
  let origin: string

  beforeAll(async () => {
    browser = await launchChromium()
    smtp = await new TestSmtpServer().start()
    const port = await freePort()
    origin = `http://127.0.0.1:${port}`
    t = await buildTestApp({ SMTP_URL: smtp.url, PUBLIC_URL: origin })
    await t.app.listen({ port, host: '127.0.0.1' })
  })

  afterAll(async () => {
    await browser?.close()
    await t?.close()
    await smtp?.close()
  })

  const withPage = (run: (page: Page, problems: string[]) => Promise<void>) => openPage(browser, run, PHONE)
  const linkIn = (text: string) => /https?:\/\/\S+/.exec(text)?.[0] ?? ''

  it('verifies an address from the link in its mail, with a button (the link alone changes nothing)', {
    timeout: 60_000,
  }, async () => {
    const created = await t.app.inject({
      method: 'POST',
      url: '/auth/',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ username: 'mailed', password: PASSWORD, email: 'mailed@example.test' }),
    })
    expect(created.statusCode).toBe(201)
    const link = linkIn((await smtp.next()).text)
    expect(new URL(link).origin).toBe(origin)
    await withPage(async (page, problems) => {
      await page.goto(link)
      expect(await page.title()).toBe('Verify your email address – AuthGate')
      await page.getByRole('button', { name: 'Verify my email address' }).click()
      await page.getByRole('heading', { name: 'Your email address is verified' }).waitFor()
      // The same link again: spent.
      await page.goto(link)
      await page.getByRole('button', { name: 'Verify my email address' }).click()
      await page.getByRole('heading', { name: 'This link does not work' }).waitFor()
      expect(problems).toEqual([refusedForm('400 (Bad Request)', `${origin}/email/verify`)])
    })
  })

  it('resets a forgotten password from the login page: the mail, its link, the policy, and a sign-in', {
    timeout: 60_000,
  }, async () => {
    const old = await pairOf(await logIn(t.app, 'mailed'))
    await withPage(async (page, problems) => {
      await page.goto(`${origin}/login`)
      await page.getByRole('link', { name: 'Forgot your password?' }).click()
      await page.getByLabel('Email address or username').fill('Mailed@Example.test')
      await page.getByRole('button', { name: 'Send the link' }).click()
      await page.getByRole('heading', { name: 'Check your email' }).waitFor()

      const mail = await smtp.next()
      expect(mail.subject).toBe('Reset your password')
      await page.goto(linkIn(mail.text))
      const input = page.getByLabel('New password')
      expect(await input.getAttribute('autocomplete')).toBe('new-password')
      await input.fill('password')
      await page.getByRole('button', { name: 'Set the new password' }).click()
      await expect.poll(() => page.getByRole('alert').textContent()).toContain('common')
      expect(await page.evaluate<string>('document.activeElement.id')).toBe('error-summary')
      await page.getByLabel('New password').fill(NEW_PASSWORD)
      await page.getByRole('button', { name: 'Set the new password' }).click()
      await page.getByRole('heading', { name: 'Your password was changed' }).waitFor()

      await page.getByRole('link', { name: 'Sign in' }).click()
      await page.getByLabel('Username').fill('mailed')
      await page.getByLabel('Password').fill(NEW_PASSWORD)
      await page.getByRole('button', { name: 'Sign in' }).click()
      await page.getByText('You are signed in as mailed.').waitFor()
      expect(await page.evaluate<number>('document.documentElement.scrollWidth')).toBeLessThanOrEqual(375)
      expect(problems).toEqual([refusedForm('422 (Unprocessable Entity)', `${origin}/password/reset`)])
    })
    // The session from before the reset is gone.
    expect((await greet(t.app, old.access_token)).statusCode).toBe(401)
  })
})
