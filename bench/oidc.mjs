// The OpenID Connect provider's scenarios for bench/run.mjs (issue 12 item 10): what a machine
// client, a resource server and a relying party do, as autocannon request specs against a running
// AuthGate: client_credentials grants, introspection, UserInfo, and complete authorization-code
// exchanges (authorize with an existing browser session, then the code exchange). The clients are
// made with the CLI, as an operator would; the browser sessions through the login page.

import { execFileSync } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { join } from 'node:path'

const FORM = 'application/x-www-form-urlencoded'
const REDIRECT = 'http://127.0.0.1:9/cb'
const VERIFIER = randomBytes(32).toString('base64url')
const CHALLENGE = createHash('sha256').update(VERIFIER).digest('base64url')

const basic = (id, secret) =>
  `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`

/** `authgate clients create ... --json` on the server's database. */
function createClient(root, { cwd, env }, args) {
  const out = execFileSync(
    process.execPath,
    [join(root, 'dist', 'cli', 'index.js'), 'clients', 'create', ...args, '--json'],
    { cwd, env, stdio: ['ignore', 'pipe', 'inherit'] },
  )
  const client = JSON.parse(out.toString())
  return {
    id: client.client_id,
    secret: client.client_secret,
    authorization: basic(client.client_id, client.client_secret),
  }
}

async function must(res, status, what) {
  if (res.status !== status) throw new Error(`${what}: ${res.status} ${await res.text()}`)
  return res
}

/** A browser session through the login page (its CSRF cookie and token, then the form). */
async function browserSession(url, username, password) {
  const page = await must(await fetch(`${url}/login`), 200, 'GET /login')
  const csrfCookie = page.headers
    .getSetCookie()
    .find((c) => c.startsWith('authgate_csrf='))
    ?.split(';')[0]
  const token = /name="csrf_token" value="([^"]+)"/.exec(await page.text())?.[1]
  if (!csrfCookie || !token) throw new Error('the login page had no CSRF cookie or token')
  const res = await must(
    await fetch(`${url}/login`, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': FORM, cookie: csrfCookie },
      body: new URLSearchParams({ csrf_token: token, username, password }),
    }),
    303,
    `POST /login as ${username}`,
  )
  const session = res.headers
    .getSetCookie()
    .find((c) => c.startsWith('authgate_session='))
    ?.split(';')[0]
  if (!session) throw new Error('the login set no browser session')
  return session
}

const authorizeQuery = (clientId) =>
  new URLSearchParams({
    response_type: 'code',
    client_id: clientId,
    redirect_uri: REDIRECT,
    scope: 'openid profile',
    state: 'bench',
    nonce: 'bench-nonce',
    code_challenge: CHALLENGE,
    code_challenge_method: 'S256',
  }).toString()

/** The code in an authorization response's Location, or undefined. */
function codeOf(status, headers) {
  const location = headers.location ?? headers.Location
  if (status !== 303 || typeof location !== 'string') return undefined
  return new URL(location).searchParams.get('code') ?? undefined
}

/**
 * Registers the clients and signs in `users` browser sessions (one per account, so no account
 * reaches MAX_SESSIONS_PER_USER with the sessions the exchanges start), and returns what the
 * scenarios need: a machine client's token, a user's access token from a code exchange.
 */
export async function prepareOidc({ root, server, usernames, password }) {
  const machine = createClient(root, server, [
    ...['--name', 'Bench machine', '--grant', 'client_credentials', '--scope', 'reports:read'],
  ])
  const web = createClient(root, server, [
    ...['--name', 'Bench web app', '--redirect-uri', REDIRECT, '--first-party', '--scope', 'openid profile'],
  ])
  const cookies = []
  for (const username of usernames) cookies.push(await browserSession(server.url, username, password))

  const token = await must(
    await fetch(`${server.url}/auth/token`, {
      method: 'POST',
      headers: { 'content-type': FORM, authorization: machine.authorization },
      body: 'grant_type=client_credentials&scope=reports%3Aread',
    }),
    200,
    'client_credentials',
  )
  const machineToken = (await token.json()).access_token

  const authorized = await fetch(`${server.url}/authorize?${authorizeQuery(web.id)}`, {
    redirect: 'manual',
    headers: { cookie: cookies[0] },
  })
  const code = codeOf(authorized.status, Object.fromEntries(authorized.headers))
  if (!code) throw new Error(`GET /authorize answered ${authorized.status} without a code`)
  const exchanged = await must(
    await fetch(`${server.url}/auth/token`, {
      method: 'POST',
      headers: { 'content-type': FORM, authorization: web.authorization },
      body: new URLSearchParams({
        grant_type: 'authorization_code',
        code,
        redirect_uri: REDIRECT,
        code_verifier: VERIFIER,
      }),
    }),
    200,
    'the code exchange',
  )
  const userToken = (await exchanged.json()).access_token
  for (const [what, res] of [
    ['introspection', await introspect(server.url, machine, userToken)],
    [
      'UserInfo',
      await fetch(`${server.url}/userinfo`, { headers: { authorization: `Bearer ${userToken}` } }),
    ],
  ]) {
    if (res.status !== 200) throw new Error(`${what}: ${res.status} ${await res.text()}`)
  }
  return { machine, web, cookies, machineToken, userToken }
}

const introspect = (url, machine, token) =>
  fetch(`${url}/auth/introspect`, {
    method: 'POST',
    headers: { 'content-type': FORM, authorization: machine.authorization },
    body: new URLSearchParams({ token }),
  })

/** autocannon options (without url, connections, duration) for each scenario. */
export function oidcScenarios(prepared) {
  const { machine, web, cookies, userToken } = prepared
  let nextCookie = 0
  return {
    client_credentials: {
      path: '/auth/token',
      method: 'POST',
      headers: { 'content-type': FORM, authorization: machine.authorization },
      body: 'grant_type=client_credentials&scope=reports%3Aread',
    },
    introspection: {
      path: '/auth/introspect',
      method: 'POST',
      headers: { 'content-type': FORM, authorization: machine.authorization },
      body: new URLSearchParams({ token: userToken }).toString(),
    },
    userinfo: {
      path: '/userinfo',
      method: 'GET',
      headers: { authorization: `Bearer ${userToken}` },
    },
    // Two requests per exchange: only the token endpoint's 200 is a 2xx, so 2xx/s is exchanges/s.
    'code exchange': {
      requests: [
        {
          method: 'GET',
          path: `/authorize?${authorizeQuery(web.id)}`,
          setupRequest: (request) => ({
            ...request,
            headers: { cookie: cookies[nextCookie++ % cookies.length] },
          }),
          onResponse: (status, _body, context, headers) => {
            context.code = codeOf(status, headers)
          },
        },
        {
          method: 'POST',
          path: '/auth/token',
          headers: { 'content-type': FORM, authorization: web.authorization },
          setupRequest: (request, context) => ({
            ...request,
            body: new URLSearchParams({
              grant_type: 'authorization_code',
              code: context.code ?? 'none',
              redirect_uri: REDIRECT,
              code_verifier: VERIFIER,
            }).toString(),
          }),
        },
      ],
      // The authorize step's 303 is expected: only 4xx, 5xx and errors are problems here.
      redirectsExpected: true,
    },
  }
}
