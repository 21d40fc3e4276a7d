// What Node and Fastify answer themselves (431, a malformed request, a bad URL encoding, a request
// timeout, 404, 405), sent over a raw TCP socket to a listening server: always `{detail, code}`,
// never the request echoed back (issue 9, item 6).
import { createServer, type Server } from 'node:http'
import { type AddressInfo, connect } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { answerClientError } from '../../src/http/plugins/errors.js'
import { buildTestApp, type TestApp } from '../helpers/app.js'

interface RawAnswer {
  status: number
  headers: Record<string, string>
  body: string
  /** Everything the server sent, for "the request is not echoed" checks. */
  raw: string
}

/** Sends bytes as they are, reads until the server closes (or `untilBody` arrives), parses one answer. */
function raw(port: number, request: string | Buffer, { keepWriting }: { keepWriting?: boolean } = {}) {
  return new Promise<RawAnswer>((resolve, reject) => {
    const socket = connect(port, '127.0.0.1')
    const chunks: Buffer[] = []
    socket.on('data', (c) => chunks.push(c))
    // A reset after the answer was read is fine (the server closes with unread input pending).
    socket.on('error', (err) => (chunks.length > 0 ? undefined : reject(err)))
    socket.on('close', () => {
      const text = Buffer.concat(chunks).toString('latin1')
      const split = text.indexOf('\r\n\r\n')
      if (split === -1) return reject(new Error(`no HTTP answer: ${JSON.stringify(text.slice(0, 200))}`))
      const [statusLine = '', ...lines] = text.slice(0, split).split('\r\n')
      const headers: Record<string, string> = {}
      for (const line of lines) {
        const colon = line.indexOf(':')
        headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim()
      }
      resolve({ status: Number(statusLine.split(' ')[1]), headers, body: text.slice(split + 4), raw: text })
    })
    socket.write(request)
    if (!keepWriting) socket.end()
  })
}

function expectErrorBody(answer: RawAnswer, status: number, code: string) {
  expect(answer.status).toBe(status)
  expect(answer.headers['content-type']).toMatch(/^application\/json\b/)
  const body = JSON.parse(answer.body)
  expect(Object.keys(body).sort()).toEqual(['code', 'detail'])
  expect(body.code).toBe(code)
  expect(typeof body.detail).toBe('string')
  expect(Number(answer.headers['content-length'])).toBe(Buffer.byteLength(answer.body))
}

let t: TestApp
let port: number
beforeAll(async () => {
  t = await buildTestApp()
  await t.app.listen({ port: 0, host: '127.0.0.1' })
  port = (t.app.server.address() as AddressInfo).port
})
afterAll(async () => {
  await t.close()
})

describe('answers Node and Fastify give themselves, over a raw socket', () => {
  it('answers a well-formed request normally (the control case)', async () => {
    const answer = await raw(port, 'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
    expect(answer.status).toBe(200)
  })

  it('answers oversized headers with 431 in the {detail, code} shape', async () => {
    const marker = 'OVERSIZED'.repeat(2500)
    const answer = await raw(port, `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${marker}\r\n\r\n`, {
      keepWriting: true,
    })
    expectErrorBody(answer, 431, 'headers_too_large')
    expect(answer.headers.connection).toBe('close')
    expect(answer.raw).not.toContain('OVERSIZED')
  })

  it.each([
    ['a garbage request line', 'HELLO <script>alert(1)</script>\r\n\r\n'],
    ['an unknown method', 'BREW /<script> HTTP/1.1\r\nHost: x\r\n\r\n'],
    ['a header with a space in its name', 'GET / HTTP/1.1\r\nHost: x\r\nBad <script>: 1\r\n\r\n'],
    ['a bare LF inside a header value', 'GET / HTTP/1.1\r\nHost: x\r\nX-A: <script>\x01\r\n\r\n'],
    [
      'two Content-Lengths',
      'POST /auth/ HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab',
    ],
    [
      'a chunk size that is not hex',
      'POST /auth/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz<script>\r\n',
    ],
  ])('answers %s with 400 in the {detail, code} shape, echoing nothing', async (_what, request) => {
    const answer = await raw(port, request)
    expectErrorBody(answer, 400, 'bad_request')
    expect(answer.headers.connection).toBe('close')
    expect(answer.raw).not.toContain('<script>')
    expect(answer.raw).not.toMatch(/Client Error|statusCode/)
  })

  it('answers a path with an invalid percent-encoding with 400, without the path', async () => {
    for (const request of [
      'GET /auth/sessions/%ff<script> HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
      'DELETE /auth/sessions/%ff<script> HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
    ]) {
      const answer = await raw(port, request)
      expectErrorBody(answer, 400, 'bad_request')
      expect(answer.raw).not.toMatch(/%ff|<script>|FST_ERR/i)
    }
  })

  it('answers a path parameter over the router limit with 414, without the path', async () => {
    const answer = await raw(
      port,
      `DELETE /auth/sessions/${'LONGPARAM'.repeat(30)} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
    )
    expectErrorBody(answer, 414, 'uri_too_long')
    expect(answer.raw).not.toMatch(/LONGPARAM|FST_ERR/)
  })

  it('answers an unknown path with 404 and a wrong method with 405, echoing neither', async () => {
    const notFound = await raw(port, 'GET /no/such/<script> HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
    expectErrorBody(notFound, 404, 'not_found')
    expect(notFound.raw).not.toContain('<script>')
    const wrongMethod = await raw(
      port,
      'PATCH /auth/sessions/<script> HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
    )
    expectErrorBody(wrongMethod, 405, 'method_not_allowed')
    expect(wrongMethod.raw).not.toContain('<script>')
  })
})

describe('a request that does not arrive in time', () => {
  // The app's own limits are 10 s for headers and 30 s for a request, and Node looks for late
  // requests every 30 s: a Node server with the same clientError handler and small limits shows
  // Node's own timeout path (ERR_HTTP_REQUEST_TIMEOUT) in well under a second.
  let server: Server
  let smallPort: number
  beforeAll(async () => {
    server = createServer(
      { headersTimeout: 300, requestTimeout: 600, connectionsCheckingInterval: 50 },
      // Answers once the whole body is in, as the app's routes do.
      (req, res) => req.resume().on('end', () => res.end('{}')),
    )
    server.on('clientError', answerClientError)
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    smallPort = (server.address() as AddressInfo).port
  })
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve))
  })

  it('is answered (the control case: a whole request is)', async () => {
    const answer = await raw(smallPort, 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
    expect(answer.status).toBe(200)
  })

  it('gets 408 in the {detail, code} shape when its headers stall', async () => {
    const answer = await raw(smallPort, 'GET /<script> HTTP/1.1\r\nHost: x\r\nX-Slow: ', {
      keepWriting: true,
    })
    expectErrorBody(answer, 408, 'request_timeout')
    expect(answer.headers.connection).toBe('close')
    expect(answer.raw).not.toContain('<script>')
  })

  it('gets 408 in the {detail, code} shape when the connection stays silent', async () => {
    const answer = await raw(smallPort, '', { keepWriting: true })
    expectErrorBody(answer, 408, 'request_timeout')
  })

  it('gets 408 in the {detail, code} shape when its body stalls', async () => {
    const answer = await raw(
      smallPort,
      'POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"a"',
      { keepWriting: true },
    )
    expectErrorBody(answer, 408, 'request_timeout')
  })
})
