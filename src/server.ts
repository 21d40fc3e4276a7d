// The process entry for `authgate serve`: config, app, listen, and a graceful close on signals.
import closeWithGrace from 'close-with-grace'
import { buildApp } from './app.js'
import type { Config } from './config.js'
import { createLogger } from './logger.js'

export async function serve(config: Config): Promise<void> {
  const logger = createLogger(config.logLevel)
  const app = await buildApp(config, { logger })
  // SIGTERM/SIGINT: stop accepting, let in-flight requests finish, then close the database
  // (the app's onClose hook). A second signal, or 10 s, forces the exit.
  closeWithGrace({ delay: 10_000, logger }, async ({ signal, err }) => {
    if (err) logger.error({ err }, 'shutting down after an error')
    else logger.info({ signal }, 'shutting down')
    await app.close()
  })
  const address = await app.listen({ port: config.port, host: config.host })
  logger.info({ address, docs: `${address}/docs` }, 'AuthGate listening')
}
