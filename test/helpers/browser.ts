// What the Chromium tests share: where Chromium is, and the watch for every problem a page reports.
import { existsSync } from 'node:fs'
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core'
import { requirePrerequisite } from './prerequisite.js'

export const CHROMIUM = '/usr/bin/chromium'

/** Whether Chromium is installed; when not, the suite skips loudly, or fails under CI=true. */
export const hasChromium = (): boolean => requirePrerequisite(existsSync(CHROMIUM), `Chromium (${CHROMIUM})`)

/**
 * Debian's Chromium, headless, with `hosts` (other.test, client.test...) resolving to 127.0.0.1:
 * the tests' other sites, each its own origin and site, served on this machine.
 */
export function launchChromium(hosts: string[] = [], extraArgs: string[] = []): Promise<Browser> {
  const rules = hosts.map((host) => `MAP ${host} 127.0.0.1`).join(', ')
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      ...(rules ? [`--host-resolver-rules=${rules}`] : []),
      ...extraArgs,
    ],
  })
}

// Reported as console errors, so a CSP violation fails a test like any other console error.
const REPORT_CSP_VIOLATIONS = `document.addEventListener('securitypolicyviolation', (e) => {
  console.error('CSP violation: ' + e.violatedDirective + ' blocked ' + e.blockedURI + ' in ' + e.sourceFile + ':' + e.lineNumber)
})`

/**
 * Everything the page reports as wrong: console errors (Chromium's own "Failed to load resource"
 * and CSP reports among them, with where they came from), uncaught exceptions, CSP violations.
 */
export async function watchProblems(page: Page): Promise<string[]> {
  const problems: string[] = []
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(`${message.text()} @ ${message.location().url}`)
  })
  page.on('pageerror', (err) => {
    problems.push(`uncaught: ${err.message}`)
  })
  await page.addInitScript({ content: REPORT_CSP_VIOLATIONS })
  return problems
}

/** What Chromium reports (a console error) when a form's answer is a 4xx page, as it should be. */
export const refusedForm = (status: string, url: string) =>
  `Failed to load resource: the server responded with a status of ${status} @ ${url}`

/** A phone-sized screen, for the pages that must be usable on one. */
export const PHONE = { viewport: { width: 375, height: 667 }, isMobile: true } as const

/**
 * Runs `run` in a fresh browser context (no cookies from another test) with one page, whose steps
 * wait at most 15 s, and the problems that page reports; the context is closed whatever happens.
 */
export async function withPage(
  browser: Browser,
  run: (page: Page, problems: string[], context: BrowserContext) => Promise<void>,
  options: Parameters<Browser['newContext']>[0] = {},
): Promise<void> {
  const context = await browser.newContext(options)
  try {
    const page = await context.newPage()
    page.setDefaultTimeout(15_000)
    await run(page, await watchProblems(page), context)
  } finally {
    await context.close()
  }
}
