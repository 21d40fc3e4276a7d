// The client credentials grant (RFC 6749 §4.4) on SQLite and PostgreSQL: client authentication
// (client_secret_basic, client_secret_post, and the failures, RFC 6749 §2.3 and §5.2), the scope
// rules, the RFC 9068 token verified by jose through the JWKS alone, what a client token may do at
// GET / (nothing: it is a user's route), and secret rotation racing grants.
import { createLocalJWKSet, decodeProtectedHeader, type JSONWebKeySet, jwtVerify } from 'jose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { servicesOf } from '../../src/app.js'
import { buildTestApp, PASSWORD, type TestApp } from '../helpers/app.js'
import {
  basicHeader,
  clientCredentials,
  clientToken,
  INVALID_CLIENT,
  OPERATOR,
  type RegisteredClient,
  registerClient,
} from '../helpers/clients.js'
import { logIn, signUp } from '../helpers/http.js'

const ISSUER = 'https://auth.example.com'

const greet = (t: TestApp, token: string) =>
  t.app.inject({ url: '/', headers: { authorization: `Bearer ${token}` } })

async function jwks(t: TestApp): Promise<JSONWebKeySet> {
  return (await t.app.inject({ url: '/.well-known/jwks.json' })).json()
}

/** POST /auth/token with a form and, if given, an Authorization header of any shape. */
const tokenRequest = (t: TestApp, form: Record<string, string>, authorization?: string) =>
  t.app.inject({
    method: 'POST',
    url: '/auth/token',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      ...(authorization === undefined ? {} : { authorization }),
    },
    payload: new URLSearchParams(form).toString(),
  })

describe('grant_type=client_credentials', () => {
  let t: TestApp
  let machine: RegisteredClient
  let web: RegisteredClient
  let spa: RegisteredClient
  beforeAll(async () => {
    t = await buildTestApp({ PUBLIC_URL: ISSUER })
    machine = await registerClient(t.app, { scope: 'reports:read reports:write openid offline_access' })
    web = await registerClient(t.app, {
      name: 'Web app',
      grantTypes: ['authorization_code', 'refresh_token'],
      redirectUris: ['https://app.example.com/cb'],
    })
    spa = await registerClient(t.app, {
      name: 'SPA',
      public: true,
      grantTypes: ['authorization_code'],
      redirectUris: ['https://spa.example.com/cb'],
    })
  })
  afterAll(() => t.close())

  it('client_secret_basic: an access token for the client, its scopes but openid and offline_access, no refresh token', async () => {
    const res = await clientCredentials(t.app, { basic: machine })
    expect(res.statusCode, res.body).toBe(200)
    expect(res.headers['cache-control']).toBe('no-store')
    expect(res.json()).toEqual({
      access_token: expect.any(String),
      token_type: 'bearer',
      expires_in: 1800,
      scope: 'reports:read reports:write',
    })
  })

  it('client_secret_post works the same', async () => {
    const res = await clientCredentials(t.app, { post: machine }, { scope: 'reports:read' })
    expect(res.statusCode, res.body).toBe(200)
    expect(res.json()).toMatchObject({ token_type: 'bearer', scope: 'reports:read' })
  })

  it('decodes Basic as form-urlencoded id and secret (RFC 6749 §2.3.1)', async () => {
    const spelled = [...(machine.id as string)].map((c) => `%${c.charCodeAt(0).toString(16)}`).join('')
    const authorization = `Basic ${Buffer.from(`${spelled}:${machine.secret}`).toString('base64')}`
    const res = await tokenRequest(t, { grant_type: 'client_credentials' }, authorization)
    expect(res.statusCode, res.body).toBe(200)
  })

  it('signs an RFC 9068 token (typ at+jwt) that jose verifies through the JWKS alone', async () => {
    const token = await clientToken(t.app, machine, 'reports:read')
    const header = decodeProtectedHeader(token)
    expect(header).toEqual({ alg: 'ES256', typ: 'at+jwt', kid: expect.any(String) })
    const { payload } = await jwtVerify(token, createLocalJWKSet(await jwks(t)), {
      typ: 'at+jwt',
      issuer: ISSUER,
      audience: ISSUER,
      algorithms: ['ES256'],
      requiredClaims: ['iss', 'exp', 'aud', 'sub', 'client_id', 'iat', 'jti'],
    })
    const now = Math.floor(Date.now() / 1000)
    expect(payload).toEqual({
      iss: ISSUER,
      sub: machine.id,
      aud: ISSUER,
      client_id: machine.id,
      scope: 'reports:read',
      iat: expect.any(Number),
      exp: (payload.iat as number) + 1800,
      jti: expect.any(String),
    })
    expect(Math.abs((payload.iat as number) - now)).toBeLessThan(60)
  })

  describe('refuses a client that does not authenticate, with one answer', () => {
    it('a wrong secret by Basic: 401 invalid_client and WWW-Authenticate: Basic', async () => {
      const res = await clientCredentials(t.app, { basic: { id: machine.id, secret: `${machine.secret}x` } })
      expect(res.statusCode).toBe(401)
      expect(res.headers['www-authenticate']).toMatch(/^Basic realm="authgate"/)
      expect(res.json()).toEqual(INVALID_CLIENT)
    })

    it('an unknown client by Basic: the same', async () => {
      const res = await clientCredentials(t.app, {
        basic: { id: 'nobody', secret: machine.secret as string },
      })
      expect(res.statusCode).toBe(401)
      expect(res.headers['www-authenticate']).toMatch(/^Basic/)
      expect(res.json()).toEqual(INVALID_CLIENT)
    })

    it('a wrong secret in the form: 401 invalid_client, no Basic challenge (Basic was not used)', async () => {
      const res = await clientCredentials(t.app, { post: { id: machine.id, secret: 'wrong' } })
      expect(res.statusCode).toBe(401)
      expect(res.headers['www-authenticate']).toBeUndefined()
      expect(res.json()).toEqual(INVALID_CLIENT)
    })

    it('a malformed Basic header, and no credentials at all: 401 invalid_client with the challenge', async () => {
      for (const authorization of [
        'Basic !!!',
        'Basic',
        `Basic ${Buffer.from('no-colon').toString('base64')}`,
      ]) {
        const res = await tokenRequest(t, { grant_type: 'client_credentials' }, authorization)
        expect(res.statusCode, authorization).toBe(401)
        expect(res.headers['www-authenticate'], authorization).toMatch(/^Basic/)
        expect(res.json(), authorization).toEqual(INVALID_CLIENT)
      }
      const none = await clientCredentials(t.app, {})
      expect(none.statusCode).toBe(401)
      expect(none.headers['www-authenticate']).toMatch(/^Basic/)
    })

    it('a confidential client naming itself without its secret (none): 401', async () => {
      const res = await clientCredentials(t.app, { none: machine.id })
      expect(res.statusCode).toBe(401)
      expect(res.json()).toEqual(INVALID_CLIENT)
    })

    it('a public client: refused, with or without a made-up secret (RFC 6749 §4.4)', async () => {
      for (const res of [
        await clientCredentials(t.app, { none: spa.id }),
        await clientCredentials(t.app, { post: { id: spa.id, secret: 'guess' } }),
        await clientCredentials(t.app, { basic: { id: spa.id, secret: 'guess' } }),
      ]) {
        expect(res.statusCode).toBe(401)
        expect(res.json()).toEqual(INVALID_CLIENT)
      }
    })
  })

  it('two methods at once (Basic and client_secret in the form): 400 invalid_request (RFC 6749 §2.3)', async () => {
    const res = await tokenRequest(
      t,
      { grant_type: 'client_credentials', client_id: machine.id, client_secret: machine.secret as string },
      basicHeader(machine.id, machine.secret as string),
    )
    expect(res.statusCode).toBe(400)
    expect(res.json()).toMatchObject({ error: 'invalid_request', code: 'invalid_request' })
  })

  it('Basic with client_id in the form naming another client: 400 invalid_request', async () => {
    const res = await tokenRequest(
      t,
      { grant_type: 'client_credentials', client_id: web.id },
      basicHeader(machine.id, machine.secret as string),
    )
    expect(res.statusCode).toBe(400)
    expect(res.json()).toMatchObject({ error: 'invalid_request' })
  })

  it('a confidential client not registered for the grant: 400 unauthorized_client', async () => {
    const res = await clientCredentials(t.app, { basic: web })
    expect(res.statusCode).toBe(400)
    expect(res.json()).toMatchObject({ error: 'unauthorized_client', code: 'unauthorized_client' })
  })

  it('the scope asked for must be within the client’s; openid and offline_access are not for machines', async () => {
    const granted = await clientCredentials(
      t.app,
      { basic: machine },
      { scope: 'reports:write reports:read' },
    )
    expect(granted.json().scope).toBe('reports:write reports:read')
    for (const scope of ['reports:read admin', 'openid', 'reports:read offline_access', 'bad"scope']) {
      const res = await clientCredentials(t.app, { basic: machine }, { scope })
      expect(res.statusCode, scope).toBe(400)
      expect(res.json(), scope).toMatchObject({ error: 'invalid_scope', code: 'invalid_scope' })
    }
  })

  it('a client with only user scopes gets invalid_scope without a scope', async () => {
    const userOnly = await registerClient(t.app, { scope: 'openid offline_access' })
    const res = await clientCredentials(t.app, { basic: userOnly })
    expect(res.statusCode).toBe(400)
    expect(res.json()).toMatchObject({ error: 'invalid_scope' })
  })

  it('GET / refuses a client token: it greets users, and a client is none (401 as for any bad token)', async () => {
    const res = await greet(t, await clientToken(t.app, machine))
    expect(res.statusCode).toBe(401)
    expect(res.headers['www-authenticate']).toBe('Bearer')
    expect(res.json()).toEqual({ detail: 'Could not validate credentials', code: 'invalid_token' })
    // Control: a user's token is greeted.
    await signUp(t.app, 'grace')
    const user = (await logIn(t.app, 'grace')).json().access_token
    expect((await greet(t, user)).statusCode).toBe(200)
  })

  it('leaves the password grant as it was: a Basic header there is ignored, as the seed ignores it', async () => {
    await signUp(t.app, 'ada')
    const res = await tokenRequest(t, { username: 'ada', password: PASSWORD, client_id: 'x' }, 'Basic !!!')
    expect(res.statusCode).toBe(200)
    expect(Object.keys(res.json()).sort()).toEqual([
      'access_token',
      'expires_in',
      'refresh_token',
      'token_type',
    ])
  })
})

describe('on other deployments', () => {
  it('HS256: client tokens are RS256 with the RS256 key of the JWKS; user tokens stay HS256', async () => {
    const t = await buildTestApp({ SECRET_KEY: 's'.repeat(40), PUBLIC_URL: ISSUER })
    try {
      const machine = await registerClient(t.app)
      const token = await clientToken(t.app, machine)
      const keys = await jwks(t)
      expect(decodeProtectedHeader(token)).toEqual({ alg: 'RS256', typ: 'at+jwt', kid: keys.keys[0]?.kid })
      await expect(
        jwtVerify(token, createLocalJWKSet(keys), { typ: 'at+jwt', issuer: ISSUER, audience: ISSUER }),
      ).resolves.toBeDefined()
      expect((await greet(t, token)).statusCode).toBe(401)
      await signUp(t.app, 'seedling')
      const user = (await logIn(t.app, 'seedling')).json().access_token
      expect(decodeProtectedHeader(user).alg).toBe('HS256')
    } finally {
      await t.close()
    }
  })

  it('JWT_AUDIENCE: the token is for that audience', async () => {
    const t = await buildTestApp({ PUBLIC_URL: ISSUER, JWT_AUDIENCE: 'https://api.example.com' })
    try {
      const token = await clientToken(t.app, await registerClient(t.app))
      const { payload } = await jwtVerify(token, createLocalJWKSet(await jwks(t)), {
        audience: 'https://api.example.com',
        issuer: ISSUER,
      })
      expect(payload.aud).toBe('https://api.example.com')
    } finally {
      await t.close()
    }
  })
})

describe('rotating the secret while grants are under way', () => {
  it('20 concurrent rotations and grants: once a rotation has completed, the old secret never works', async () => {
    const t = await buildTestApp()
    try {
      const clients = servicesOf(t.app)?.clients
      if (!clients) throw new Error('no services')
      const machine = await registerClient(t.app)
      const old = machine.secret as string
      const completed: number[] = []
      let settled = 0
      const rotate = () =>
        clients
          .rotateSecret(OPERATOR, machine.id)
          .then(
            (r) => {
              completed.push(performance.now())
              return r?.secret
            },
            () => undefined, // lost the compare-and-swap to another rotation: stored nothing
          )
          .finally(() => settled++)
      const grants: { startedAt: number; status: number }[] = []
      const running: Promise<void>[] = []
      const grant = () => {
        const startedAt = performance.now()
        running.push(
          clientCredentials(t.app, { basic: { id: machine.id, secret: old } }).then((res) => {
            grants.push({ startedAt, status: res.statusCode })
          }),
        )
      }
      const tick = () => new Promise((resolve) => setImmediate(resolve))
      // A grant, then a rotation, twenty times over, each pair a turn of the event loop apart;
      // then grants until every rotation has settled, and a few more.
      const rotations: Promise<string | undefined>[] = []
      for (let i = 0; i < 20; i++) {
        grant()
        rotations.push(rotate())
        await tick()
      }
      while (settled < rotations.length && running.length < 2_000) {
        grant()
        await tick()
      }
      for (let i = 0; i < 5; i++) grant()
      const secrets = (await Promise.all(rotations)).filter((s): s is string => s !== undefined)
      await Promise.all(running)
      expect(secrets.length).toBeGreaterThan(0)
      const firstDone = Math.min(...completed)
      const after = grants.filter((g) => g.startedAt > firstDone)
      expect(after.length).toBeGreaterThanOrEqual(5)
      for (const g of after) expect(g.status).toBe(401)
      for (const g of grants) expect([200, 401]).toContain(g.status)
      // After them all: the old secret fails, and exactly one of the new ones works.
      expect((await clientCredentials(t.app, { basic: { id: machine.id, secret: old } })).statusCode).toBe(
        401,
      )
      const works = await Promise.all(
        secrets.map(
          async (secret) =>
            (await clientCredentials(t.app, { basic: { id: machine.id, secret } })).statusCode,
        ),
      )
      expect(works.filter((s) => s === 200)).toHaveLength(1)
    } finally {
      await t.close()
    }
  })
})
