// The process logger: JSON lines by default, pretty in a terminal. Secrets are redacted by path as
// a second line of defence; the first is that no handler logs a body, a header or a token.
import pino, { type Logger } from 'pino'
import type { LogLevel } from './config.js'

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

// Written one write(2) per line, the request log was the largest single cost of GET / after the
// HTTP work itself. Asynchronous writes batch the lines that pile up meanwhile: GET / 27-28 µs of
// CPU a request -> 23-24 µs (bench/run.mjs's CPU measure, same run). pino writes what is left
// when the process exits. A write holds whole lines and at most PIPE_BUF (4096 bytes), so workers
// (WORKERS) sharing one stdout pipe never interleave inside a line.
const LINE_BATCH_MAX_BYTES = 4096

export function createLogger(level: LogLevel, pretty = Boolean(process.stdout.isTTY)): Logger {
  const options = { level, redact: { paths: REDACT_PATHS, censor: '[redacted]' } }
  if (pretty) {
    return pino({
      ...options,
      transport: { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss.l' } },
    })
  }
  return pino(options, pino.destination({ dest: 1, sync: false, maxWrite: LINE_BATCH_MAX_BYTES }))
}
