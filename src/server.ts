// The process entry for `authgate serve`: config, app, listen, and a graceful close on signals.
import type { FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import { buildApp } from './app.js'
import type { Config } from './config.js'
import { createLogger } from './logger.js'

export const FORCE_EXIT_AFTER_MS = 10_000
// Ctrl-C reaches both npm and the server, and npm forwards it too: the same signal twice within
// a moment is one request to stop. A signal after that forces the exit.
export const REPEAT_WINDOW_MS = 1_000
// How long a closing server waits for its connections to finish before it cuts them.
export const DRAIN_MS = 5_000

export interface ServeOptions {
  /** Whether SIGTERM/SIGINT close this process; a cluster worker leaves that to its primary. */
  signals?: boolean
}

export async function serve(config: Config, options: ServeOptions = {}): Promise<FastifyInstance> {
  const logger = createLogger(config.logLevel, config.logFormat)
  const app = await buildApp(config, { logger })
  try {
    const address = await app.listen({ port: config.port, host: config.host })
    logger.info({ address, docs: `${address}/docs` }, 'AuthGate listening')
  } catch (err) {
    await app.close()
    throw err
  }
  // Only once listening: a failed start must exit non-zero, not look like a clean shutdown.
  if (options.signals !== false) handleSignals(app, logger)
  return app
}

/**
 * app.close() (stop listening, let requests finish, then close the database), bounded: once the
 * server closes, Node no longer enforces its header and request timeouts, so one client that
 * connected and never sent a request would hold the close, and a rolling restart, forever.
 * Connections still open after DRAIN_MS are cut; the database then closes as usual.
 */
export async function drainAndClose(app: FastifyInstance): Promise<void> {
  const cut = setTimeout(() => {
    app.log.warn(`connections still open after ${DRAIN_MS} ms: closing them`)
    app.server.closeAllConnections()
  }, DRAIN_MS)
  try {
    await app.close()
  } finally {
    clearTimeout(cut)
  }
}

/** SIGTERM/SIGINT: stop accepting, let in-flight requests finish, then close the database. */
function handleSignals(app: FastifyInstance, logger: Logger): void {
  let firstAt = 0
  const onSignal = (signal: NodeJS.Signals) => {
    if (firstAt !== 0) {
      if (Date.now() - firstAt < REPEAT_WINDOW_MS) return
      logger.warn({ signal }, 'second signal: exiting now')
      process.exit(1)
    }
    firstAt = Date.now()
    logger.info({ signal }, 'shutting down')
    const force = setTimeout(() => {
      logger.error(`still closing after ${FORCE_EXIT_AFTER_MS} ms: exiting now`)
      process.exit(1)
    }, FORCE_EXIT_AFTER_MS)
    force.unref()
    drainAndClose(app).then(
      () => {
        clearTimeout(force)
        logger.info('closed')
      },
      (err: unknown) => {
        logger.error({ err }, 'error while closing')
        process.exitCode = 1
      },
    )
  }
  process.on('SIGTERM', onSignal)
  process.on('SIGINT', onSignal)
}
