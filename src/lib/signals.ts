// The signals of `authgate serve`, handled one way in one process (server.ts) and in the WORKERS
// primary (cluster.ts). SIGTERM and SIGINT close gracefully; SIGHUP is the primary's rolling
// restart, and a logged no-op in one process; a cluster worker leaves all three to its primary.
import type { Logger } from 'pino'

export const FORCE_EXIT_AFTER_MS = 10_000
// Ctrl-C reaches both npm and the server, and npm forwards it too: the same signal twice within
// a moment is one request to stop. A signal after that forces the exit.
export const REPEAT_WINDOW_MS = 1_000

export interface Shutdown {
  /** The graceful close; a rejection is logged and makes the exit code 1. */
  close(): Promise<void>
  /** Called just before a forced exit (the primary kills its workers). */
  abort?(): void
}

/** SIGTERM/SIGINT: one graceful close, bounded by FORCE_EXIT_AFTER_MS; a later signal exits at once. */
export function onShutdownSignals(logger: Logger, shutdown: Shutdown): void {
  let firstAt = 0
  const exitNow = () => {
    shutdown.abort?.()
    process.exit(1)
  }
  const onSignal = (signal: NodeJS.Signals) => {
    if (firstAt !== 0) {
      if (Date.now() - firstAt < REPEAT_WINDOW_MS) return
      logger.warn({ signal }, 'second signal: exiting now')
      exitNow()
    }
    firstAt = Date.now()
    logger.info({ signal }, 'shutting down')
    const force = setTimeout(() => {
      logger.error(`still closing after ${FORCE_EXIT_AFTER_MS} ms: exiting now`)
      exitNow()
    }, FORCE_EXIT_AFTER_MS)
    force.unref()
    shutdown.close().then(
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

/**
 * SIGHUP in one process: logged and ignored. A process cannot hand its port to new code without a
 * moment of refused connections, and Node's default (exit 129) would take the service down when
 * a terminal closes; WORKERS=2 or more gives rolling restarts.
 */
export function ignoreRestartSignal(logger: Logger): void {
  process.on('SIGHUP', () =>
    logger.warn(
      { signal: 'SIGHUP' },
      'SIGHUP ignored: one process cannot restart itself without downtime (WORKERS=2 or more restarts the workers one at a time); restart it through its service manager',
    ),
  )
}

/**
 * In a cluster worker: SIGTERM, SIGINT and SIGHUP are ignored. Ctrl-C and a closed terminal reach
 * the whole process group, and a service manager may signal every process: the primary decides,
 * and asks each worker to close.
 */
export function leaveSignalsToPrimary(): void {
  const ignore = () => {}
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(signal, ignore)
}
