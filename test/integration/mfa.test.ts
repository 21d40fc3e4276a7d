// TOTP and recovery codes through the token endpoint (issue 13 item 1), on a real database
// (SQLite, then PostgreSQL): enrolment, the two-step password grant, single use of codes and of
// mfa_tokens, the throttle on wrong codes, removal, and what reaches the database and the audit log.
import { Secret, TOTP, URI } from 'otpauth'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { frozenClock } from '../../src/lib/clock.js'
import { auditWritten, buildTestApp, inspect, PASSWORD, type TestApp } from '../helpers/app.js'
import { account, bearer, decodeJwt, greet, logIn, pairOf, signUp } from '../helpers/http.js'
import {
  beginTotp,
  codeAt,
  confirmTotp,
  enrolTotp,
  MFA_KEY,
  mfaToken,
  removeTotp,
  withOtp,
  withRecoveryCode,
} from '../helpers/mfa.js'

const STEP = 30_000

describe('TOTP through the token endpoint', () => {
  // Mid-step, so that a code of "now" is not also a code of the next step's window edge.
  const clock = frozenClock(Math.floor(Date.now() / STEP) * STEP + 10_000)
  let t: TestApp
  beforeAll(async () => {
    t = await buildTestApp(
      { MFA_ENCRYPTION_KEY: MFA_KEY, JWT_ISSUER: 'https://auth.example.test' },
      { clock },
    )
  })
  afterAll(async () => {
    await t.close()
  })

  /** A new account with TOTP confirmed at the clock's step; the clock then moves one step on. */
  async function enrolled(name: string) {
    const pair = await account(t.app, name)
    const enrolment = await enrolTotp(t.app, pair.access_token, PASSWORD, clock.now())
    clock.advance(STEP)
    return { ...enrolment, pair }
  }

  it('enrols: a 160-bit secret and its otpauth:// URI, sealed at rest, enforced only once confirmed', async () => {
    const { access_token } = await account(t.app, 'enid')
    const me = (
      await inspect(t.dbUrl)
        .selectFrom('users')
        .select('id')
        .where('username', '=', 'enid')
        .executeTakeFirstOrThrow()
    ).id

    expect((await beginTotp(t.app, access_token, 'not my password')).statusCode).toBe(400)
    const begun = await beginTotp(t.app, access_token, PASSWORD)
    expect(begun.statusCode).toBe(200)
    expect(begun.headers['cache-control']).toBe('no-store')
    const { secret, otpauth_uri } = begun.json()
    expect(Secret.fromBase32(secret).bytes).toHaveLength(20)
    const parsed = URI.parse(otpauth_uri) as TOTP
    expect(parsed).toBeInstanceOf(TOTP)
    expect(parsed.secret.base32).toBe(secret)
    expect(parsed.issuer).toBe('auth.example.test')
    expect(parsed.label).toBe('enid')
    expect([parsed.algorithm, parsed.digits, parsed.period]).toEqual(['SHA1', 6, 30])

    // Stored sealed: neither the base32 secret nor its bytes in any encoding.
    const row = await inspect(t.dbUrl)
      .selectFrom('authgate_totp')
      .selectAll()
      .where('user_id', '=', me)
      .executeTakeFirstOrThrow()
    expect(row.secret).not.toContain(secret)
    expect(row.secret).not.toContain(Buffer.from(Secret.fromBase32(secret).bytes).toString('hex'))
    expect(row.confirmed_at).toBeNull()
    const pending = await t.app.inject({ method: 'GET', url: '/auth/mfa', headers: bearer(access_token) })
    expect(pending.json()).toEqual({ totp: 'pending', recovery_codes_left: 0 })
    // Not confirmed: the password alone still signs in.
    expect((await logIn(t.app, 'enid')).statusCode).toBe(200)

    const wrong = await confirmTotp(t.app, access_token, codeAt(secret, clock.now() + 10 * STEP))
    expect(wrong.statusCode).toBe(400)
    expect(wrong.json().code).toBe('invalid_otp')
    const confirmed = await confirmTotp(t.app, access_token, codeAt(secret, clock.now()))
    expect(confirmed.statusCode).toBe(200)
    const codes: string[] = confirmed.json().recovery_codes
    expect(codes).toHaveLength(10)
    expect(new Set(codes).size).toBe(10)
    for (const c of codes) expect(c).toMatch(/^[0-9a-hjkmnp-tv-z]{5}(-[0-9a-hjkmnp-tv-z]{5}){4}$/)
    const stored = await inspect(t.dbUrl)
      .selectFrom('authgate_recovery_codes')
      .select('code_hash')
      .where('user_id', '=', me)
      .execute()
    expect(stored).toHaveLength(10)
    for (const c of codes) expect(JSON.stringify(stored)).not.toContain(c.replaceAll('-', ''))
    const status = await t.app.inject({ method: 'GET', url: '/auth/mfa', headers: bearer(access_token) })
    expect(status.json()).toEqual({ totp: 'enabled', recovery_codes_left: 10 })

    // A second enrolment does not replace the confirmed one.
    const again = await beginTotp(t.app, access_token, PASSWORD)
    expect(again.statusCode).toBe(409)
    expect(again.json().code).toBe('mfa_already_enabled')
  })

  it('logs in in two steps: mfa_required with an mfa_token, then the code; amr says so', async () => {
    const { secret } = await enrolled('otto')
    const first = await logIn(t.app, 'otto')
    expect(first.statusCode).toBe(401)
    expect(first.headers['cache-control']).toBe('no-store')
    const body = first.json()
    expect(body).toEqual({
      detail: 'Multi-factor authentication required',
      code: 'mfa_required',
      mfa_token: expect.any(String),
    })
    expect(first.headers['set-cookie']).toBeUndefined()

    const wrong = await withOtp(t.app, body.mfa_token, codeAt(secret, clock.now() + 5 * STEP))
    expect(wrong.statusCode).toBe(400)
    expect(wrong.json()).toMatchObject({ error: 'invalid_grant', detail: 'The code is incorrect' })
    // A wrong code does not spend the token.
    const done = await withOtp(t.app, body.mfa_token, codeAt(secret, clock.now()))
    const pair = await pairOf(done)
    expect(done.headers['set-cookie']).toMatch(/^authgate_device=/)
    expect((await greet(t.app, pair.access_token)).statusCode).toBe(200)
    const sid = decodeJwt(pair.access_token).sid as string
    const session = await inspect(t.dbUrl)
      .selectFrom('authgate_sessions')
      .select('amr')
      .where('id', '=', sid)
      .executeTakeFirstOrThrow()
    expect(JSON.parse(session.amr as string)).toEqual(['pwd', 'otp'])

    // Single use: the token is spent, whatever code comes with it.
    clock.advance(STEP)
    const spent = await withOtp(t.app, body.mfa_token, codeAt(secret, clock.now()))
    expect(spent.statusCode).toBe(400)
    expect(spent.json().detail).toBe('The mfa_token is invalid, expired or already used')
  })

  it('refuses a replayed code, and an older one once a newer was used (RFC 6238 §5.2)', async () => {
    const { secret } = await enrolled('rex')
    const code = codeAt(secret, clock.now())
    expect((await withOtp(t.app, await mfaToken(t.app, 'rex', PASSWORD), code)).statusCode).toBe(200)
    const replay = await withOtp(t.app, await mfaToken(t.app, 'rex', PASSWORD), code)
    expect(replay.statusCode).toBe(400)
    expect(replay.json().detail).toBe('The code was already used; wait for the next one')
    // The next step's code is accepted (one step of skew), then the current one is older.
    const next = codeAt(secret, clock.now() + STEP)
    expect((await withOtp(t.app, await mfaToken(t.app, 'rex', PASSWORD), next)).statusCode).toBe(200)
    clock.advance(STEP)
    const older = codeAt(secret, clock.now() - STEP)
    expect((await withOtp(t.app, await mfaToken(t.app, 'rex', PASSWORD), older)).statusCode).toBe(400)
    clock.advance(STEP)
    expect(
      (await withOtp(t.app, await mfaToken(t.app, 'rex', PASSWORD), codeAt(secret, clock.now()))).statusCode,
    ).toBe(200)
  })

  it('burns a recovery code: it signs in once, with amr mfa, and the count goes down', async () => {
    const { recoveryCodes, pair } = await enrolled('rory')
    const [code, other] = recoveryCodes as [string, string]
    // Typed loosely: upper case, spaces for dashes.
    const typed = code.toUpperCase().replaceAll('-', ' ')
    const used = await pairOf(await withRecoveryCode(t.app, await mfaToken(t.app, 'rory', PASSWORD), typed))
    const sid = decodeJwt(used.access_token).sid as string
    const session = await inspect(t.dbUrl)
      .selectFrom('authgate_sessions')
      .select('amr')
      .where('id', '=', sid)
      .executeTakeFirstOrThrow()
    expect(JSON.parse(session.amr as string)).toEqual(['pwd', 'mfa'])
    const again = await withRecoveryCode(t.app, await mfaToken(t.app, 'rory', PASSWORD), code)
    expect(again.statusCode).toBe(400)
    expect(again.json().error).toBe('invalid_grant')
    const status = await t.app.inject({ method: 'GET', url: '/auth/mfa', headers: bearer(pair.access_token) })
    expect(status.json()).toEqual({ totp: 'enabled', recovery_codes_left: 9 })
    expect((await withRecoveryCode(t.app, await mfaToken(t.app, 'rory', PASSWORD), other)).statusCode).toBe(
      200,
    )
  })

  it('voids an mfa_token after 5 minutes, and after a password change', async () => {
    const { secret, pair } = await enrolled('tess')
    const late = await mfaToken(t.app, 'tess', PASSWORD)
    clock.advance(5 * 60_000)
    expect((await withOtp(t.app, late, codeAt(secret, clock.now()))).statusCode).toBe(400)

    const before = await mfaToken(t.app, 'tess', PASSWORD)
    const changed = await t.app.inject({
      method: 'POST',
      url: '/auth/password',
      headers: bearer(pair.access_token),
      payload: { current_password: PASSWORD, new_password: 'another horse battery staple' },
    })
    expect(changed.statusCode).toBe(204)
    clock.advance(STEP)
    const after = await withOtp(t.app, before, codeAt(secret, clock.now()))
    expect(after.statusCode).toBe(401)
    expect(after.json().code).toBe('invalid_credentials')
    // Nor did it leave a session behind.
    const live = await inspect(t.dbUrl)
      .selectFrom('authgate_sessions')
      .innerJoin('users', 'users.id', 'authgate_sessions.user_id')
      .select('authgate_sessions.id')
      .where('users.username', '=', 'tess')
      .where('revoked_at', 'is', null)
      .execute()
    expect(live).toHaveLength(1)
  })

  it('answers 400, never 500, to a missing or malformed second step', async () => {
    const t1 = await logIn(t.app, 'nobody-here')
    expect(t1.statusCode).toBe(401)
    const form = { 'content-type': 'application/x-www-form-urlencoded' }
    for (const payload of [
      'grant_type=urn:authgate:grant-type:mfa-otp',
      'grant_type=urn:authgate:grant-type:mfa-otp&mfa_token=x',
      'grant_type=urn:authgate:grant-type:mfa-otp&mfa_token=x&otp=123456',
      'grant_type=urn:authgate:grant-type:mfa-recovery-code&mfa_token=x&recovery_code=nope',
    ]) {
      const res = await t.app.inject({ method: 'POST', url: '/auth/token', headers: form, payload })
      expect(res.statusCode, payload).toBe(400)
      expect(['invalid_request', 'invalid_grant']).toContain(res.json().error)
    }
    const long = await t.app.inject({
      method: 'POST',
      url: '/auth/token',
      headers: form,
      payload: `grant_type=urn:authgate:grant-type:mfa-otp&mfa_token=x&otp=${'1'.repeat(40)}`,
    })
    expect(long.statusCode).toBe(422)
  })

  it('removes TOTP with a current code or the password; the password alone signs in again', async () => {
    const { secret, pair } = await enrolled('remy')
    const replayed = await removeTotp(t.app, pair.access_token, { code: codeAt(secret, clock.now() - STEP) })
    expect(replayed.statusCode).toBe(400)
    expect(replayed.json().code).toBe('invalid_otp')
    const both = await removeTotp(t.app, pair.access_token, { password: PASSWORD, code: '123456' } as never)
    expect(both.statusCode).toBe(422)
    expect(
      (await removeTotp(t.app, pair.access_token, { code: codeAt(secret, clock.now()) })).statusCode,
    ).toBe(204)
    expect((await logIn(t.app, 'remy')).statusCode).toBe(200)
    expect((await removeTotp(t.app, pair.access_token, { password: PASSWORD })).statusCode).toBe(409)

    const second = await enrolled('remy2')
    expect(
      (await removeTotp(t.app, second.pair.access_token, { password: 'wrong password!' })).statusCode,
    ).toBe(400)
    expect((await removeTotp(t.app, second.pair.access_token, { password: PASSWORD })).statusCode).toBe(204)
    const left = await inspect(t.dbUrl)
      .selectFrom('authgate_recovery_codes')
      .innerJoin('users', 'users.id', 'authgate_recovery_codes.user_id')
      .select('code_hash')
      .where('users.username', '=', 'remy2')
      .execute()
    expect(left).toHaveLength(0)
  })

  it('audits enrolment, use, removal and a burnt code, and never a secret, a code or an mfa_token', async () => {
    const { secret, recoveryCodes, pair } = await enrolled('aude')
    const token = await mfaToken(t.app, 'aude', PASSWORD)
    const otp = codeAt(secret, clock.now())
    await pairOf(await withOtp(t.app, token, otp))
    const recovery = recoveryCodes[0] as string
    await pairOf(await withRecoveryCode(t.app, await mfaToken(t.app, 'aude', PASSWORD), recovery))
    expect((await removeTotp(t.app, pair.access_token, { password: PASSWORD })).statusCode).toBe(204)
    await auditWritten(t.app)
    const user = await inspect(t.dbUrl)
      .selectFrom('users')
      .select('id')
      .where('username', '=', 'aude')
      .executeTakeFirstOrThrow()
    const rows = await inspect(t.dbUrl)
      .selectFrom('authgate_audit_log')
      .selectAll()
      .where((eb) => eb.or([eb('username', '=', 'aude'), eb('user_id', '=', user.id)]))
      .orderBy('seq')
      .execute()
    const types = rows.map((r) => r.type)
    for (const type of [
      'mfa.totp_enrolment_started',
      'mfa.totp_enabled',
      'login.mfa_required',
      'mfa.recovery_code_used',
      'mfa.totp_removed',
    ])
      expect(types).toContain(type)
    const succeeded = rows
      .filter((r) => r.type === 'login.succeeded')
      .map((r) => JSON.parse(r.detail as string).amr)
    expect(succeeded).toEqual(expect.arrayContaining(['pwd otp', 'pwd mfa']))
    const text = JSON.stringify(rows)
    for (const secretThing of [secret, otp, token, recovery, recovery.replaceAll('-', '')])
      expect(text).not.toContain(secretThing)
  })
})

describe('TOTP without MFA_ENCRYPTION_KEY', () => {
  let t: TestApp
  beforeAll(async () => {
    t = await buildTestApp()
  })
  afterAll(async () => {
    await t.close()
  })

  it('cannot be enrolled: 503 mfa_unavailable, and the password is not even checked', async () => {
    const { access_token } = await account(t.app, 'nokey')
    const res = await beginTotp(t.app, access_token, 'wrong password, never checked')
    expect(res.statusCode).toBe(503)
    expect(res.json()).toEqual({
      detail: 'TOTP is not available on this server: MFA_ENCRYPTION_KEY is not set',
      code: 'mfa_unavailable',
    })
  })
})

describe('wrong codes are throttled per account', () => {
  const clock = frozenClock(Math.floor(Date.now() / STEP) * STEP + 10_000)
  let t: TestApp
  beforeAll(async () => {
    t = await buildTestApp(
      {
        MFA_ENCRYPTION_KEY: MFA_KEY,
        RATE_LIMIT: 'on',
        LOGIN_IP_MAX_FAILURES: '100000',
        REGISTRATIONS_PER_IP_PER_HOUR: '100000',
      },
      { clock },
    )
  })
  afterAll(async () => {
    await t.close()
  })

  it('10 wrong codes get 400, the 11th 429 even when right; a new window lets the owner in', async () => {
    expect((await signUp(t.app, 'guessed')).statusCode).toBe(201)
    const login = await pairOf(await logIn(t.app, 'guessed'))
    const { secret } = await enrolTotp(t.app, login.access_token, PASSWORD, clock.now())
    clock.advance(STEP)
    const token = await mfaToken(t.app, 'guessed', PASSWORD)
    const wrong = codeAt(secret, clock.now() + 10 * STEP)
    for (let i = 0; i < 10; i++)
      expect((await withOtp(t.app, token, wrong)).statusCode, `guess ${i + 1}`).toBe(400)
    const eleventh = await withOtp(t.app, token, codeAt(secret, clock.now()))
    expect(eleventh.statusCode).toBe(429)
    expect(Number(eleventh.headers['retry-after'])).toBeGreaterThan(0)
    // A fresh mfa_token does not reset the count: it is the account's.
    expect(
      (await withOtp(t.app, await mfaToken(t.app, 'guessed', PASSWORD), codeAt(secret, clock.now())))
        .statusCode,
    ).toBe(429)
    clock.advance(15 * 60_000)
    expect(
      (await withOtp(t.app, await mfaToken(t.app, 'guessed', PASSWORD), codeAt(secret, clock.now())))
        .statusCode,
    ).toBe(200)
  })
})
