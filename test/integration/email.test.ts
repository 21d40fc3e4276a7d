// Email and password reset (issue 13 item 3) against a real SMTP server (smtp-server on a local
// port) on a real database (SQLite, then PostgreSQL): the verification mail at sign-up and its
// link, a reset mail whose link sets a new password and ends every session, the same answer for
// an unknown address, single-use and expiring links, and the policy on the new password.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { frozenClock } from '../../src/lib/clock.js'
import { auditWritten, buildTestApp, inspect, PASSWORD, type TestApp } from '../helpers/app.js'
import { greet, logIn, pairOf } from '../helpers/http.js'
import { linkToken, TestSmtpServer } from '../helpers/smtp.js'

const NEW_PASSWORD = 'a brand new horse battery staple'

describe('email and password reset, through a real SMTP server', () => {
  const clock = frozenClock()
  let smtp: TestSmtpServer
  let t: TestApp
  beforeAll(async () => {
    smtp = await new TestSmtpServer().start()
    t = await buildTestApp(
      {
        SMTP_URL: smtp.url,
        MAIL_FROM: 'AuthGate <auth@example.test>',
        PUBLIC_URL: 'https://auth.example.test',
      },
      { clock },
    )
  })
  afterAll(async () => {
    await t.close()
    await smtp.close()
  })

  const post = (url: string, payload: unknown) =>
    t.app.inject({
      method: 'POST',
      url,
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify(payload),
    })

  /** Signs up with an address and follows the verification mail's link. */
  async function verified(username: string, address: string) {
    const created = await post('/auth/', { username, password: PASSWORD, email: address })
    expect(created.statusCode).toBe(201)
    const mail = await smtp.next()
    expect(mail.to.map((a) => a.toLowerCase())).toEqual([address.toLowerCase()])
    expect(mail.subject).toBe('Verify your email address')
    const token = linkToken(mail, '/email/verify')
    expect((await post('/auth/email/verify', { token })).statusCode).toBe(204)
    return token
  }

  it('sends a verification link at sign-up; it verifies once; the seed body without email still works', async () => {
    const token = await verified('vera', 'Vera@Example.test')
    expect((await post('/auth/email/verify', { token })).statusCode).toBe(400)
    const row = await inspect(t.dbUrl)
      .selectFrom('authgate_emails')
      .innerJoin('users', 'users.id', 'authgate_emails.user_id')
      .select(['email', 'email_normalized', 'verified_at'])
      .where('users.username', '=', 'vera')
      .executeTakeFirstOrThrow()
    expect(row).toMatchObject({ email: 'Vera@Example.test', email_normalized: 'vera@example.test' })
    expect(row.verified_at).not.toBeNull()
    // Only the link's hash is kept.
    const stored = await inspect(t.dbUrl).selectFrom('authgate_email_tokens').select('token_hash').execute()
    expect(JSON.stringify(stored)).not.toContain(token)
    expect((await post('/auth/', { username: 'seedstyle', password: PASSWORD })).statusCode).toBe(201)
    const bad = await post('/auth/', { username: 'bademail', password: PASSWORD, email: 'not an address' })
    expect(bad.statusCode).toBe(422)
    expect(bad.json().detail[0].loc).toEqual(['body', 'email'])
    expect((await logIn(t.app, 'bademail')).statusCode).toBe(401)
  })

  it('keeps a verified address on one account: a second verification of it is 409', async () => {
    await verified('first-owner', 'shared@example.test')
    expect(
      (await post('/auth/', { username: 'second-owner', password: PASSWORD, email: 'SHARED@example.test' }))
        .statusCode,
    ).toBe(201)
    const token = linkToken(await smtp.next(), '/email/verify')
    const taken = await post('/auth/email/verify', { token })
    expect(taken.statusCode).toBe(409)
    expect(taken.json().code).toBe('email_taken')
  })

  it('mails a reset link that sets a new password and ends every session; the link works once', async () => {
    await verified('resa', 'resa@example.test')
    const sessions = [await pairOf(await logIn(t.app, 'resa')), await pairOf(await logIn(t.app, 'resa'))]
    const answer = await post('/auth/password/forgot', { email: 'RESA@example.test' })
    expect(answer.statusCode).toBe(202)
    const mail = await smtp.next()
    expect(mail).toMatchObject({ to: ['resa@example.test'], subject: 'Reset your password' })
    const token = linkToken(mail, '/password/reset')

    const weak = await post('/auth/password/reset', { token, new_password: 'password' })
    expect(weak.statusCode).toBe(422)
    expect(weak.json().detail[0].loc).toEqual(['body', 'new_password'])
    // A refused password does not spend the link.
    expect((await post('/auth/password/reset', { token, new_password: NEW_PASSWORD })).statusCode).toBe(204)
    for (const pair of sessions) expect((await greet(t.app, pair.access_token)).statusCode).toBe(401)
    expect((await logIn(t.app, 'resa')).statusCode).toBe(401)
    expect((await logIn(t.app, 'resa', NEW_PASSWORD)).statusCode).toBe(200)
    const again = await post('/auth/password/reset', { token, new_password: 'yet another horse battery' })
    expect(again.statusCode).toBe(400)
    expect(again.json().code).toBe('invalid_link')
    await auditWritten(t.app)
    const events = await inspect(t.dbUrl)
      .selectFrom('authgate_audit_log')
      .select(['type', 'detail'])
      .where('type', 'like', 'password.reset%')
      .execute()
    expect(events.map((e) => e.type)).toEqual(['password.reset_requested', 'password.reset_by_email'])
    expect(JSON.stringify(events)).not.toContain(token)
  })

  it('answers an unknown address, an unverified one and a username alike, and mails only a verified account', async () => {
    await verified('known', 'known@example.test')
    await post('/auth/', { username: 'unverified', password: PASSWORD, email: 'unverified@example.test' })
    await smtp.next()
    const answers = []
    for (const who of [
      { email: 'nobody@example.test' },
      { email: 'unverified@example.test' },
      { username: 'nobody' },
      { username: 'known' },
    ])
      answers.push(await post('/auth/password/forgot', who))
    expect(new Set(answers.map((a) => `${a.statusCode} ${a.body}`)).size).toBe(1)
    expect(answers[0]?.json()).toEqual({
      message: 'If an account with a verified email matches, a reset link is on its way',
    })
    // The one mail that comes is the known account's (the others sent none before it).
    const mail = await smtp.next()
    expect(mail.to).toEqual(['known@example.test'])
    expect(smtp.received).toEqual([])
    expect((await post('/auth/password/forgot', {})).statusCode).toBe(422)
  })

  it('lets a reset link expire after an hour', async () => {
    await verified('late', 'late@example.test')
    await post('/auth/password/forgot', { username: 'late' })
    const token = linkToken(await smtp.next(), '/password/reset')
    clock.advance(60 * 60_000)
    expect((await post('/auth/password/reset', { token, new_password: NEW_PASSWORD })).statusCode).toBe(400)
    expect((await logIn(t.app, 'late')).statusCode).toBe(200)
  })
})

describe('email without SMTP_URL in production', () => {
  let t: TestApp
  beforeAll(async () => {
    t = await buildTestApp({ NODE_ENV: 'production' })
  })
  afterAll(async () => {
    await t.close()
  })

  it('is off: 503 mail_unavailable, no account made with an address, and no reset link on the login page', async () => {
    const post = (url: string, payload: unknown) =>
      t.app.inject({
        method: 'POST',
        url,
        headers: { 'content-type': 'application/json' },
        payload: JSON.stringify(payload),
      })
    const signUp = await post('/auth/', { username: 'mailless', password: PASSWORD, email: 'm@example.test' })
    expect(signUp.statusCode).toBe(503)
    expect(signUp.json().code).toBe('mail_unavailable')
    expect((await logIn(t.app, 'mailless')).statusCode).toBe(401)
    expect((await post('/auth/password/forgot', { email: 'm@example.test' })).statusCode).toBe(503)
    expect((await t.app.inject({ url: '/login' })).body).not.toContain('Forgot your password?')
  })
})
