// Pretty terminal logs (LOG_FORMAT=pretty, or a TTY): one line per request, `POST /auth/token 401
// 3.2ms`, where pino-pretty printed the message and then each field on a line of its own.
import { join } from 'node:path'
import { Writable } from 'node:stream'
import pino from 'pino'
import { afterAll, describe, expect, it } from 'vitest'
import { prettyStream } from '../../src/logger.js'
import { buildTestApp, tempDir } from '../helpers/app.js'
import { form } from '../helpers/http.js'
import { startServerProcess } from '../helpers/server-process.js'

const REQUEST_LINE = /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: POST \/auth\/token 401 \d+(\.\d+)?ms$/

function sink(): { stream: Writable; lines: () => string[] } {
  let text = ''
  const stream = new Writable({
    write(chunk, _encoding, done) {
      text += chunk
      done()
    },
  })
  return { stream, lines: () => text.split('\n').filter(Boolean) }
}

const wrongLogin = {
  method: 'POST' as const,
  url: '/auth/token?debug=secret-in-url',
  headers: form,
  payload: 'username=nobody&password=not-the-password',
}

describe('the pretty formatter, on the real app', () => {
  it('writes one line per request, and keeps the other lines and their errors', async () => {
    const out = sink()
    const logger = pino({ level: 'info' }, prettyStream(out.stream))
    const t = await buildTestApp({}, { logger })
    try {
      const before = out.lines().length
      expect((await t.app.inject(wrongLogin)).statusCode).toBe(401)
      const lines = out.lines().slice(before)
      expect(lines).toHaveLength(1)
      expect(lines[0]).toMatch(REQUEST_LINE)
      // Neither the query string nor the password reaches the line.
      expect(lines[0]).not.toMatch(/secret-in-url|not-the-password/)

      // A line that is not a request keeps its message, its request id and its fields.
      logger.child({ reqId: 'abcd-1' }).warn({ err: new Error('boom') }, 'something failed')
      const warn = out.lines().slice(before + 1)
      expect(warn[0]).toMatch(/^\[[\d:.]+\] WARN: something failed \(request abcd-1\)$/)
      expect(warn.join('\n')).toContain('Error: boom')
    } finally {
      await t.close()
    }
  })
})

describe('LOG_FORMAT in a real `authgate serve`', () => {
  const dir = tempDir()
  afterAll(() => dir.cleanup())

  async function requestLines(env: Record<string, string>, name: string): Promise<string[]> {
    const server = await startServerProcess({
      DATABASE_URL: join(dir.path, `${name}.db`),
      LOG_LEVEL: 'info',
      ...env,
    })
    try {
      expect(
        (await fetch(`${server.url}/auth/token`, { ...wrongLogin, body: wrongLogin.payload })).status,
      ).toBe(401)
      // The line is written when the response is done; wait for it (JSON lines are flushed every 100 ms).
      await server.line(/auth\/token/, 10_000)
      return server
        .output()
        .split('\n')
        .filter((line) => line.includes('/auth/token'))
    } finally {
      await server.stop()
    }
  }

  it('LOG_FORMAT=pretty: one line per request, though stdout is a pipe', { timeout: 60_000 }, async () => {
    const lines = await requestLines({ LOG_FORMAT: 'pretty' }, 'pretty')
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatch(REQUEST_LINE)
  })

  it('by default on a pipe: JSON lines, unchanged', { timeout: 60_000 }, async () => {
    const lines = await requestLines({}, 'json')
    expect(lines).toHaveLength(1)
    expect(JSON.parse(lines[0] ?? '')).toMatchObject({
      level: 30,
      msg: 'request',
      method: 'POST',
      path: '/auth/token',
      statusCode: 401,
      ms: expect.any(Number),
      reqId: expect.any(String),
    })
  })
})
