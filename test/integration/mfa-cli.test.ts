// The operator's side of the second factor (issue 13 item 5): `authgate user show` lists a user's
// factors without secrets, `authgate user mfa-reset` removes them, ends every session and is
// audited. In-process CLI on the app's own database (SQLite; PostgreSQL in the second run).
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { auditWritten, buildTestApp, inspect, PASSWORD, type TestApp } from '../helpers/app.js'
import { runCli } from '../helpers/cli.js'
import { account, greet, logIn } from '../helpers/http.js'
import { enrolTotp, MFA_KEY, mfaToken } from '../helpers/mfa.js'

describe('authgate user show and user mfa-reset', () => {
  let t: TestApp
  let env: Record<string, string>
  beforeAll(async () => {
    t = await buildTestApp({ MFA_ENCRYPTION_KEY: MFA_KEY })
    env = { DATABASE_URL: t.dbUrl }
  })
  afterAll(async () => {
    await t.close()
  })

  it('shows the factors, never a secret; resets them, ending every session; audited', async () => {
    const pair = await account(t.app, 'lost-phone')
    const { secret, recoveryCodes } = await enrolTotp(t.app, pair.access_token, PASSWORD, Date.now())
    await mfaToken(t.app, 'lost-phone', PASSWORD)

    const shown = await runCli(['user', 'show', 'lost-phone', '--json'], env)
    expect(shown.code).toBe(0)
    expect(JSON.parse(shown.stdout)).toMatchObject({
      username: 'lost-phone',
      hash_scheme: 'argon2id',
      totp: 'enabled',
      recovery_codes_left: 10,
    })
    const text = await runCli(['user', 'show', 'lost-phone'], env)
    expect(text.stdout).toContain('totp\tenabled')
    for (const out of [shown.stdout, text.stdout]) {
      expect(out).not.toContain(secret)
      for (const code of recoveryCodes) expect(out).not.toContain(code)
    }

    const reset = await runCli(['user', 'mfa-reset', 'lost-phone'], env)
    expect(reset).toMatchObject({
      code: 0,
      stdout: 'Removed the second factor of lost-phone; 1 session ended.\n',
    })
    // Another process ended it: this one hears within a second (docs/security.md).
    await expect
      .poll(async () => (await greet(t.app, pair.access_token)).statusCode, { timeout: 2000 })
      .toBe(401)
    // The password alone signs in again.
    expect((await logIn(t.app, 'lost-phone')).statusCode).toBe(200)
    expect(JSON.parse((await runCli(['user', 'show', 'lost-phone', '--json'], env)).stdout)).toMatchObject({
      totp: 'off',
      recovery_codes_left: 0,
    })
    await auditWritten(t.app)
    const audited = await inspect(t.dbUrl)
      .selectFrom('authgate_audit_log')
      .selectAll()
      .where('type', '=', 'mfa.reset')
      .execute()
    expect(audited).toHaveLength(1)
    expect(audited[0]).toMatchObject({ outcome: 'success', username: 'lost-phone' })
    expect(JSON.parse(audited[0]?.detail as string)).toMatchObject({
      actor: 'cli',
      removed: true,
      endedSessions: 1,
    })

    // The login above started a session; a second reset removes nothing but ends that.
    const again = await runCli(['user', 'mfa-reset', 'lost-phone'], env)
    expect(again.stdout).toBe('lost-phone had no second factor; 1 session ended.\n')
    for (const command of ['show', 'mfa-reset']) {
      const missing = await runCli(['user', command, 'nobody-at-all'], env)
      expect(missing).toMatchObject({ code: 1, stderr: 'No user named nobody-at-all.\n' })
    }
  })
})
