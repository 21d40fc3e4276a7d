// Passkeys' refusals that need no browser (issue 13 item 2; the ceremonies themselves are in
// test/e2e/passkeys-browser.test.ts): malformed and unknown answers get a clear 4xx and change
// nothing, a PUBLIC_URL without a domain name turns passkeys off, and sign-in challenges are
// stored only once spent, once.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { signedLoginChallenge, WEBAUTHN_TIMEOUT_MS } from '../../src/domain/passkeys.js'
import { frozenClock } from '../../src/lib/clock.js'
import { buildTestApp, inspect, type TestApp } from '../helpers/app.js'
import { account, bearer } from '../helpers/http.js'
import { SoftwarePasskey } from '../helpers/passkey.js'

const JSON_TYPE = { 'content-type': 'application/json' }
const b64 = (s: string) => Buffer.from(s).toString('base64url')
const assertion = (id: string) => ({
  id,
  rawId: id,
  type: 'public-key',
  response: {
    clientDataJSON: b64('{"type":"webauthn.get"}'),
    authenticatorData: b64('x'.repeat(37)),
    signature: b64('sig'),
    userHandle: b64('nobody'),
  },
  clientExtensionResults: {},
})

describe('passkeys on a domain', () => {
  let t: TestApp
  const clock = frozenClock()
  beforeAll(async () => {
    t = await buildTestApp({ PUBLIC_URL: 'https://auth.example.test' }, { clock })
  })
  afterAll(async () => {
    await t.close()
  })

  const post = (url: string, payload: unknown, headers: Record<string, string> = {}) =>
    t.app.inject({
      method: 'POST',
      url,
      headers: { ...JSON_TYPE, ...headers },
      payload: JSON.stringify(payload),
    })

  const challengeRows = async () =>
    Number(
      (
        await inspect(t.dbUrl)
          .selectFrom('authgate_webauthn_challenges')
          .select((eb) => eb.fn.countAll().as('n'))
          .executeTakeFirstOrThrow()
      ).n,
    )

  it('hands out sign-in options for this relying party, and writes nothing for them', async () => {
    const before = await challengeRows()
    const answers = await Promise.all(
      Array.from({ length: 20 }, () => post('/auth/webauthn/login/options', {})),
    )
    const challenges = new Set<string>()
    for (const res of answers) {
      expect(res.statusCode).toBe(200)
      expect(res.headers['cache-control']).toBe('no-store')
      const options = res.json()
      expect(options).toMatchObject({
        rpId: 'auth.example.test',
        userVerification: 'required',
        allowCredentials: [],
      })
      // A 16-byte random nonce, its expiry and a MAC (domain/passkeys.ts signedLoginChallenge).
      expect(Buffer.from(options.challenge, 'base64url').length).toBe(40)
      challenges.add(options.challenge)
    }
    expect(challenges.size).toBe(20)
    // The login page asks on every view, unauthenticated: nothing is stored until one is spent.
    expect(await challengeRows()).toBe(before)
  })

  it('signs in once per challenge, and never with a challenge it did not make or one expired', async () => {
    const { access_token } = await account(t.app, 'signs-in')
    const registration = (await post('/auth/webauthn/register/options', {}, bearer(access_token))).json()
    const passkey = new SoftwarePasskey('auth.example.test', 'https://auth.example.test')
    const registered = await post(
      '/auth/webauthn/register/verify',
      passkey.register(registration),
      bearer(access_token),
    )
    expect(registered.statusCode, registered.body).toBe(201)
    const fresh = async () => (await post('/auth/webauthn/login/options', {})).json().challenge as string

    // A challenge whose MAC is wrong (one byte of it changed), and one of our own format under a
    // MAC made with another secret: both refused, and nothing recorded.
    const genuine = Buffer.from(await fresh(), 'base64url')
    const tampered = Buffer.from(genuine)
    tampered[39] = (tampered[39] as number) ^ 1
    const foreign = Buffer.from(signedLoginChallenge('another deployment', clock.now() + 60_000))
    const before = await challengeRows()
    for (const bytes of [tampered, foreign]) {
      const res = await post('/auth/webauthn/login/verify', passkey.assert(bytes.toString('base64url')))
      expect(res.statusCode, res.body).toBe(400)
    }
    expect(await challengeRows()).toBe(before)

    // A genuine one: one sign-in, then the same assertion again is refused (spent). From an
    // authenticator without a counter (always 0, which WebAuthn §6.1.1 allows), so the spent
    // challenge alone refuses the replay.
    passkey.counter = -1
    const assertion = passkey.assert(await fresh())
    expect((await post('/auth/webauthn/login/verify', assertion)).statusCode).toBe(200)
    expect((await post('/auth/webauthn/login/verify', assertion)).statusCode).toBe(400)
    expect(await challengeRows()).toBe(before + 1)

    // Past WEBAUTHN_TIMEOUT_MS: refused, though its MAC is good.
    passkey.counter = -1
    const late = passkey.assert(await fresh())
    clock.advance(WEBAUTHN_TIMEOUT_MS + 1)
    expect((await post('/auth/webauthn/login/verify', late)).statusCode).toBe(400)
  })

  it('refuses an unknown credential with 400, and a malformed body with 422, never a 500', async () => {
    const unknown = await post('/auth/webauthn/login/verify', assertion('AAAA'))
    expect(unknown.statusCode).toBe(400)
    expect(unknown.json()).toEqual({ detail: 'The passkey could not be verified', code: 'invalid_passkey' })
    for (const body of [
      {},
      { id: 'x' },
      { ...assertion('AAAA'), type: 'password' },
      { ...assertion('not base64url!') },
      [],
    ]) {
      const res = await post('/auth/webauthn/login/verify', body)
      expect(res.statusCode, JSON.stringify(body)).toBe(422)
    }
    const garbage = await t.app.inject({
      method: 'POST',
      url: '/auth/webauthn/login/verify',
      headers: JSON_TYPE,
      payload: '{not json',
    })
    // As FastAPI answers a body that is not JSON.
    expect(garbage.statusCode).toBe(422)
  })

  it('registers only with a bearer token, and refuses an answer to no challenge', async () => {
    expect((await post('/auth/webauthn/register/options', {})).statusCode).toBe(401)
    const { access_token } = await account(t.app, 'keyholder')
    const res = await post(
      '/auth/webauthn/register/verify',
      { ...assertion('AAAA'), response: { clientDataJSON: b64('{}'), attestationObject: b64('x') } },
      bearer(access_token),
    )
    expect(res.statusCode).toBe(400)
    expect(res.json().code).toBe('invalid_passkey')
    const listed = await t.app.inject({ url: '/auth/webauthn/credentials', headers: bearer(access_token) })
    expect(listed.json()).toEqual([])
    const missing = await t.app.inject({
      method: 'DELETE',
      url: '/auth/webauthn/credentials/AAAA',
      headers: bearer(access_token),
    })
    expect(missing.statusCode).toBe(404)
  })

  it('offers passkeys on the login page', async () => {
    const page = await t.app.inject({ url: '/login' })
    expect(page.body).toContain('autocomplete="username webauthn"')
    expect(page.body).toContain('Sign in with a passkey')
    expect(page.headers['content-security-policy']).toContain("script-src 'self'")
  })
})

describe('passkeys on an IP address', () => {
  let t: TestApp
  beforeAll(async () => {
    t = await buildTestApp({ PUBLIC_URL: 'http://127.0.0.1:8000' })
  })
  afterAll(async () => {
    await t.close()
  })

  it('are off (WebAuthn needs a domain): 503 webauthn_unavailable, and no button on the login page', async () => {
    const res = await t.app.inject({ method: 'POST', url: '/auth/webauthn/login/options' })
    expect(res.statusCode).toBe(503)
    expect(res.json().code).toBe('webauthn_unavailable')
    const page = await t.app.inject({ url: '/login' })
    expect(page.body).not.toContain('passkey')
    expect(page.body).toContain('autocomplete="username"')
  })
})
