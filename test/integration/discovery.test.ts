// The discovery documents against the specifications that define them, rule by rule: OpenID
// Connect Discovery 1.0 §3 (/.well-known/openid-configuration) and RFC 8414 §2-§3
// (/.well-known/oauth-authorization-server). Fetched the way relying parties fetch them, through
// oauth4webapi's discoveryRequest and processDiscoveryResponse (which form the well-known URL from
// the issuer and check the issuer it answers), then each field checked for what the specs require,
// and each advertised endpoint shown to be there, answering as its specification says.
import type { FastifyInstance } from 'fastify'
import * as oauth from 'oauth4webapi'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildTestApp, type TestApp } from '../helpers/app.js'
import { form } from '../helpers/http.js'

const ISSUER = 'https://auth.example.com'

// The IANA "OAuth Authorization Server Metadata" registry (RFC 8414 §7.1), the names a document
// may use: a name outside it is a typo or an invention no client reads.
const REGISTERED = new Set([
  'issuer',
  'authorization_endpoint',
  'token_endpoint',
  'jwks_uri',
  'registration_endpoint',
  'scopes_supported',
  'response_types_supported',
  'response_modes_supported',
  'grant_types_supported',
  'token_endpoint_auth_methods_supported',
  'token_endpoint_auth_signing_alg_values_supported',
  'service_documentation',
  'ui_locales_supported',
  'op_policy_uri',
  'op_tos_uri',
  'revocation_endpoint',
  'revocation_endpoint_auth_methods_supported',
  'revocation_endpoint_auth_signing_alg_values_supported',
  'introspection_endpoint',
  'introspection_endpoint_auth_methods_supported',
  'introspection_endpoint_auth_signing_alg_values_supported',
  'code_challenge_methods_supported',
  'userinfo_endpoint',
  'acr_values_supported',
  'subject_types_supported',
  'id_token_signing_alg_values_supported',
  'id_token_encryption_alg_values_supported',
  'id_token_encryption_enc_values_supported',
  'userinfo_signing_alg_values_supported',
  'display_values_supported',
  'claim_types_supported',
  'claims_supported',
  'claims_locales_supported',
  'claims_parameter_supported',
  'request_parameter_supported',
  'request_uri_parameter_supported',
  'require_request_uri_registration',
  'end_session_endpoint',
  'authorization_response_iss_parameter_supported',
  'prompt_values_supported',
])

// RFC 8414 §2 and OIDC Discovery §3: which fields are REQUIRED.
const REQUIRED_RFC8414 = ['issuer', 'response_types_supported']
const REQUIRED_OIDC = [
  'issuer',
  'authorization_endpoint',
  'token_endpoint', // required unless only the implicit flow is offered
  'jwks_uri',
  'response_types_supported',
  'subject_types_supported',
  'id_token_signing_alg_values_supported',
]
const ENDPOINTS = [
  'authorization_endpoint',
  'token_endpoint',
  'jwks_uri',
  'userinfo_endpoint',
  'end_session_endpoint',
  'revocation_endpoint',
  'introspection_endpoint',
]

/** oauth4webapi's fetch, routed to the app (the URL it formed is what is asked for). */
function fetchFrom(app: FastifyInstance, seen: string[]) {
  return async (
    url: string,
    init: { headers?: ConstructorParameters<typeof Headers>[0]; method?: string },
  ) => {
    seen.push(url)
    const { pathname, search } = new URL(url)
    const res = await app.inject({
      method: 'GET',
      url: pathname + search,
      headers: Object.fromEntries(new Headers(init.headers).entries()),
    })
    return new Response(res.body, {
      status: res.statusCode,
      headers: res.headers as Record<string, string>,
    })
  }
}

async function discover(app: FastifyInstance, issuer: string, algorithm: 'oidc' | 'oauth2') {
  const seen: string[] = []
  const response = await oauth.discoveryRequest(new URL(issuer), {
    algorithm,
    [oauth.customFetch]: fetchFrom(app, seen),
  })
  expect(response.headers.get('content-type')).toMatch(/^application\/json/)
  const metadata = await oauth.processDiscoveryResponse(new URL(issuer), response)
  return { metadata: metadata as unknown as Record<string, unknown>, url: seen[0] }
}

const strings = (value: unknown) => {
  expect(Array.isArray(value)).toBe(true)
  for (const item of value as unknown[]) expect(typeof item).toBe('string')
  return value as string[]
}

describe('the discovery documents', () => {
  let t: TestApp
  let oidc: Record<string, unknown>
  let oauth2: Record<string, unknown>

  beforeAll(async () => {
    t = await buildTestApp({ PUBLIC_URL: `${ISSUER}/` })
    const a = await discover(t.app, ISSUER, 'oidc')
    const b = await discover(t.app, ISSUER, 'oauth2')
    // OIDC Discovery §4: issuer + /.well-known/openid-configuration; RFC 8414 §3: inserted.
    expect([a.url, b.url]).toEqual([
      `${ISSUER}/.well-known/openid-configuration`,
      `${ISSUER}/.well-known/oauth-authorization-server`,
    ])
    oidc = a.metadata
    oauth2 = b.metadata
  })
  afterAll(() => t?.close())

  it('say the same at both addresses, with only registered metadata names', () => {
    expect(oauth2).toEqual(oidc)
    for (const name of Object.keys(oidc)) expect(REGISTERED.has(name), name).toBe(true)
  })

  it('have every REQUIRED field of OpenID Connect Discovery §3 and RFC 8414 §2', () => {
    for (const name of new Set([...REQUIRED_OIDC, ...REQUIRED_RFC8414])) {
      expect(oidc[name], name).toBeDefined()
    }
  })

  it('name an issuer that is https, with no query or fragment, identical to the one asked for (§4.3, RFC 8414 §2, §3.3)', () => {
    const issuer = new URL(oidc.issuer as string)
    expect([issuer.protocol, issuer.search, issuer.hash]).toEqual(['https:', '', ''])
    expect(oidc.issuer).toBe(ISSUER)
  })

  it('give every endpoint as an absolute https URL under the issuer, without a fragment (RFC 8414 §2)', () => {
    for (const name of ENDPOINTS) {
      const url = new URL(oidc[name] as string)
      expect([name, url.protocol, url.hash, url.origin]).toEqual([name, 'https:', '', ISSUER])
    }
  })

  it('offer the code flow only, with S256 PKCE, and the values the specifications require', () => {
    // OAuth 2.1 and RFC 9700 §2.1.2: no implicit, no hybrid.
    expect(strings(oidc.response_types_supported)).toEqual(['code'])
    expect(strings(oidc.response_modes_supported)).toEqual(['query'])
    // RFC 7636 §4.2 and RFC 9700 §2.1.1: S256, never plain.
    expect(strings(oidc.code_challenge_methods_supported)).toEqual(['S256'])
    // OIDC Discovery §3: RS256 MUST be included; "none" is not offered with the code flow here.
    const algorithms = strings(oidc.id_token_signing_alg_values_supported)
    expect(algorithms).toContain('RS256')
    expect(algorithms).not.toContain('none')
    // §3: "public" and "pairwise" are the only subject types.
    for (const type of strings(oidc.subject_types_supported)) expect(['public', 'pairwise']).toContain(type)
    // §3: the server MUST support the openid scope.
    expect(strings(oidc.scopes_supported)).toContain('openid')
    // §3: the ID token's claims are among the claims listed.
    expect(strings(oidc.claims_supported)).toEqual(
      expect.arrayContaining(['sub', 'iss', 'aud', 'exp', 'iat']),
    )
    expect(strings(oidc.grant_types_supported)).toEqual(expect.arrayContaining(['authorization_code']))
    expect(strings(oidc.grant_types_supported)).not.toContain('implicit')
    // RFC 9207 §3: the iss parameter is on every authorization response.
    expect(oidc.authorization_response_iss_parameter_supported).toBe(true)
    const methods = [
      'client_secret_basic',
      'client_secret_post',
      'client_secret_jwt',
      'private_key_jwt',
      'none',
    ]
    for (const name of [
      'token_endpoint_auth_methods_supported',
      'revocation_endpoint_auth_methods_supported',
      'introspection_endpoint_auth_methods_supported',
    ]) {
      for (const method of strings(oidc[name])) expect(methods).toContain(method)
    }
    // RFC 7662 §2.1: introspection is for authenticated callers, so no "none".
    expect(strings(oidc.introspection_endpoint_auth_methods_supported)).not.toContain('none')
  })

  it('publish a key for every ID token algorithm they list, at jwks_uri', async () => {
    const jwks = (await t.app.inject(new URL(oidc.jwks_uri as string).pathname)).json() as {
      keys: { alg: string; kid: string; d?: string }[]
    }
    for (const alg of strings(oidc.id_token_signing_alg_values_supported)) {
      expect(
        jwks.keys.some((key) => key.alg === alg),
        alg,
      ).toBe(true)
    }
    for (const key of jwks.keys) expect(key.d).toBeUndefined()
  })

  it('advertise only endpoints that are there, each answering as its specification says', async () => {
    const path = (name: string) => new URL(oidc[name] as string).pathname
    const post = (name: string, payload: string) =>
      t.app.inject({ method: 'POST', url: path(name), headers: form, payload })
    // RFC 6749 §4.1.2.1: no client_id, so an error page and no redirect.
    const authorize = await t.app.inject(path('authorization_endpoint'))
    expect([authorize.statusCode, authorize.headers.location]).toEqual([400, undefined])
    expect(authorize.headers['content-type']).toMatch(/^text\/html/)
    // RFC 6749 §5.2: an OAuth error object. (An empty body is the seed's 422, kept for its clients.)
    const token = await post('token_endpoint', 'grant_type=authorization_code')
    // No client named: invalid_client, 401.
    expect([token.statusCode, token.json().error]).toEqual([401, 'invalid_client'])
    // RFC 6750 §3: a bearer challenge.
    const userinfo = await t.app.inject(path('userinfo_endpoint'))
    expect(userinfo.statusCode).toBe(401)
    expect(userinfo.headers['www-authenticate']).toMatch(/^Bearer\b/)
    // RP-Initiated Logout: nobody signed in, so our "signed out" page.
    const logout = await t.app.inject(path('end_session_endpoint'))
    expect(logout.statusCode).toBe(200)
    expect(logout.body).toContain('You are signed out')
    // RFC 7662 §2.1: introspection needs the caller's authentication.
    const introspection = await post('introspection_endpoint', 'token=x')
    expect([introspection.statusCode, introspection.json().error]).toEqual([401, 'invalid_client'])
    // RFC 7009 §2.2: a token that is not one of ours is not an error (200, nothing revoked).
    expect((await post('revocation_endpoint', 'token=x')).statusCode).toBe(200)
  })
})

describe('the discovery document of an issuer with a path (a proxy serves AuthGate under /id)', () => {
  let t: TestApp
  beforeAll(async () => {
    t = await buildTestApp({ PUBLIC_URL: `${ISSUER}/id` })
  })
  afterAll(() => t?.close())

  it('names that issuer and endpoints under it (OIDC Discovery §4.1: issuer + /.well-known/...)', async () => {
    // The proxy strips /id: what it forwards is /.well-known/openid-configuration.
    const res = await t.app.inject('/.well-known/openid-configuration')
    const metadata = await oauth.processDiscoveryResponse(
      new URL(`${ISSUER}/id`),
      new Response(res.body, { status: res.statusCode, headers: res.headers as Record<string, string> }),
    )
    expect(metadata.issuer).toBe(`${ISSUER}/id`)
    for (const name of ENDPOINTS) {
      expect((metadata as unknown as Record<string, string>)[name]?.startsWith(`${ISSUER}/id/`), name).toBe(
        true,
      )
    }
  })
})
