// The process entry for `authgate serve`: config, app, listen, and a graceful close on signals.
import type { FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import { buildApp, servicesOf, VERSION } from './app.js'
import type { Config } from './config.js'
import { closeKeepAliveGently } from './http/graceful-close.js'
import { ignoreRestartSignal, onShutdownSignals } from './lib/signals.js'
import { createLogger } from './logger.js'
import { createMetrics } from './metrics.js'
import type { Services } from './services.js'

// How long a closing server waits for its connections to finish before it cuts them.
export const DRAIN_MS = 5_000

export interface ServeOptions {
  /** Whether SIGTERM/SIGINT close this process (and SIGHUP is logged); a cluster worker leaves that to its primary. */
  signals?: boolean
  /** Whether to log the start-up line; a cluster worker leaves that to its primary too. */
  announce?: boolean
}

export async function serve(config: Config, options: ServeOptions = {}): Promise<FastifyInstance> {
  const logger = createLogger(config.logLevel, config.logFormat)
  // METRICS_PORT: counted in every process; a cluster worker hands its metrics to the primary.
  const metrics = config.metricsPort === undefined ? undefined : createMetrics()
  const app = await buildApp(config, { logger, ...(metrics ? { metrics } : {}) })
  // Closing (SIGTERM, or a worker retired by a rolling restart) never resets a keep-alive client.
  closeKeepAliveGently(app.server)
  try {
    await app.listen({ port: config.port, host: config.host })
    // Its own error names METRICS_PORT (no code), so listenError leaves it as it is.
    if (metrics && config.metricsPort !== undefined) await metrics.listen(config.host, config.metricsPort)
  } catch (err) {
    await app.close()
    throw listenError(err, config)
  }
  const services = servicesOf(app)
  const address = app.server.address()
  if (options.announce !== false && services && address !== null && typeof address !== 'string') {
    logger.info(startupFacts(config, services, address), STARTED)
  }
  // Only once listening: a failed start must exit non-zero, not look like a clean shutdown.
  if (options.signals !== false) handleSignals(app, logger)
  return app
}

/** The start-up line's message; its fields are startupFacts(). */
export const STARTED = 'AuthGate started'

/**
 * What the start-up line says: the version, where it listens and its docs, the database (without
 * a password), how tokens are signed (algorithm, current kid) and by which issuer, the migrations
 * this start applied (and the seed users it adopted), and how many processes serve.
 */
export function startupFacts(
  config: Config,
  services: Pick<Services, 'keys' | 'opened' | 'issuers'>,
  address: { address: string; port: number },
): Record<string, unknown> {
  const host = address.address.includes(':') ? `[${address.address}]` : address.address
  const url = `http://${host}:${address.port}`
  const kid = services.keys.snapshot()?.current.kid
  const { database, applied, adoptedSeedUsers } = services.opened
  return {
    version: VERSION,
    url,
    docs: `${url}/docs`,
    ...(config.metricsPort === undefined ? {} : { metrics: `http://${host}:${config.metricsPort}/metrics` }),
    database,
    algorithm: services.keys.algorithm,
    ...(kid === undefined ? {} : { kid }),
    issuer: services.issuers.current(),
    migrations: applied,
    ...(adoptedSeedUsers === undefined ? {} : { adoptedSeedUsers }),
    workers: config.workers,
  }
}

/** Node's listen errors, as the variable to change: PORT in use, a HOST that is not ours. */
export function listenError(err: unknown, config: Pick<Config, 'host' | 'port'>): unknown {
  const code = (err as { code?: unknown } | null)?.code
  const { host, port } = config
  const because = (text: string) => Object.assign(new Error(text, { cause: err }), { code })
  switch (code) {
    case 'EADDRINUSE':
      return because(
        `PORT ${port} is in use on HOST ${host} (EADDRINUSE): stop what listens there, or set PORT to a free port`,
      )
    case 'EACCES':
      return because(
        `PORT ${port}: permission denied (EACCES); ports below 1024 need privileges: set PORT to 1024 or above`,
      )
    case 'EADDRNOTAVAIL':
      return because(
        `HOST ${host} is not an address of this machine (EADDRNOTAVAIL): set HOST to one of its addresses, 127.0.0.1, or 0.0.0.0 for all`,
      )
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EAI_NONAME':
      return because(
        `HOST ${host} does not resolve to an address (${code}): set HOST to an address of this machine`,
      )
    default:
      return err
  }
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
