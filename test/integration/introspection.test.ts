// Token introspection (RFC 7662) and revocation by clients (RFC 7009) on SQLite and PostgreSQL:
// who may ask, what an active token says, that a revoked token is inactive at once here and soon
// after another process revoked it, that inactive says nothing more, and that a client revokes its
// own tokens only.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildApp, servicesOf } from '../../src/app.js'
import { frozenClock } from '../../src/lib/clock.js'
import { buildTestApp, fastHasher, inspect, type TestApp } from '../helpers/app.js'
import { runCli } from '../helpers/cli.js'
import {
  type ClientAuth,
  clientToken,
  INVALID_CLIENT,
  introspect,
  type RegisteredClient,
  registerClient,
  revoke,
} from '../helpers/clients.js'
import { logIn, signUp } from '../helpers/http.js'

const ISSUER = 'https://auth.example.com'
const INACTIVE = { active: false }

const greet = (t: TestApp, token: string) =>
  t.app.inject({ url: '/', headers: { authorization: `Bearer ${token}` } })

async function userPair(t: TestApp, username: string) {
  await signUp(t.app, username)
  const res = await logIn(t.app, username)
  expect(res.statusCode).toBe(200)
  return res.json() as { access_token: string; refresh_token: string }
}

let t: TestApp
let rs: RegisteredClient // a resource server: a confidential client that only introspects
let machine: RegisteredClient
let other: RegisteredClient
let spa: RegisteredClient
let asRs: ClientAuth
const clock = frozenClock()

beforeAll(async () => {
  t = await buildTestApp({ PUBLIC_URL: ISSUER }, { clock })
  rs = await registerClient(t.app, { name: 'Reports API' })
  machine = await registerClient(t.app, { name: 'Nightly export', scope: 'reports:read' })
  other = await registerClient(t.app, { name: 'Another machine', scope: 'reports:read' })
  spa = await registerClient(t.app, {
    name: 'SPA',
    public: true,
    grantTypes: ['authorization_code'],
    redirectUris: ['https://spa.example.com/cb'],
  })
  asRs = { basic: rs }
})
afterAll(() => t.close())

describe('POST /auth/introspect', () => {
  it("a user's access token: active, with whose it is; never cached", async () => {
    const { access_token } = await userPair(t, 'grace')
    const res = await introspect(t.app, asRs, access_token)
    expect(res.statusCode, res.body).toBe(200)
    expect(res.headers['cache-control']).toBe('no-store')
    const now = Math.floor(clock.now() / 1000)
    expect(res.json()).toEqual({
      active: true,
      sub: 'grace',
      username: 'grace',
      exp: now + 1800,
      iat: now,
      iss: ISSUER,
      jti: expect.any(String),
      token_type: 'Bearer',
    })
  })

  it("a client's access token: active, with its client and scope; client_secret_post works too", async () => {
    const token = await clientToken(t.app, machine)
    const res = await introspect(t.app, { post: rs }, token)
    expect(res.statusCode, res.body).toBe(200)
    const now = Math.floor(clock.now() / 1000)
    expect(res.json()).toEqual({
      active: true,
      scope: 'reports:read',
      client_id: machine.id,
      sub: machine.id,
      exp: now + 1800,
      iat: now,
      iss: ISSUER,
      aud: ISSUER,
      jti: expect.any(String),
      token_type: 'Bearer',
    })
  })

  it('a revoked token is inactive at once, as GET / refuses it at once', async () => {
    const pair = await userPair(t, 'hedy')
    expect((await introspect(t.app, asRs, pair.access_token)).json().active).toBe(true)
    // RFC 7009, the first-party way: the refresh token ends the session, no client needed.
    expect((await revoke(t.app, {}, pair.refresh_token)).statusCode).toBe(200)
    expect((await introspect(t.app, asRs, pair.access_token)).json()).toEqual(INACTIVE)
    expect((await greet(t, pair.access_token)).statusCode).toBe(401)
  })

  it("another process's revocation: inactive as soon as this one reads the feed", async () => {
    const pair = await userPair(t, 'katherine')
    expect((await introspect(t.app, asRs, pair.access_token)).json().active).toBe(true)
    // `authgate user set-password` in a process of its own ends every session of the user.
    const run = await runCli(
      ['user', 'set-password', 'katherine'],
      { DATABASE_URL: t.dbUrl },
      'a new passphrase 2026\n',
    )
    expect(run, run.stderr).toMatchObject({ code: 0 })
    await expect
      .poll(async () => (await introspect(t.app, asRs, pair.access_token)).json(), { timeout: 5_000 })
      .toEqual(INACTIVE)
    expect((await greet(t, pair.access_token)).statusCode).toBe(401)
  })

  it('inactive says nothing more, whatever the reason: garbage, tampered, expired, revoked', async () => {
    const expiring = await clientToken(t.app, machine)
    const tampered = `${expiring.slice(0, -6)}AAAAAA`
    // A verified token's signature over another payload (the verified-token cache finds entries
    // by signature, domain/client-tokens.ts): checked, and refused.
    expect((await introspect(t.app, asRs, expiring)).json().active).toBe(true)
    const [header, payload, signature] = expiring.split('.') as [string, string, string]
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString())
    const forged = Buffer.from(JSON.stringify({ ...claims, scope: 'admin' })).toString('base64url')
    const answers = [
      await introspect(t.app, asRs, 'not a token'),
      await introspect(t.app, asRs, ''),
      await introspect(t.app, asRs, 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.'),
      await introspect(t.app, asRs, tampered),
      await introspect(t.app, asRs, `${header}.${forged}.${signature}`),
      // Longer than any token of ours (the body limit is 16 KiB).
      await introspect(t.app, asRs, `${expiring}${'A'.repeat(8200)}`),
    ]
    clock.advance(1800_000)
    answers.push(await introspect(t.app, asRs, expiring))
    clock.advance(-1800_000)
    const live = await clientToken(t.app, machine)
    expect((await revoke(t.app, { basic: machine }, live)).statusCode).toBe(200)
    answers.push(await introspect(t.app, asRs, live))
    for (const res of answers) {
      expect(res.statusCode).toBe(200)
      expect(res.body).toBe('{"active":false}')
    }
  })

  it('a public client is refused: 401 invalid_client, with or without a made-up secret', async () => {
    const token = await clientToken(t.app, machine)
    for (const auth of [{ none: spa.id }, { post: { id: spa.id, secret: 'guess' } }] satisfies ClientAuth[]) {
      const res = await introspect(t.app, auth, token)
      expect(res.statusCode).toBe(401)
      expect(res.json()).toEqual(INVALID_CLIENT)
    }
  })

  it('no client, or a wrong secret: 401 invalid_client, before anything about the token', async () => {
    const token = await clientToken(t.app, machine)
    const none = await introspect(t.app, {}, token)
    expect(none.statusCode).toBe(401)
    expect(none.headers['www-authenticate']).toMatch(/^Basic/)
    expect(none.json()).toEqual(INVALID_CLIENT)
    const wrong = await introspect(t.app, { basic: { id: rs.id, secret: 'wrong' } }, token)
    expect(wrong.statusCode).toBe(401)
    expect(wrong.json()).toEqual(INVALID_CLIENT)
    // Without a token: still 401 first; authenticated, 400 invalid_request.
    expect((await introspect(t.app, {}, undefined)).statusCode).toBe(401)
    const missing = await introspect(t.app, asRs, undefined)
    expect(missing.statusCode).toBe(400)
    expect(missing.json()).toMatchObject({ error: 'invalid_request' })
  })

  it('is where discovery says, with the methods it says', async () => {
    const meta = (await t.app.inject({ url: '/.well-known/openid-configuration' })).json()
    expect(meta.introspection_endpoint).toBe(`${ISSUER}/auth/introspect`)
    expect(meta.introspection_endpoint_auth_methods_supported).toEqual([
      'client_secret_basic',
      'client_secret_post',
    ])
    const path = new URL(meta.introspection_endpoint).pathname
    const res = await t.app.inject({
      method: 'POST',
      url: path,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: new URLSearchParams({
        token: 'x',
        client_id: rs.id,
        client_secret: rs.secret ?? '',
      }).toString(),
    })
    expect(res.json()).toEqual(INACTIVE)
  })

  it('is a form endpoint: JSON is refused', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/auth/introspect',
      headers: { 'content-type': 'application/json' },
      payload: { token: 'x', client_id: rs.id, client_secret: rs.secret },
    })
    expect(res.statusCode).toBe(415)
  })
})

describe('POST /auth/revoke by clients', () => {
  it('a client revokes its own token: 200, inactive at once, audited', async () => {
    const token = await clientToken(t.app, machine)
    const res = await revoke(t.app, { basic: machine }, token)
    expect(res.statusCode).toBe(200)
    expect(res.json()).toEqual({})
    expect((await introspect(t.app, asRs, token)).json()).toEqual(INACTIVE)
    // Again: still 200, nothing more to do.
    expect((await revoke(t.app, { post: machine }, token)).statusCode).toBe(200)
    await servicesOf(t.app)?.audit.flush()
    const audited = await inspect(t.dbUrl)
      .selectFrom('authgate_audit_log')
      .select('detail')
      .where('type', '=', 'client.token_revoked')
      .execute()
    expect(audited.map((r) => JSON.parse(String(r.detail)).clientId)).toContain(machine.id)
  })

  it("another client's token: 200 and nothing happens (RFC 7009 §2.2)", async () => {
    const token = await clientToken(t.app, machine)
    const res = await revoke(t.app, { basic: other }, token)
    expect(res.statusCode).toBe(200)
    expect(res.json()).toEqual({})
    expect((await introspect(t.app, asRs, token)).json().active).toBe(true)
  })

  it("a client's token without its client's credentials, or with a wrong secret: 401, nothing revoked", async () => {
    const token = await clientToken(t.app, machine)
    const bare = await revoke(t.app, {}, token)
    expect(bare.statusCode).toBe(401)
    expect(bare.json()).toEqual(INVALID_CLIENT)
    const wrong = await revoke(t.app, { basic: { id: machine.id, secret: 'wrong' } }, token)
    expect(wrong.statusCode).toBe(401)
    expect(wrong.headers['www-authenticate']).toMatch(/^Basic/)
    expect((await introspect(t.app, asRs, token)).json().active).toBe(true)
  })

  it("an authenticated client cannot revoke a user's token of the first-party flow; the user can", async () => {
    const pair = await userPair(t, 'mary')
    expect((await revoke(t.app, { basic: machine }, pair.refresh_token)).statusCode).toBe(200)
    expect((await revoke(t.app, { basic: machine }, pair.access_token)).statusCode).toBe(200)
    expect((await introspect(t.app, asRs, pair.access_token)).json().active).toBe(true)
    expect((await revoke(t.app, {}, pair.access_token)).statusCode).toBe(200)
    expect((await introspect(t.app, asRs, pair.access_token)).json()).toEqual(INACTIVE)
  })

  it('a revocation at another instance on the same database reaches this one', async () => {
    const second = await buildApp(t.config, { hasher: fastHasher, clock })
    try {
      const token = await clientToken(t.app, machine)
      expect((await revoke(second, { basic: machine }, token)).statusCode).toBe(200)
      await expect
        .poll(async () => (await introspect(t.app, asRs, token)).json(), { timeout: 5_000 })
        .toEqual(INACTIVE)
    } finally {
      await second.close()
    }
  })
})
