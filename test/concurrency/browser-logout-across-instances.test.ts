// RP-initiated logout across instances (issue 12 item 6: "it ends the browser session and every
// session it started"), over real HTTP between two server processes on one database: a browser
// signs in on A and its codes are exchanged on both instances; then, while B keeps authorizing
// and exchanging codes from that browser as fast as it can, the browser logs out on A. Once the
// logout has answered, no session started from the browser is live, whichever instance started it
// and however the exchanges interleaved with the end: every access token is refused by both
// instances within a second, every refresh token is invalid_grant, and the browser is signed out.
import { describe, expect, it } from 'vitest'
import { inspect } from '../helpers/app.js'
import { CHALLENGE, VERIFIER } from '../helpers/authorization-codes.js'
import { runCli } from '../helpers/cli.js'
import { account, bearer, form } from '../helpers/http.js'
import type { ServerProcess } from '../helpers/server-process.js'
import { hammer, PASSWORD, topologies, trials, useDeployment } from './harness.js'

const TRIALS = 3
const BEFORE = 10
const WORKERS = 8
const REDIRECT = 'https://app.example.com/cb'
const BYE = 'https://app.example.com/bye'
// docs/security.md: a revocation is honoured on every instance within 1 s.
const HONOURED_WITHIN_MS = 1_000

interface Exchanged {
  access_token: string
  refresh_token: string
  id_token: string
}

const cookieOf = (res: Response, name: string) =>
  res.headers
    .getSetCookie()
    .find((c) => c.startsWith(`${name}=`))
    ?.split(';')[0]

/** The login page's form, filled in and posted: the browser session's cookie. */
async function signIn(on: ServerProcess, username: string): Promise<string> {
  const page = await fetch(`${on.url}/login`)
  expect(page.status).toBe(200)
  const csrf = cookieOf(page, 'authgate_csrf')
  const token = /name="csrf_token" value="([^"]+)"/.exec(await page.text())?.[1]
  if (!csrf || !token) throw new Error('the login page had no CSRF cookie or token')
  const res = await fetch(`${on.url}/login`, {
    method: 'POST',
    redirect: 'manual',
    headers: { ...form, cookie: csrf },
    body: new URLSearchParams({ csrf_token: token, username, password: PASSWORD }),
  })
  expect(res.status).toBe(303)
  const session = cookieOf(res, 'authgate_session')
  if (!session) throw new Error('the login set no browser session')
  return session
}

const authorizeUrl = (on: ServerProcess, clientId: string, prompt?: string) =>
  `${on.url}/authorize?${new URLSearchParams({
    response_type: 'code',
    client_id: clientId,
    redirect_uri: REDIRECT,
    scope: 'openid offline_access',
    state: 'race',
    nonce: 'race-nonce',
    code_challenge: CHALLENGE,
    code_challenge_method: 'S256',
    ...(prompt === undefined ? {} : { prompt }),
  })}`

/** What GET /authorize sent the browser back with: a code, an error, or elsewhere (the login page). */
async function authorize(on: ServerProcess, clientId: string, cookie: string, prompt?: string) {
  const res = await fetch(authorizeUrl(on, clientId, prompt), { redirect: 'manual', headers: { cookie } })
  const location = res.headers.get('location')
  if (res.status !== 303 || location === null) throw new Error(`GET /authorize answered ${res.status}`)
  if (!location.startsWith(REDIRECT)) return { elsewhere: location }
  const back = new URL(location).searchParams
  return { code: back.get('code') ?? undefined, error: back.get('error') ?? undefined }
}

async function exchange(on: ServerProcess, clientId: string, code: string) {
  const res = await fetch(`${on.url}/auth/token`, {
    method: 'POST',
    headers: form,
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      client_id: clientId,
      code,
      redirect_uri: REDIRECT,
      code_verifier: VERIFIER,
    }),
  })
  return { status: res.status, body: (await res.json()) as Exchanged & { error?: string } }
}

/** Authorize on `at`, exchange on `on`: the tokens, or why there are none. */
async function signInToClient(at: ServerProcess, on: ServerProcess, clientId: string, cookie: string) {
  const back = await authorize(at, clientId, cookie)
  if (back.code === undefined) return { refused: 'authorize' as const }
  const done = await exchange(on, clientId, back.code)
  if (done.status !== 200) {
    expect(done.body.error).toBe('invalid_grant')
    return { refused: 'exchange' as const }
  }
  return { tokens: done.body }
}

const userinfo = async (on: ServerProcess, token: string) =>
  (await fetch(`${on.url}/userinfo`, { headers: bearer(token) })).status

async function refreshStatus(on: ServerProcess, clientId: string, refreshToken: string) {
  const res = await fetch(`${on.url}/auth/token`, {
    method: 'POST',
    headers: form,
    body: new URLSearchParams({
      grant_type: 'refresh_token',
      client_id: clientId,
      refresh_token: refreshToken,
    }),
  })
  return { status: res.status, error: ((await res.json()) as { error?: string }).error }
}

describe.each(topologies())('RP-initiated logout across instances on $name', (topology) => {
  // Every refused refresh below counts as a failure of this one address (domain/throttle.ts).
  const deployment = useDeployment(topology, {
    REGISTRATIONS_PER_IP_PER_HOUR: '1000',
    LOGIN_IP_MAX_FAILURES: '100000',
  })

  it.runIf(topology.run)(
    `logout on A while B exchanges the browser's codes with ${WORKERS} workers: none of its sessions survives`,
    async () => {
      const [a, b] = deployment.instances
      if (!a || !b) throw new Error('two instances expected')
      const made = await runCli(
        [
          ...['clients', 'create', '--name', 'Racing app', '--public', '--first-party'],
          ...['--redirect-uri', REDIRECT, '--post-logout-redirect-uri', BYE],
          ...['--grant', 'authorization_code', '--grant', 'refresh_token'],
          ...['--scope', 'openid offline_access', '--json'],
        ],
        { DATABASE_URL: deployment.databaseUrl },
      )
      expect(made.code, made.stderr).toBe(0)
      const clientId = (JSON.parse(made.stdout) as { client_id: string }).client_id

      await trials(`RP-initiated logout racing code exchanges on ${topology.name}`, TRIALS, async (trial) => {
        const username = `browser-${trial}`
        await account(a, username)
        const cookie = await signIn(a, username)
        // Before the race: sessions started from the browser on both instances.
        const issued: Exchanged[] = []
        for (let i = 0; i < BEFORE; i++) {
          const got = await signInToClient(i % 2 ? a : b, i % 2 ? b : a, clientId, cookie)
          if (!got.tokens) throw new Error(`exchange ${i} before the logout was refused`)
          issued.push(got.tokens)
        }
        const hint = issued[0]?.id_token as string
        expect(await userinfo(b, issued[0]?.access_token as string)).toBe(200)

        // The logout goes out once B's workers are in full swing, so exchanges are in flight on B
        // while the end commits on A.
        let signal = () => {}
        const swinging = new Promise<void>((resolve) => {
          signal = resolve
        })
        let attempts = 0
        const logout = swinging.then(() =>
          fetch(
            `${a.url}/logout?${new URLSearchParams({ id_token_hint: hint, post_logout_redirect_uri: BYE, state: 's' })}`,
            { redirect: 'manual', headers: { cookie } },
          ),
        )
        const racing = await hammer(
          WORKERS,
          async () => {
            if (++attempts === 2 * WORKERS) signal()
            return signInToClient(b, b, clientId, cookie)
          },
          logout,
        )
        const out = await logout
        expect(out.status).toBe(303)
        expect(out.headers.get('location')).toBe(`${BYE}?state=s`)
        const raced = racing.flatMap((r) => (r.tokens ? [r.tokens] : []))
        console.info(
          `[concurrency] ${topology.name}: ${raced.length} of ${racing.length} racing sign-ins got tokens`,
        )
        // The hammer's last round started after the logout answered: those are refused outright.
        expect(racing.length).toBeGreaterThan(raced.length)

        // Nothing the browser started is alive in the database...
        const { sid } = JSON.parse(Buffer.from(hint.split('.')[1] as string, 'base64url').toString()) as {
          sid: string
        }
        const live = await inspect(deployment.databaseUrl)
          .selectFrom('authgate_sessions')
          .select('id')
          .where((w) => w.or([w('browser_session_id', '=', sid), w('id', '=', sid)]))
          .where('revoked_at', 'is', null)
          .execute()
        expect(live).toEqual([])
        // ...nor on either instance, within a second, for every token, before the race or in it.
        const all = [...issued, ...raced]
        await expect
          .poll(
            async () => {
              const statuses = await Promise.all(
                all.flatMap((p) => [userinfo(a, p.access_token), userinfo(b, p.access_token)]),
              )
              return statuses.filter((s) => s !== 401).length
            },
            { timeout: HONOURED_WITHIN_MS, interval: 20 },
          )
          .toBe(0)
        for (const p of all) {
          for (const on of [a, b]) {
            expect(await refreshStatus(on, clientId, p.refresh_token)).toEqual({
              status: 400,
              error: 'invalid_grant',
            })
          }
        }
        // And the browser is signed out on both.
        for (const on of [a, b]) {
          expect(await authorize(on, clientId, cookie, 'none')).toEqual({
            code: undefined,
            error: 'login_required',
          })
        }
      })
    },
    180_000,
  )
})
