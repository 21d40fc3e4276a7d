// Prometheus metrics (prom-client) on METRICS_PORT: the domain's Meter as counters, a histogram of
// every response by route pattern, the hash queue, database errors, and Node's process metrics.
// With WORKERS, each worker keeps its own and the primary's listener answers with their sum.
import cluster, { type Worker } from 'node:cluster'
import { once } from 'node:events'
import { createServer, type Server } from 'node:http'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import {
  AggregatorRegistry,
  Counter,
  collectDefaultMetrics,
  Gauge,
  Histogram,
  type MetricObjectWithValues,
  type MetricValue,
  Registry,
} from 'prom-client'
import type { Meter } from './domain/meter.js'
import { hashQueueDepth } from './domain/passwords.js'

export interface Metrics {
  readonly registry: Registry
  readonly meter: Meter
  /** For ServiceDeps.onDatabaseError. */
  databaseError(): void
  /** Times every response by route pattern: one histogram observation per request. */
  instrument(app: FastifyInstance): void
  /** Serves this process's metrics (in a cluster worker: gives them to the primary instead). */
  listen(host: string, port: number): Promise<void>
  close(): Promise<void>
}

// GET / answers in well under a millisecond; a login takes tens of milliseconds of hashing.
const DURATION_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
// What a request that matched no route is labelled: the raw URL would make the label unbounded.
const UNMATCHED = 'unmatched'
// WORKERS: the primary's question to each worker, and the answer (its metrics as JSON).
const METRICS_REQUEST = 'authgate:metrics'
const METRICS_RESPONSE = 'authgate:metrics-response'
// A listening worker that has not answered by then fails the scrape (a 503), rather than a sum
// without it: a counter that dips and comes back reads as two resets.
const WORKER_ANSWER_MS = 3_000

type WorkerMetrics = MetricObjectWithValues<MetricValue<string>>[]

export function createMetrics(): Metrics {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry })
  const counter = (name: string, help: string, labelNames: string[] = []) =>
    new Counter({ name, help, labelNames, registers: [registry] })
  const logins = counter('authgate_logins_total', 'Password logins, by result.', ['result'])
  const refreshes = counter('authgate_refresh_total', 'Refresh-token grants, by result.', ['result'])
  const registrations = counter('authgate_registrations_total', 'Sign-ups, by result.', ['result'])
  const revocations = counter(
    'authgate_revocations_total',
    'Sessions (and sid-less seed tokens) ended, by reason.',
    ['reason'],
  )
  const throttled = counter(
    'authgate_throttled_total',
    'Attempts a throttle limit refused, by the limit (scope).',
    ['scope'],
  )
  const dbErrors = counter(
    'authgate_db_errors_total',
    'Database queries that failed and connections that could not be opened.',
  )
  new Gauge({
    name: 'authgate_hash_queue_depth',
    help: 'Password hashes and verifications running or waiting for a slot.',
    registers: [registry],
    collect() {
      this.set(hashQueueDepth())
    },
  })
  const durations = new Histogram({
    name: 'authgate_http_request_duration_seconds',
    help: 'Time to answer a request, by route pattern, method and status.',
    labelNames: ['route', 'method', 'status'],
    buckets: DURATION_BUCKETS,
    registers: [registry],
  })
  // The labelled child per (route, method, status), so a request costs one Map lookup and observe.
  const children = new Map<string, ReturnType<typeof durations.labels>>()
  const observe = (request: FastifyRequest, reply: FastifyReply) => {
    const route = request.routeOptions.url ?? UNMATCHED
    const key = `${route} ${request.method} ${reply.statusCode}`
    let child = children.get(key)
    if (!child) {
      child = durations.labels(route, request.method, String(reply.statusCode))
      children.set(key, child)
    }
    child.observe(reply.elapsedTime / 1000)
  }

  let server: Server | undefined
  return {
    registry,
    meter: {
      login: (result) => logins.inc({ result }),
      refresh: (result) => refreshes.inc({ result }),
      registration: (result) => registrations.inc({ result }),
      revoked: (reason, count) => revocations.inc({ reason }, count),
      throttled: (scope) => throttled.inc({ scope }),
    },
    databaseError: () => dbErrors.inc(),
    instrument(app) {
      app.addHook('onResponse', (request, reply, done) => {
        observe(request, reply)
        done()
      })
    },
    async listen(host, port) {
      if (cluster.isWorker) {
        answerThePrimary(registry)
        return
      }
      server = await listenForScrapes(host, port, async () => ({
        body: await registry.metrics(),
        contentType: registry.contentType,
      }))
    },
    async close() {
      if (server) await closeServer(server)
    },
  }
}

/** A worker: answers the primary's METRICS_REQUEST with this process's metrics. */
function answerThePrimary(registry: Registry): void {
  process.on('message', (message: { type?: unknown; id?: unknown } | null) => {
    if (message?.type !== METRICS_REQUEST) return
    const id = message.id
    registry.getMetricsAsJSON().then(
      (metrics) => process.send?.({ type: METRICS_RESPONSE, id, metrics }),
      (err: unknown) => process.send?.({ type: METRICS_RESPONSE, id, error: String(err) }),
    )
  })
}

/**
 * The primary of WORKERS > 1, once its workers listen: METRICS_PORT answers with the sum over the
 * workers that listen (prom-client's aggregation: counters and histograms added up). A worker
 * still starting is not asked, so a rolling restart does not hold the scrape; one that exits
 * before it answers is left out, its counts gone with it. The listener and its connections are
 * unref'd: they never keep the primary alive after its workers.
 */
export async function serveClusterMetrics(host: string, port: number): Promise<void> {
  const listening = new Set<Worker>(Object.values(cluster.workers ?? {}).filter((w) => w !== undefined))
  cluster.on('listening', (worker) => listening.add(worker))
  cluster.on('exit', (worker) => listening.delete(worker))
  let nextId = 0
  const ask = (worker: Worker): Promise<WorkerMetrics | undefined> =>
    new Promise((resolve, reject) => {
      const id = nextId++
      const done = () => {
        clearTimeout(timer)
        worker.off('message', onMessage)
        worker.off('exit', onExit)
      }
      const onMessage = (m: { type?: unknown; id?: unknown; metrics?: WorkerMetrics; error?: string }) => {
        if (m?.type !== METRICS_RESPONSE || m.id !== id) return
        done()
        if (m.error !== undefined || !m.metrics) reject(new Error(m.error ?? 'no metrics'))
        else resolve(m.metrics)
      }
      const onExit = () => {
        done()
        resolve(undefined)
      }
      const timer = setTimeout(() => {
        done()
        reject(new Error(`worker ${worker.process.pid} did not answer in ${WORKER_ANSWER_MS} ms`))
      }, WORKER_ANSWER_MS)
      worker.on('message', onMessage)
      worker.on('exit', onExit)
      worker.send({ type: METRICS_REQUEST, id })
    })
  const server = await listenForScrapes(host, port, async () => {
    const answers = await Promise.all([...listening].filter((w) => w.isConnected()).map(ask))
    const sum = AggregatorRegistry.aggregate(answers.filter((a) => a !== undefined))
    return { body: await sum.metrics(), contentType: sum.contentType }
  })
  server.unref()
  server.on('connection', (socket) => socket.unref())
}

/** GET /metrics on HOST:METRICS_PORT, nothing else; separate from the public listener. */
async function listenForScrapes(
  host: string,
  port: number,
  scrape: () => Promise<{ body: string; contentType: string }>,
): Promise<Server> {
  const server = createServer((req, res) => {
    const path = req.url?.split('?', 1)[0]
    if (path !== '/metrics' || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('Not Found\n')
      return
    }
    scrape().then(
      ({ body, contentType }) => {
        res.writeHead(200, { 'content-type': contentType }).end(req.method === 'HEAD' ? undefined : body)
      },
      () => {
        // A worker that did not answer in time (prom-client waits 5 s): try again at the next scrape.
        res.writeHead(503, { 'content-type': 'text/plain' }).end('Metrics unavailable\n')
      },
    )
  })
  server.listen(port, host)
  try {
    // once() rejects on an 'error' event (EADDRINUSE, EACCES...).
    await once(server, 'listening')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err)
    throw new Error(`METRICS_PORT: cannot listen on ${host}:${port} (${code})`)
  }
  return server
}

async function closeServer(server: Server): Promise<void> {
  const closed = once(server, 'close')
  server.close()
  // Scrapers keep their connection alive; nothing they wait for is lost by cutting it.
  server.closeAllConnections()
  await closed
}
