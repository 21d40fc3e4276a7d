// WORKERS > 1: a node:cluster primary that prepares the database once, forks that many workers
// (each one serve() on the shared port), restarts one that dies, on SIGHUP replaces them one at
// a time (a rolling restart: new code, no moment without a worker listening), and on
// SIGTERM/SIGINT closes them all gracefully before exiting 0.
import cluster, { type Worker } from 'node:cluster'
import { once } from 'node:events'
import type { Logger } from 'pino'
import type { Config } from './config.js'
import { createLogger } from './logger.js'
import { serveClusterMetrics } from './metrics.js'
import {
  drainAndClose,
  FORCE_EXIT_AFTER_MS,
  REPEAT_WINDOW_MS,
  STARTED,
  serve,
  startupFacts,
} from './server.js'
import { openServices } from './services.js'
import { errorReason } from './storage/database.js'

/** The primary's message that asks a worker to close. */
const SHUTDOWN = 'authgate:shutdown'
// A worker that dies is restarted after a delay that doubles with each death in a row (from
// 100 ms to 30 s); one that lived a minute starts the count again.
const RESTART_MIN_MS = 100
const RESTART_MAX_MS = 30_000
const STABLE_AFTER_MS = 60_000

/** `authgate serve` with config.workers > 1: the primary in the first process, serve() in a worker. */
export async function serveCluster(config: Config): Promise<void> {
  if (cluster.isPrimary) await runPrimary(config)
  else await runWorker(config)
}

async function runPrimary(config: Config): Promise<void> {
  const logger = createLogger(config.logLevel, config.logFormat)
  // Migrations, canonical names and the first signing key, once, before any worker races for them.
  const services = await openServices(config, {
    onDatabaseRetry: ({ database, attempt, err, giveUpInMs }) =>
      logger.warn(
        { database, attempt, error: errorReason(err), giveUpInMs },
        'database not reachable yet: retrying',
      ),
  })
  await services.close()
  // The start-up line is the primary's, once every worker listens; workers print none.
  let listeningAt = { address: config.host, port: config.port }

  let stopping = false
  let failures = 0
  const startedAt = new Map<Worker, number>()
  const restarts = new Set<NodeJS.Timeout>()

  const fork = (): Worker => {
    const worker = cluster.fork()
    startedAt.set(worker, Date.now())
    return worker
  }

  // Start-up: every worker must listen, or the start fails (a port in use, a bad database...).
  await new Promise<void>((resolve, reject) => {
    let listening = 0
    const onListening = (_worker: Worker, address: { address: string | null; port: number }) => {
      listeningAt = { address: address.address ?? config.host, port: address.port }
      if (++listening === config.workers) {
        cluster.off('listening', onListening)
        cluster.off('exit', onEarlyExit)
        resolve()
      }
    }
    const onEarlyExit = (worker: Worker, code: number | null, signal: string | null) => {
      cluster.off('listening', onListening)
      cluster.off('exit', onEarlyExit)
      for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGKILL')
      reject(new Error(`worker ${worker.process.pid} exited during start-up (${signal ?? code})`))
    }
    cluster.on('listening', onListening)
    cluster.on('exit', onEarlyExit)
    for (let i = 0; i < config.workers; i++) fork()
  })
  logger.info(startupFacts(config, services, listeningAt), STARTED)

  // METRICS_PORT: the primary listens, and each scrape sums what every live worker counted. The
  // listener never holds the primary open: it exits once its workers have.
  if (config.metricsPort !== undefined) {
    await serveClusterMetrics(config.host, config.metricsPort).catch((err: unknown) => {
      killAll()
      throw err
    })
  }

  // Workers a rolling restart has replaced: their exit is expected, not a death to make up for.
  const retiring = new WeakSet<Worker>()
  cluster.on('exit', (worker, code, signal) => {
    const lived = Date.now() - (startedAt.get(worker) ?? 0)
    startedAt.delete(worker)
    if (stopping || retiring.has(worker)) return
    failures = lived >= STABLE_AFTER_MS ? 1 : failures + 1
    const delay = Math.min(RESTART_MAX_MS, RESTART_MIN_MS * 2 ** (failures - 1))
    logger.error(
      { worker: worker.process.pid, code, signal, restartInMs: delay },
      'worker died: restarting it',
    )
    const timer = setTimeout(() => {
      restarts.delete(timer)
      if (!stopping) fork()
    }, delay)
    restarts.add(timer)
  })

  handlePrimarySignals(logger)

  let rolling = false
  process.on('SIGHUP', () => {
    if (stopping || rolling) return
    rolling = true
    rollingRestart(logger)
      .catch((err) => logger.error({ err }, 'rolling restart stopped'))
      .finally(() => {
        rolling = false
      })
  })

  /**
   * Each worker in turn: fork its successor, wait until it listens, then ask the old one to finish
   * its requests and close. A successor that dies while starting (bad new code) ends the restart
   * with the old worker still serving.
   */
  async function rollingRestart(log: Logger): Promise<void> {
    const old = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined)
    log.info({ workers: old.length }, 'SIGHUP: replacing the workers one at a time')
    for (const worker of old) {
      if (stopping) return
      const successor = fork()
      // Not restarted should it die while starting: then the old worker stays.
      retiring.add(successor)
      const started = await Promise.race([
        once(successor, 'listening').then(() => true),
        once(successor, 'exit').then(() => false),
      ])
      if (!started) throw new Error(`the new worker ${successor.process.pid} exited while starting`)
      retiring.delete(successor)
      if (stopping) return
      retiring.add(worker)
      const exited = once(worker, 'exit')
      if (worker.isConnected()) worker.send({ type: SHUTDOWN })
      else worker.process.kill('SIGTERM')
      // A worker drains for at most DRAIN_MS; one still alive well after that is stuck.
      const kill = setTimeout(() => {
        log.error({ worker: worker.process.pid }, `still closing after ${FORCE_EXIT_AFTER_MS} ms: killing it`)
        worker.process.kill('SIGKILL')
      }, FORCE_EXIT_AFTER_MS)
      await exited
      clearTimeout(kill)
    }
    log.info('rolling restart done')
  }

  function handlePrimarySignals(log: Logger): void {
    let firstAt = 0
    const onSignal = (signal: NodeJS.Signals) => {
      if (firstAt !== 0) {
        if (Date.now() - firstAt < REPEAT_WINDOW_MS) return
        log.warn({ signal }, 'second signal: exiting now')
        killAll()
        process.exit(1)
      }
      firstAt = Date.now()
      stopping = true
      for (const timer of restarts) clearTimeout(timer)
      log.info({ signal }, 'shutting down')
      const force = setTimeout(() => {
        log.error(`still closing after ${FORCE_EXIT_AFTER_MS} ms: exiting now`)
        killAll()
        process.exit(1)
      }, FORCE_EXIT_AFTER_MS)
      force.unref()
      const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined)
      Promise.all(
        workers.map(
          (w) =>
            new Promise<boolean>((resolve) => {
              if (w.isDead()) return resolve(true)
              w.once('exit', (code, sig) => resolve(code === 0 && sig === null))
              if (w.isConnected()) w.send({ type: SHUTDOWN })
              else w.process.kill('SIGTERM')
            }),
        ),
      ).then((clean) => {
        clearTimeout(force)
        if (clean.includes(false)) {
          log.error('a worker did not close cleanly')
          process.exitCode = 1
        }
        log.info('closed')
      })
    }
    process.on('SIGTERM', onSignal)
    process.on('SIGINT', onSignal)
  }
}

function killAll(): void {
  for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGKILL')
}

async function runWorker(config: Config): Promise<void> {
  // Ctrl-C reaches the whole process group, and a service manager may signal every process: the
  // primary decides, and asks each worker to close.
  const ignore = () => {}
  process.on('SIGTERM', ignore)
  process.on('SIGINT', ignore)
  // Listened for before start-up, so a shutdown asked for while starting is not lost.
  let shutdownAsked = () => {}
  const asked = new Promise<void>((resolve) => {
    shutdownAsked = resolve
  })
  process.on('message', (message: unknown) => {
    if ((message as { type?: unknown } | null)?.type === SHUTDOWN) shutdownAsked()
  })
  let app: Awaited<ReturnType<typeof serve>>
  try {
    app = await serve(config, { signals: false, announce: false })
  } catch (err) {
    console.error(err instanceof Error ? err.message : err)
    process.exit(1)
  }
  await asked
  try {
    await drainAndClose(app)
  } catch (err) {
    app.log.error({ err }, 'error while closing')
    process.exit(1)
  }
  cluster.worker?.disconnect()
}
