// What a command's action is given (the Cli), and the little it shares across commands.
import { userInfo } from 'node:os'
import type { Config } from '../config.js'
import type { Operator } from '../domain/audit.js'
import type { Signal } from '../domain/broadcast.js'
import { openBroadcast } from '../services.js'
import type { Db } from '../storage/database.js'
import type { PasswordInput } from './prompt.js'

/** What a run of the CLI reads and writes: nothing else of the process. */
export interface CliIo {
  /** The environment the configuration is read from (the binary: process.env). */
  env: NodeJS.ProcessEnv
  /** Where passwords come from: a terminal (no echo) or a pipe (one line). */
  stdin: PasswordInput
  stdout: NodeJS.WritableStream
  stderr: NodeJS.WritableStream
  /** Runs once before the environment is first read; the binary loads ./.env into process.env. */
  loadDotEnv?: () => void
  /** Who the audit log names for an admin action; by default the OS user this process runs as. */
  operator?: Operator
}

/** What a command's action is given: the configuration, output, and its exit code to set. */
export interface Cli {
  readonly io: CliIo
  config(): Config
  /** Writes one line to stdout. */
  out(line: string): void
  /** Writes one line to stderr. */
  err(line: string): void
  /** The operator an admin action is recorded under (actor `cli`, the OS user). */
  operator(): Operator
  /** 0 unless a command fails; runCli returns it. */
  exitCode: number
}

/** The OS account the CLI runs as. os.userInfo() throws for a uid without a passwd entry (containers). */
export function osUser(env: NodeJS.ProcessEnv): string {
  try {
    const name = userInfo().username
    if (name) return name
  } catch {
    // no passwd entry: fall back to what the login shell said, then to the uid
  }
  return env.USER || env.LOGNAME || env.USERNAME || `uid:${process.getuid?.() ?? 'unknown'}`
}

/** camelCase keys to snake_case, as the HTTP API spells its fields (created_at, hash_scheme). */
export function snakeCase(record: object): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(record).map(([key, value]) => [
      key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`),
      value,
    ]),
  )
}

/**
 * Tells the running servers of the deployment that `signal` changed, so they read it now rather
 * than at their next poll or reload (`noticeWithin`, for the message). What the command did is
 * done whatever happens here: a failure to tell them is only reported.
 */
export async function tellRunningServers(
  cli: Cli,
  config: Config,
  db: Db,
  signal: Signal,
  noticeWithin: string,
): Promise<void> {
  const unheard = () => cli.err(`Could not tell running servers; they notice within ${noticeWithin}.`)
  try {
    const { broadcast, redis } = await openBroadcast(config, db, { onBroadcastError: unheard })
    await broadcast.publish(signal)
    await broadcast.close()
    await redis?.close()
  } catch {
    unheard()
  }
}
