// A small server-rendered web app that signs its users in with AuthGate, as any OpenID Connect
// relying party would: through panva's openid-client (a certified RP library), the authorization
// code flow with PKCE, a confidential client (client_secret_basic), ID token validation, UserInfo,
// refresh, revocation and RP-initiated logout. Nothing in it is specific to AuthGate but the URL.
//
//   authgate clients create --name "Example web app" --redirect-uri http://localhost:3000/callback \
//     --post-logout-redirect-uri http://localhost:3000/signed-out \
//     --grant authorization_code --grant refresh_token --scope "openid profile offline_access" --json
//   AUTHGATE_ISSUER=http://127.0.0.1:8000 CLIENT_ID=... CLIENT_SECRET=... \
//     npx tsx examples/web-app/index.ts           # then open http://localhost:3000
import { randomBytes } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { pathToFileURL } from 'node:url'
import * as oidc from 'openid-client'

export interface WebAppOptions {
  /** AuthGate's issuer (its discovery document is at ISSUER/.well-known/openid-configuration). */
  issuer: string
  clientId: string
  clientSecret: string
  /** Where the browser reaches this app, e.g. http://localhost:3000: the redirect URIs hang off it. */
  publicUrl?: string
  port?: number
  host?: string
}

export interface WebApp {
  url: string
  server: Server
  close(): Promise<void>
}

/** What the app keeps per browser, in memory: a real app would use its own session store. */
interface Session {
  /** Between /login and /callback: the checks the callback must pass (RFC 7636, OIDC Core §3.1.2.1). */
  pending?: { state: string; nonce: string; verifier: string }
  signedIn?: {
    idToken: string
    accessToken: string
    refreshToken: string | undefined
    sub: string
    name: string
    refreshes: number
  }
  /** The state sent with RP-initiated logout, checked when AuthGate sends the browser back. */
  logoutState?: string
  notice?: string
}

const SCOPE = 'openid profile offline_access'
const COOKIE = 'webapp_session'

const html = (text: string) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)

function page(title: string, body: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${html(title)} – Example web app</title><link rel="icon" href="data:,">
<style>body{font:1rem/1.5 system-ui,sans-serif;max-width:36rem;margin:2rem auto;padding:0 1rem}
button,a.button{font:inherit;padding:.5rem 1rem;margin:.25rem 0}</style>
</head><body><main><h1>${html(title)}</h1>${body}</main></body></html>`
}

function send(res: ServerResponse, status: number, html: string, headers: Record<string, string> = {}) {
  res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'cache-control': 'no-store',
    // Everything is inline in this tiny app; nothing may frame it.
    'content-security-policy':
      "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self' " +
      "http: https:; frame-ancestors 'none'",
    ...headers,
  })
  res.end(html)
}

function redirect(res: ServerResponse, to: string, headers: Record<string, string> = {}) {
  res.writeHead(303, { location: to, 'cache-control': 'no-store', ...headers })
  res.end()
}

export async function startWebApp(options: WebAppOptions): Promise<WebApp> {
  const issuer = new URL(options.issuer)
  // openid-client refuses plain http unless told: AuthGate on a loopback address in development.
  const config = await oidc.discovery(
    issuer,
    options.clientId,
    undefined,
    oidc.ClientSecretBasic(options.clientSecret),
    issuer.protocol === 'http:' ? { execute: [oidc.allowInsecureRequests] } : {},
  )
  const sessions = new Map<string, Session>()
  let appUrl = options.publicUrl ?? ''

  function session(req: IncomingMessage, res: ServerResponse): Session {
    const id = /(?:^|;\s*)webapp_session=([A-Za-z0-9_-]{43})/.exec(req.headers.cookie ?? '')?.[1]
    const found = id === undefined ? undefined : sessions.get(id)
    if (found) return found
    const fresh: Session = {}
    const newId = randomBytes(32).toString('base64url')
    sessions.set(newId, fresh)
    // SameSite=Lax: the cookie rides the redirect back from AuthGate (a top-level GET) but not a
    // cross-site POST, which is what keeps /refresh and /logout from being forged.
    res.setHeader('set-cookie', `${COOKIE}=${newId}; Path=/; HttpOnly; SameSite=Lax`)
    return fresh
  }

  async function home(s: Session, res: ServerResponse) {
    const notice = s.notice ? `<p role="status">${html(s.notice)}</p>` : ''
    delete s.notice
    if (!s.signedIn) {
      return send(
        res,
        200,
        page(
          'Welcome',
          `${notice}<p>You are not signed in.</p>
<p><a class="button" href="/login">Sign in with AuthGate</a></p>`,
        ),
      )
    }
    const { name, sub, refreshes } = s.signedIn
    return send(
      res,
      200,
      page(
        `Hello, ${name}`,
        `${notice}
<p>Signed in as <strong id="username">${html(name)}</strong> (subject <code id="sub">${html(sub)}</code>).</p>
<p>Tokens refreshed <span id="refreshes">${refreshes}</span> times.</p>
<form method="post" action="/refresh"><button type="submit">Refresh tokens</button></form>
<form method="post" action="/logout"><button type="submit">Sign out</button></form>`,
      ),
    )
  }

  async function login(s: Session, res: ServerResponse) {
    const verifier = oidc.randomPKCECodeVerifier()
    s.pending = { state: oidc.randomState(), nonce: oidc.randomNonce(), verifier }
    const to = oidc.buildAuthorizationUrl(config, {
      redirect_uri: `${appUrl}/callback`,
      scope: SCOPE,
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state: s.pending.state,
      nonce: s.pending.nonce,
    })
    return redirect(res, to.href)
  }

  async function callback(s: Session, req: IncomingMessage, res: ServerResponse) {
    const pending = s.pending
    delete s.pending
    if (!pending) return send(res, 400, page('Sign-in failed', '<p>No sign-in was in progress.</p>'))
    try {
      // Checks state, iss (RFC 9207), the code exchange with the PKCE verifier, and the ID token:
      // signature through the JWKS, iss, aud, exp, iat, nonce (OIDC Core §3.1.3.7).
      const tokens = await oidc.authorizationCodeGrant(config, new URL(req.url ?? '/', appUrl), {
        pkceCodeVerifier: pending.verifier,
        expectedState: pending.state,
        expectedNonce: pending.nonce,
        idTokenExpected: true,
      })
      const claims = tokens.claims()
      if (!claims || !tokens.id_token) throw new Error('no ID token')
      // The UserInfo answer must be about the ID token's subject (OIDC Core §5.3.2).
      const info = await oidc.fetchUserInfo(config, tokens.access_token, claims.sub)
      s.signedIn = {
        idToken: tokens.id_token,
        accessToken: tokens.access_token,
        refreshToken: tokens.refresh_token,
        sub: claims.sub,
        name: typeof info.preferred_username === 'string' ? info.preferred_username : claims.sub,
        refreshes: 0,
      }
      return redirect(res, '/')
    } catch (err) {
      // error=access_denied when the user said no; anything else is a failed check.
      const why =
        err instanceof oidc.AuthorizationResponseError
          ? (err.error_description ?? err.error)
          : 'The answer from AuthGate did not pass its checks.'
      return send(
        res,
        400,
        page(
          'Sign-in failed',
          `<p role="alert">${html(why)}</p>
<p><a href="/">Back</a></p>`,
        ),
      )
    }
  }

  async function refresh(s: Session, res: ServerResponse) {
    const signedIn = s.signedIn
    if (!signedIn?.refreshToken) return redirect(res, '/')
    try {
      // Rotation (RFC 9700 §4.14.2): every refresh hands out a new refresh token; keep that one.
      const tokens = await oidc.refreshTokenGrant(config, signedIn.refreshToken)
      signedIn.accessToken = tokens.access_token
      signedIn.refreshToken = tokens.refresh_token ?? signedIn.refreshToken
      signedIn.refreshes++
      s.notice = 'Your tokens were refreshed.'
    } catch {
      delete s.signedIn
      s.notice = 'Your session at AuthGate has ended; sign in again.'
    }
    return redirect(res, '/')
  }

  async function logout(s: Session, res: ServerResponse) {
    const signedIn = s.signedIn
    delete s.signedIn
    if (!signedIn) return redirect(res, '/')
    // RFC 7009: the refresh token dies here; RP-initiated logout ends the rest at AuthGate.
    if (signedIn.refreshToken) await oidc.tokenRevocation(config, signedIn.refreshToken).catch(() => {})
    const state = oidc.randomState()
    s.logoutState = state
    const to = oidc.buildEndSessionUrl(config, {
      id_token_hint: signedIn.idToken,
      post_logout_redirect_uri: `${appUrl}/signed-out`,
      state,
    })
    return redirect(res, to.href)
  }

  function signedOut(s: Session, req: IncomingMessage, res: ServerResponse) {
    // The state sent to the end-session endpoint comes back unchanged (RP-Initiated Logout §3).
    const state = new URL(req.url ?? '/', appUrl).searchParams.get('state')
    const expected = s.logoutState
    delete s.logoutState
    if (state === null || state !== expected) {
      return send(
        res,
        400,
        page('Unexpected sign-out', '<p role="alert">This sign-out was not started here.</p>'),
      )
    }
    return send(
      res,
      200,
      page(
        'Signed out',
        `<p role="status">You are signed out of the app and of AuthGate.</p>
<p><a class="button" href="/login">Sign in again</a></p>`,
      ),
    )
  }

  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]
    const s = session(req, res)
    const route =
      req.method === 'GET' && path === '/'
        ? home(s, res)
        : req.method === 'GET' && path === '/login'
          ? login(s, res)
          : req.method === 'GET' && path === '/callback'
            ? callback(s, req, res)
            : req.method === 'POST' && path === '/refresh'
              ? refresh(s, res)
              : req.method === 'POST' && path === '/logout'
                ? logout(s, res)
                : req.method === 'GET' && path === '/signed-out'
                  ? Promise.resolve(signedOut(s, req, res))
                  : Promise.resolve(send(res, 404, page('Not found', '<p><a href="/">Home</a></p>')))
    route.catch(() => {
      if (!res.headersSent) send(res, 502, page('AuthGate did not answer', '<p>Try again in a moment.</p>'))
    })
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', resolve)
  })
  const { port } = server.address() as AddressInfo
  appUrl ||= `http://localhost:${port}`
  return {
    url: appUrl,
    server,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  }
}

function required(name: string): string {
  const value = process.env[name]
  if (!value) throw new Error(`${name}: required`)
  return value
}

async function main() {
  const port = Number(process.env.PORT ?? 3000)
  const app = await startWebApp({
    issuer: required('AUTHGATE_ISSUER'),
    clientId: required('CLIENT_ID'),
    clientSecret: required('CLIENT_SECRET'),
    publicUrl: process.env.PUBLIC_URL || `http://localhost:${port}`,
    port,
    host: process.env.HOST || '127.0.0.1',
  })
  console.log(`example web app listening on ${app.url}, signing in with ${process.env.AUTHGATE_ISSUER}`)
  const stop = () => {
    app.close().then(() => process.exit(0))
  }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err)
    process.exit(1)
  })
}
