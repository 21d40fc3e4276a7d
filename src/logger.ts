// The process logger: JSON lines by default, pretty in a terminal (LOG_FORMAT). Secrets are redacted by path as
// a second line of defence; the first is that no handler logs a body, a header or a token.
import pino, { type DestinationStream, type Logger } from 'pino'
import pretty from 'pino-pretty'
import type { LogLevel } from './config.js'
import { batchedLines } from './lib/batched-lines.js'

// Fixed paths only: a leading wildcard (`*.password`) makes pino walk every value of every line,
// 2-3 µs a request on GET / (bench/run.mjs), to guard against lines no code writes.
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'body.password',
  'body.refresh_token',
  'password',
  'new_password',
  'current_password',
  'access_token',
  'refresh_token',
  'token',
]

// The request log, one write(2) per line, cost GET / about 6 µs of its ~28 µs of CPU (bench/run.mjs
// on this 2-core host). Lines are now gathered and written synchronously once 3 KiB are waiting, or
// every 100 ms: 22 µs a request, in three of three same-run pairings. Memory stays bounded (a write
// blocks, as before, rather than queueing) and a line waits at most 100 ms. Each write holds whole
// lines and at most PIPE_BUF (4096 bytes), so workers (WORKERS) sharing one stdout pipe never
// interleave inside a line. What is waiting is written when the process exits; a SIGKILL loses it.
const FLUSH_AT_BYTES = 3072
const WRITE_MAX_BYTES = 4096
const FLUSH_EVERY_MS = 100

// Fastify logs one "Server listening at <url>" per address it listens on (every interface with
// 0.0.0.0); the start-up line (src/server.ts) says it once, with the rest.
const FASTIFY_LISTENING = 'Server listening at '

/** LOG_FORMAT: `auto` is pretty when stdout is a terminal, JSON lines otherwise. */
export type LogFormat = 'auto' | 'pretty' | 'json'

/** The fields of the request line (http/plugins/request-log.ts), shown as `POST /auth/token 200 12.3ms`. */
const REQUEST_FIELDS = ['method', 'path', 'statusCode', 'ms'] as const

/**
 * The pretty line's message: a request is one line, `POST /auth/token 200 12.3ms`, where pino-pretty
 * would print the message and then each field on a line of its own. Any other line keeps its message,
 * with the request id it belongs to when it has one.
 */
export function prettyMessage(log: Record<string, unknown>, messageKey: string): string {
  const message = String(log[messageKey] ?? '')
  if (REQUEST_FIELDS.every((field) => log[field] !== undefined)) {
    const line = `${log.method} ${log.path} ${log.statusCode} ${log.ms}ms`
    return message === 'request' ? line : `${line} ${message}`
  }
  return log.reqId === undefined ? message : `${message} (request ${log.reqId})`
}

/** pino-pretty in this process (a function can't cross to a transport's worker), writing in order. */
export function prettyStream(destination?: NodeJS.WritableStream, colorize = false): DestinationStream {
  return pretty({
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: ['pid', 'hostname', 'reqId', ...REQUEST_FIELDS].join(','),
    messageFormat: prettyMessage,
    colorize,
    sync: true,
    ...(destination ? { destination } : {}),
  })
}

export function createLogger(level: LogLevel, format: LogFormat = 'auto'): Logger {
  const options: pino.LoggerOptions = {
    level,
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    hooks: {
      logMethod(args, method) {
        if (typeof args[0] === 'string' && args[0].startsWith(FASTIFY_LISTENING)) return
        method.apply(this, args)
      },
    },
  }
  const isTTY = Boolean(process.stdout.isTTY)
  if (format === 'pretty' || (format === 'auto' && isTTY))
    return pino(options, prettyStream(undefined, isTTY))
  const stdout = batchedLines(1, {
    flushAtBytes: FLUSH_AT_BYTES,
    maxWriteBytes: WRITE_MAX_BYTES,
    flushEveryMs: FLUSH_EVERY_MS,
  })
  process.once('exit', () => {
    try {
      stdout.flushSync()
    } catch {
      // stdout already gone (a closed pipe): nothing left to tell.
    }
  })
  return pino(options, stdout)
}
