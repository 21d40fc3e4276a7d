// requirePrerequisite: skip loudly when something a test needs is missing, or fail under CI=true.
// Its own module so vitest.config.ts can use it without loading the app.

/** Whether a prerequisite is present; when not, skip loudly, or fail under CI=true. */
export function requirePrerequisite(ok: boolean, what: string): boolean {
  if (ok) return true
  if (process.env.CI === 'true') throw new Error(`CI=true but ${what} is missing`)
  console.warn(`\n*** SKIPPED: ${what} is missing; install it (see .ci/run) to run these tests ***\n`)
  return false
}
