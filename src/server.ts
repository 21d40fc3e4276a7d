// The process entry for `authgate serve`: config, app, listen, and a graceful close on signals.
import type { FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import { buildApp } from './app.js'
import type { Config } from './config.js'
import { closeKeepAliveGently } from './http/graceful-close.js'
import { ignoreRestartSignal, onShutdownSignals } from './lib/signals.js'
import { createLogger } from './logger.js'

export { FORCE_EXIT_AFTER_MS, REPEAT_WINDOW_MS } from './lib/signals.js'
// How long a closing server waits for its connections to finish before it cuts them.
export const DRAIN_MS = 5_000

export interface ServeOptions {
  /** Whether SIGTERM/SIGINT close this process (and SIGHUP is logged); a cluster worker leaves that to its primary. */
  signals?: boolean
}

export async function serve(config: Config, options: ServeOptions = {}): Promise<FastifyInstance> {
  const logger = createLogger(config.logLevel)
  const app = await buildApp(config, { logger })
  // Closing (SIGTERM, or a worker retired by a rolling restart) never resets a keep-alive client.
  closeKeepAliveGently(app.server)
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
 * app.close() (stop listening, let requests finish, close each keep-alive connection between two
 * requests, as closeKeepAliveGently says, then close the database), bounded: once the
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
  onShutdownSignals(logger, { close: () => drainAndClose(app) })
  ignoreRestartSignal(logger)
}
