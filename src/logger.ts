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

export function createLogger(level: LogLevel, pretty = Boolean(process.stdout.isTTY)): Logger {
  return pino({
    level,
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    ...(pretty ? { transport: { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss.l' } } } : {}),
  })
}
