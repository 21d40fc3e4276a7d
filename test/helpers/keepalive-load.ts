// Steady load from keep-alive clients, for tests (and measurements) of restarts: some clients call
// GET / with a token, others log in with POST /auth/token, each kind on a keep-alive agent of its
// own, and every outcome is counted per kind.
//
// The clients are careful ones, as RFC 9112 §9.3.1 allows and Node's http docs recommend: a GET
// (idempotent, RFC 9110 §9.2.2) that fails on a reused connection before any byte of a response
// arrived (the server closed the connection as the request left) is retried once, and counted as
// retried, not failed. A POST is never retried: any error is a failure.

import { Agent, request } from 'node:http'
import { form } from './http.js'

export interface KindCounts {
  ok: number
  failed: number
  retried: number
}

export interface LoadCounts {
  get: KindCounts
  post: KindCounts
  /** One line per failure: kind, status or error, whether the socket was reused. */
  failures: string[]
}

export interface LoadOptions {
  /** The Authorization header value for GET /. */
  bearer: string
  /** The form body of POST /auth/token. */
  loginForm: string
  getClients?: number
  postClients?: number
}

interface Outcome {
  status: number
  /** The error, if the request failed without a response. */
  error?: string
  reused: boolean
  /** Whether any byte of a response arrived. */
  answered: boolean
}

function send(
  agent: Agent,
  base: URL,
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: string,
): Promise<Outcome> {
  return new Promise((resolve) => {
    let answered = false
    const req = request({ host: base.hostname, port: base.port, method, path, headers, agent }, (res) => {
      answered = true
      res.resume()
      res.on('end', () => resolve({ status: res.statusCode ?? 0, reused: req.reusedSocket, answered }))
      res.on('error', (err) => resolve({ status: 0, error: err.message, reused: req.reusedSocket, answered }))
    })
    req.on('error', (err: NodeJS.ErrnoException) =>
      resolve({ status: 0, error: err.code ?? err.message, reused: req.reusedSocket, answered }),
    )
    req.setTimeout(10_000, () => req.destroy(new Error(`${method} ${path}: no answer in 10 s`)))
    req.end(body)
  })
}

/** Starts the clients; stop() ends them after their current request and returns the counts. */
export function keepAliveLoad(
  url: string,
  options: LoadOptions,
): { stop(): Promise<LoadCounts>; counts: LoadCounts } {
  const base = new URL(url)
  const counts: LoadCounts = {
    get: { ok: 0, failed: 0, retried: 0 },
    post: { ok: 0, failed: 0, retried: 0 },
    failures: [],
  }
  let done = false
  const getClients = options.getClients ?? 4
  const postClients = options.postClients ?? 2
  const getAgent = new Agent({ keepAlive: true, maxSockets: getClients })
  const postAgent = new Agent({ keepAlive: true, maxSockets: postClients })
  const note = (kind: 'get' | 'post', o: Outcome) =>
    counts.failures.push(`${kind} ${o.error ?? o.status}${o.reused ? ' (reused connection)' : ''}`)

  const getLoop = async () => {
    while (!done) {
      const call = () => send(getAgent, base, 'GET', '/', { authorization: options.bearer })
      let o = await call()
      if (o.status === 0 && o.reused && !o.answered) {
        counts.get.retried++
        o = await call()
      }
      if (o.status === 200) counts.get.ok++
      else {
        counts.get.failed++
        note('get', o)
      }
    }
  }
  const postLoop = async () => {
    while (!done) {
      const o = await send(postAgent, base, 'POST', '/auth/token', form, options.loginForm)
      if (o.status === 200) counts.post.ok++
      else {
        counts.post.failed++
        note('post', o)
      }
    }
  }
  const running = Promise.all([
    ...Array.from({ length: getClients }, getLoop),
    ...Array.from({ length: postClients }, postLoop),
  ])
  return {
    counts,
    async stop() {
      done = true
      await running
      getAgent.destroy()
      postAgent.destroy()
      return counts
    },
  }
}
