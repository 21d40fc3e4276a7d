// Two server processes on one SQLite file: a revocation made on either is honoured by the other
// within 2 s, without a database query per request (each keeps a polled in-memory view).
import { join } from 'node:path'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { buildApp } from '../../src/app.js'
import { loadConfig } from '../../src/config.js'
import { fastHasher, tempDir } from '../helpers/app.js'
import { account, bearer, form, greet, logIn, pairOf, signUp } from '../helpers/http.js'
import { msUntil } from '../helpers/poll.js'
import { type ServerProcess, startServerProcess } from '../helpers/server-process.js'

const dir = tempDir()
// One deployment, one issuer: each process would otherwise take its own listen address as `iss`.
const env = { DATABASE_URL: `sqlite:///${join(dir.path, 'shared.db')}`, JWT_ISSUER: 'http://authgate.test' }
let other: ServerProcess
let app: Awaited<ReturnType<typeof buildApp>>

beforeAll(async () => {
  app = await buildApp(loadConfig(env), { hasher: fastHasher })
  other = await startServerProcess(env)
}, 60_000)
afterAll(async () => {
  await other?.stop()
  await app?.close()
  dir.cleanup()
})

it('honours a logout made in this process on the other one within 2 s', async () => {
  await signUp(app, 'roamer')
  const pair = await pairOf(await logIn(other, 'roamer'))
  expect((await greet(other, pair.access_token)).status).toBe(200)

  const out = await app.inject({
    method: 'POST',
    url: '/auth/logout',
    headers: bearer(pair.access_token),
  })
  expect(out.statusCode).toBe(204)
  const ms = await msUntil(async () => (await greet(other, pair.access_token)).status === 401)
  expect(ms).toBeLessThan(2_000)
})

it('honours a session ended on the other process here within 2 s', async () => {
  const pair = await account(other, 'wanderer')
  expect((await greet(app, pair.access_token)).statusCode).toBe(200)
  const revoke = await fetch(`${other.url}/auth/revoke`, {
    method: 'POST',
    headers: form,
    body: new URLSearchParams({ token: pair.refresh_token }),
  })
  expect(revoke.status).toBe(200)
  const ms = await msUntil(async () => (await greet(app, pair.access_token)).statusCode === 401)
  expect(ms).toBeLessThan(2_000)
})
