// WORKERS=2 with METRICS_PORT (issue 10 item 7): real processes; the primary's one listener
// answers with the sum of both workers' counts, not one worker's share.
import { join } from 'node:path'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { PASSWORD, tempDir } from '../helpers/app.js'
import { freePort, requestOnce, type ServerProcess, startServerProcess } from '../helpers/server-process.js'

const dir = tempDir('authgate-metrics-workers-')
let server: ServerProcess
let metricsPort: number

beforeAll(async () => {
  metricsPort = await freePort()
  server = await startServerProcess({
    WORKERS: '2',
    METRICS_PORT: String(metricsPort),
    DATABASE_URL: `sqlite:///${join(dir.path, 'shared.db')}`,
  })
}, 60_000)
afterAll(async () => {
  await server?.stop()
  dir.cleanup()
})

/** One request on a connection of its own, so the primary hands each to the next worker. */
const call = (method: string, url: string, body?: string) =>
  requestOnce(method, url, {
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body,
    timeoutMs: 10_000,
  })

function sample(text: string, line: RegExp): number | undefined {
  const m = text.split('\n').find((l) => line.test(l))
  return m === undefined ? undefined : Number(m.split(' ').at(-1))
}

it('sums both workers: six sign-ups, spread over two workers, scrape as six', {
  timeout: 60_000,
}, async () => {
  // The primary opens METRICS_PORT only once every worker listens; from then on its round robin
  // hands fresh connections to the two workers in turn, so each takes three of the six.
  const metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`
  await expect
    .poll(async () => (await call('GET', metricsUrl).catch(() => ({ status: 0 }))).status, {
      timeout: 30_000,
      interval: 50,
      message: "the primary's metrics listener (it opens just after the start-up line)",
    })
    .toBe(200)
  const n = 6
  for (let i = 0; i < n; i++) {
    const res = await call(
      'POST',
      `${server.url}/auth/`,
      JSON.stringify({ username: `w${i}`, password: PASSWORD }),
    )
    expect(res.status).toBe(201)
  }
  const scrape = await call('GET', metricsUrl)
  expect(scrape.status).toBe(200)
  expect(sample(scrape.body, /^authgate_registrations_total\{result="success"\} /)).toBe(n)
  expect(
    sample(
      scrape.body,
      /^authgate_http_request_duration_seconds_count\{route="\/auth\/",method="POST",status="201"\} /,
    ),
  ).toBe(n)
  // The public port has no /metrics.
  expect((await call('GET', `${server.url}/metrics`)).status).toBe(404)
})
