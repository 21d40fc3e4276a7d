// WORKERS > 1: a node:cluster primary that prepares the database once, forks that many workers
// (each one serve() on the shared port), restarts one that dies, on SIGHUP replaces them one at
// a time (a rolling restart: new code, no moment without a worker listening), and on
// SIGTERM/SIGINT closes them all gracefully before exiting 0.
import cluster, { type Worker } from 'node:cluster'
import { once } from 'node:events'
import type { Logger } from 'pino'
import type { Config } from './config.js'
import { FORCE_EXIT_AFTER_MS, leaveSignalsToPrimary, onShutdownSignals } from './lib/signals.js'
import { createLogger } from './logger.js'
import { serveClusterMetrics } from './metrics.js'
import { drainAndClose, STARTED, serve, startupFacts } from './server.js'
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

  // Workers a rolling restart has asked to close: their exit is expected, not a death to make up for.
  const retiring = new WeakSet<Worker>()
  // Successors a rolling restart is starting: should one die, the restart says so and stops.
  const starting = new WeakSet<Worker>()
  /** The workers that serve or are starting, and are not being retired. */
  const serving = (): Worker[] =>
    Object.values(cluster.workers ?? {}).filter(
      (w): w is Worker => w !== undefined && !w.isDead() && !retiring.has(w),
    )
  /** Forks until config.workers serve (after a worker died, or a rolling restart that stopped). */
  const topUp = () => {
    if (stopping) return
    for (let n = serving().length; n < config.workers; n++) fork()
  }

  cluster.on('exit', (worker, code, signal) => {
    const lived = Date.now() - (startedAt.get(worker) ?? 0)
    startedAt.delete(worker)
    if (stopping || retiring.has(worker) || starting.has(worker)) return
    // During a rolling restart, a worker whose successor is already starting, or whose turn has
    // not come (the restart forks its successor all the same), is not made up for twice.
    if (serving().length >= config.workers) {
      logger.error(
        { worker: worker.process.pid, code, signal },
        'worker died during a rolling restart: the restart makes up for it',
      )
      return
    }
    failures = lived >= STABLE_AFTER_MS ? 1 : failures + 1
    const delay = Math.min(RESTART_MAX_MS, RESTART_MIN_MS * 2 ** (failures - 1))
    logger.error(
      { worker: worker.process.pid, code, signal, restartInMs: delay },
      'worker died: restarting it',
    )
    const timer = setTimeout(() => {
      restarts.delete(timer)
      topUp()
    }, delay)
    restarts.add(timer)
  })

  onShutdownSignals(logger, {
    close: async () => {
      stopping = true
      for (const timer of restarts) clearTimeout(timer)
      const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined)
      const clean = await Promise.all(
        workers.map(
          (w) =>
            new Promise<boolean>((resolve) => {
              if (w.isDead()) return resolve(true)
              w.once('exit', (code, sig) => resolve(code === 0 && sig === null))
              askToClose(w)
            }),
        ),
      )
      if (clean.includes(false)) {
        logger.error('a worker did not close cleanly')
        process.exitCode = 1
      }
    },
    abort: killAll,
  })

  // One rolling restart at a time; a SIGHUP during one is queued (several coalesce into one more
  // restart, which replaces the workers the running one started: new code deployed meanwhile).
  let rolling = false
  let queued = false
  const restart = () => {
    rolling = true
    rollingRestart(logger)
      .catch((err) => logger.error({ err }, 'rolling restart stopped'))
      .finally(() => {
        rolling = false
        topUp()
        if (queued && !stopping) {
          queued = false
          logger.info('starting the rolling restart a SIGHUP queued')
          restart()
        }
      })
  }
  process.on('SIGHUP', () => {
    if (stopping) return logger.info('SIGHUP while shutting down: ignored')
    if (rolling) {
      logger.info(
        queued
          ? 'SIGHUP during a rolling restart: one more restart is already queued'
          : 'SIGHUP during a rolling restart: queued, another restart follows this one',
      )
      queued = true
      return
    }
    restart()
  })

  /**
   * Each worker in turn: fork its successor, wait until it listens, then ask the old one to finish
   * its requests and close. A successor that dies while starting (bad new code) ends the restart
   * with the old worker still serving. An old worker that died meanwhile gets its successor all
   * the same, and is not waited for.
   */
  async function rollingRestart(log: Logger): Promise<void> {
    const old = serving()
    log.info({ workers: old.length }, 'SIGHUP: replacing the workers one at a time')
    for (const worker of old) {
      if (stopping) return
      const successor = fork()
      starting.add(successor)
      const started = await listeningOrExit(successor, log)
      starting.delete(successor)
      if (!started) throw new Error(`the new worker ${successor.process.pid} exited while starting`)
      if (stopping) return
      await retire(worker, retiring, log)
    }
    log.info('rolling restart done')
  }
}

// A successor that has not listened after this long is killed, and the restart stops.
const START_LIMIT_MS = 60_000

/** Whether `worker` (just forked) listens, rather than exiting first. */
function listeningOrExit(worker: Worker, log: Logger): Promise<boolean> {
  return new Promise((resolve) => {
    const done = (listening: boolean) => {
      clearTimeout(limit)
      worker.off('listening', onListening)
      worker.off('exit', onExit)
      resolve(listening)
    }
    const onListening = () => done(true)
    const onExit = () => done(false)
    const limit = setTimeout(() => {
      log.error(
        { worker: worker.process.pid },
        `new worker not listening after ${START_LIMIT_MS} ms: killing it`,
      )
      worker.process.kill('SIGKILL')
    }, START_LIMIT_MS)
    worker.on('listening', onListening)
    worker.on('exit', onExit)
  })
}

/** Asks `worker` to finish its requests and close, and waits until it has exited (killed if stuck). */
async function retire(worker: Worker, retiring: WeakSet<Worker>, log: Logger): Promise<void> {
  retiring.add(worker)
  if (worker.isDead()) return
  // Registered while it is alive: its exit cannot have been emitted yet.
  const exited = once(worker, 'exit')
  askToClose(worker)
  // A worker drains for at most DRAIN_MS; one still alive well after that is stuck.
  const kill = setTimeout(() => {
    log.error({ worker: worker.process.pid }, `still closing after ${FORCE_EXIT_AFTER_MS} ms: killing it`)
    worker.process.kill('SIGKILL')
  }, FORCE_EXIT_AFTER_MS)
  await exited
  clearTimeout(kill)
}

/** The SHUTDOWN message; a worker whose channel is closed is already on its way out. */
function askToClose(worker: Worker): void {
  if (!worker.isConnected()) return
  // With a callback, a channel that closes meanwhile is an error here, not an 'error' event.
  worker.send({ type: SHUTDOWN }, undefined, () => {})
}

function killAll(): void {
  for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGKILL')
}

async function runWorker(config: Config): Promise<void> {
  // SIGTERM, SIGINT and SIGHUP (a closed terminal signals the whole group) are the primary's.
  leaveSignalsToPrimary()
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
