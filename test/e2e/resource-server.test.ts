// examples/resource-server, run as its own process, trusts AuthGate (ES256) over real HTTP through
// the JWKS: tokens from before and after a key rotation verify there, and once the old key's tokens
// have expired (AuthGate's clock is moved, not waited for) its kid leaves the JWKS and the example
// stops accepting it.
import { setTimeout as sleep } from 'node:timers/promises'
import Database from 'better-sqlite3'
import { createSigner } from 'fast-jwt'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { buildApp } from '../../src/app.js'
import { loadConfig } from '../../src/config.js'
import { RETIREMENT_SLACK_MS } from '../../src/domain/keys.js'
import { frozenClock } from '../../src/lib/clock.js'
import { openKeys } from '../../src/services.js'
import { createDatabase } from '../../src/storage/database.js'
import { fastHasher, tempDir } from '../helpers/app.js'
import { account, bearer, decodeProtectedHeader, logIn, pairOf } from '../helpers/http.js'
import { freePort, type Spawned, spawnUntilReady } from '../helpers/server-process.js'

const TTL_MS = 30 * 60_000
// The example re-reads the JWKS when its copy is older than this, or on an unknown kid.
const EXAMPLE_CACHE_MS = 200

const dir = tempDir()
const dbUrl = `sqlite:///${dir.path}/authgate.db`
const clock = frozenClock()
let authgate: Awaited<ReturnType<typeof buildApp>>
let authgateUrl: string
let example: Spawned
let exampleUrl: string

beforeAll(async () => {
  const port = await freePort()
  authgateUrl = `http://127.0.0.1:${port}`
  const config = loadConfig({
    DATABASE_URL: dbUrl,
    JWT_ALGORITHM: 'ES256',
    PORT: String(port),
    RATE_LIMIT: 'off',
  })
  authgate = await buildApp(config, { hasher: fastHasher, clock, keyReloadMs: 50 })
  await authgate.listen({ port, host: '127.0.0.1' })

  const examplePort = await freePort()
  example = await spawnUntilReady({
    args: ['examples/resource-server/index.ts'],
    url: `http://127.0.0.1:${examplePort}`,
    env: {
      AUTHGATE_URL: authgateUrl,
      PORT: String(examplePort),
      JWKS_CACHE_MAX_AGE_MS: String(EXAMPLE_CACHE_MS),
      JWKS_COOLDOWN_MS: '0',
    },
    ready: /^resource server listening on /,
  })
  exampleUrl = example.url
}, 60_000)

afterAll(async () => {
  await example?.stop()
  await authgate?.close()
  dir.cleanup()
})

const login = async (username: string) => (await pairOf(await logIn(authgateUrl, username))).access_token

async function hello(token: string) {
  const res = await fetch(`${exampleUrl}/hello`, { headers: bearer(token) })
  return { status: res.status, body: (await res.json()) as { message?: string; kid?: string } }
}

/** The kids of the published ES256 keys: the access tokens' (the RS256 chain's are for ID tokens). */
async function publishedKids(): Promise<string[]> {
  const res = await fetch(`${authgateUrl}/.well-known/jwks.json`)
  expect(res.status).toBe(200)
  return ((await res.json()) as { keys: { kid: string; alg: string }[] }).keys
    .filter((k) => k.alg === 'ES256')
    .map((k) => k.kid)
}

it('verifies tokens from before and after a rotation, and lets the old key go once its tokens expired', async () => {
  const before = (await account(authgateUrl, 'traveller')).access_token
  const oldKid = decodeProtectedHeader(before).kid
  expect(await hello(before)).toEqual({
    status: 200,
    body: { message: 'Hello, traveller!', sub: 'traveller', kid: oldKid },
  })

  // Refused: no token, a tampered one, one signed by nobody we know.
  expect((await fetch(`${exampleUrl}/hello`)).status).toBe(401)
  expect((await hello(`${before.slice(0, -4)}AAAA`)).status).toBe(401)

  // `authgate keys rotate`, from another connection; AuthGate notices within its reload interval.
  const db = createDatabase(dbUrl)
  const rotateConfig = loadConfig({ DATABASE_URL: dbUrl, JWT_ALGORITHM: 'ES256' })
  const { key: current } = await (await openKeys(db, rotateConfig, clock)).rotate()
  await db.destroy()
  await expect.poll(publishedKids, { timeout: 5_000, interval: 20 }).toContain(current.kid)
  // Published before it signs (issue 10): the old key still signs until the activation delay has passed.
  expect(await publishedKids()).toEqual([oldKid, current.kid])
  expect(decodeProtectedHeader(await login('traveller')).kid).toBe(oldKid)
  clock.advance(rotateConfig.keyActivationDelayMs)
  expect(await publishedKids()).toEqual([current.kid, oldKid])

  const after = await login('traveller')
  expect(decodeProtectedHeader(after).kid).toBe(current.kid)
  // The example has never seen this kid: it fetches the JWKS again and accepts the token.
  expect(await hello(after)).toMatchObject({ status: 200, body: { kid: current.kid } })
  expect(await hello(before)).toMatchObject({ status: 200, body: { kid: oldKid } })

  // A token of the old key that would outlive it (the example checks exp on its own, real clock).
  const raw = new Database(`${dir.path}/authgate.db`, { readonly: true })
  const { private_key } = raw
    .prepare('select private_key from authgate_signing_keys where kid = ?')
    .get(oldKid) as {
    private_key: string
  }
  raw.close()
  const now = Math.floor(Date.now() / 1000)
  const longLived = createSigner({ key: private_key, algorithm: 'ES256', kid: oldKid })({
    sub: 'traveller',
    id: 1,
    iss: authgateUrl,
    iat: now,
    exp: now + 86_400,
  })
  expect((await hello(longLived)).status).toBe(200)

  // Every token the old key signed has now expired, as AuthGate's clock sees it.
  clock.advance(TTL_MS + RETIREMENT_SLACK_MS)
  expect(await publishedKids()).toEqual([current.kid])
  // Once its copy of the JWKS is older than its cache age, the example refetches and refuses. A
  // deliberate wait: that age runs on the example's own clock, in its own process.
  await sleep(EXAMPLE_CACHE_MS + 100)
  expect((await hello(longLived)).status).toBe(401)
  expect(await hello(after)).toMatchObject({ status: 200, body: { kid: current.kid } })
})
