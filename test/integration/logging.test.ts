// What reaches the log: one line per request, and never a password, token or hash.
import { Writable } from 'node:stream'
import pino from 'pino'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { REDACT_PATHS } from '../../src/logger.js'
import { buildTestApp, inspect, type TestApp } from '../helpers/app.js'
import { bearer, greet, logIn, signUp, tokenFor } from '../helpers/http.js'

const lines: string[] = []
const sink = new Writable({
  write(chunk, _enc, done) {
    lines.push(...chunk.toString().split('\n').filter(Boolean))
    done()
  },
})
let t: TestApp

beforeAll(async () => {
  // The production logger's settings, at the chattiest level.
  const logger = pino({ level: 'trace', redact: { paths: REDACT_PATHS, censor: '[redacted]' } }, sink)
  t = await buildTestApp({}, { logger })
})
afterAll(async () => {
  await t.close()
})

it('logs one JSON line per request with method, path, status and a request id', async () => {
  lines.length = 0
  await t.app.inject({ url: '/healthz', headers: { 'x-request-id': 'trace-me-42' } })
  expect(lines).toHaveLength(1)
  expect(JSON.parse(lines[0] ?? '')).toMatchObject({
    reqId: 'trace-me-42',
    method: 'GET',
    path: '/healthz',
    statusCode: 200,
    ms: expect.any(Number),
  })
})

it('gives requests without X-Request-ID ids that no other process repeats', async () => {
  const otherLines: string[] = []
  const otherSink = new Writable({
    write(chunk, _enc, done) {
      otherLines.push(...chunk.toString().split('\n').filter(Boolean))
      done()
    },
  })
  const other = await buildTestApp({}, { logger: pino({ level: 'info' }, otherSink) })
  try {
    lines.length = 0
    for (let i = 0; i < 3; i++) {
      await t.app.inject({ url: '/healthz' })
      await other.app.inject({ url: '/healthz' })
    }
    const ids = [...lines, ...otherLines]
      .map((l) => JSON.parse(l).reqId as string | undefined)
      .filter((id) => id !== undefined)
    expect(ids).toHaveLength(6)
    expect(new Set(ids).size).toBe(6)
    for (const id of ids) expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-z]+$/)
  } finally {
    await other.close()
  }
})

it('never writes a password, token or hash, whatever the request', async () => {
  lines.length = 0
  const password = 'Sup3r-secret-passphrase-xyz'
  const token = await tokenFor(t.app, 'logged', password)
  await logIn(t.app, 'logged', `${password}-wrong`)
  await t.app.inject({ url: `/?access_token=${token}`, headers: bearer(token) })
  await greet(t.app, `${token}tampered`)
  await signUp(t.app, 'x y', password)
  await t.app.inject({
    method: 'POST',
    url: '/auth/',
    headers: { 'content-type': 'application/json' },
    payload: `{"password":"${password}"`,
  })
  const { password: hash } = await inspect(t.dbUrl)
    .selectFrom('users')
    .select('password')
    .where('username', '=', 'logged')
    .executeTakeFirstOrThrow()
  if (hash === null) throw new Error('no hash stored')

  const log = lines.join('\n')
  expect(lines.length).toBeGreaterThanOrEqual(7)
  for (const secret of [password, token, token.split('.')[2] ?? '', hash, hash.split('$').pop() ?? '']) {
    expect(secret.length).toBeGreaterThan(10)
    expect(log).not.toContain(secret)
  }
  // The query string is cut from logged paths.
  expect(log).not.toContain('access_token=')
})
