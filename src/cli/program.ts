// `authgate`: one program that serves, migrates and administers users, as a function of its
// arguments, environment and streams (index.ts is the binary). Tests run it in-process.
import { readFileSync } from 'node:fs'
import { Command, CommanderError } from 'commander'
import { serveCluster } from '../cluster.js'
import { ConfigError, EnvSchema, loadConfig } from '../config.js'
import { operatorDetail } from '../domain/audit.js'
import { DomainError, ValidationError } from '../domain/errors.js'
import { serve } from '../server.js'
import { openAudit, openDatabase, openServices } from '../services.js'
import { connectDatabase } from '../storage/database.js'
import { migrateDown, migrateToLatest } from '../storage/migrate.js'
import { registerAuditCommands } from './audit.js'
import { registerClientCommands } from './clients.js'
import { type Cli, type CliIo, osUser, snakeCase } from './context.js'
import { registerKeyCommands } from './keys.js'
import { PasswordInputError, readPassword } from './prompt.js'

export type { Cli, CliIo } from './context.js'

const version = (
  JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
).version

/** The environment every command reads, shown after each command's own help. */
function environmentHelp(): string {
  const others = Object.keys(EnvSchema.properties).filter((k) => k !== 'DATABASE_URL')
  const lines: string[] = []
  let line = ' '
  for (const name of others) {
    if (line.length + name.length > 96) {
      lines.push(line)
      line = ' '
    }
    line += ` ${name}`
  }
  lines.push(line)
  return [
    '',
    'Environment: read from the shell, and from a .env file in the working directory (the shell wins).',
    '  DATABASE_URL   the database: a path, sqlite:///relative.db, sqlite:////abs.db or postgres://host/db',
    '                 (default sqlite:///./data/authgate.db)',
    '  Also read (each is described in the README, "Configuration"):',
    ...lines,
    '',
  ].join('\n')
}

async function withServices<T>(
  cli: Cli,
  fn: (s: Awaited<ReturnType<typeof openServices>>) => Promise<T>,
): Promise<T> {
  const services = await openServices(cli.config(), {
    onAuditError: (err, lost) =>
      cli.err(
        `Audit log write failed (${lost.length} events lost): ${err instanceof Error ? err.message : err}`,
      ),
  })
  try {
    return await fn(services)
  } finally {
    // What the command recorded is written before the database closes.
    await services.close()
  }
}

/**
 * Runs an admin action on the user `username`; false (no such user) is exit 1 with a message,
 * true prints `done`.
 */
async function onUser(
  cli: Cli,
  username: string,
  action: (s: Awaited<ReturnType<typeof openServices>>) => Promise<boolean>,
  done: string,
): Promise<void> {
  if (!(await withServices(cli, action))) {
    cli.err(`No user named ${username}.`)
    cli.exitCode = 1
    return
  }
  cli.out(done)
}

// The migration that creates the audit log: undoing it (or one before it) leaves no log to write to.
const AUDIT_LOG_MIGRATION = '2026_11_28_004_audit_log'

/**
 * The program for one run; commander keeps parsed options on it, so each run builds its own. Each
 * command is declared in full in commander's builder style (name, description, arguments, action),
 * so commands read alike; what they share is in the helpers above.
 */
export function buildProgram(cli: Cli): Command {
  const { io } = cli
  const program = new Command('authgate')
    .description(
      'AuthGate: sign-up, OAuth2 password login and JWTs, compatible with the FastAPI tutorial app.',
    )
    .version(version, '-v, --version', 'print the version')
    // Inherited by every command added below: output to this run's streams, errors as exit codes.
    .configureOutput({
      writeOut: (text) => io.stdout.write(text),
      writeErr: (text) => io.stderr.write(text),
    })
    .exitOverride()
    .showHelpAfterError()

  program
    .command('serve')
    .description('Start the HTTP server (PORT, HOST, DATABASE_URL, WORKERS... from the environment or .env).')
    .action(async () => {
      const c = cli.config()
      if (c.workers > 1) await serveCluster(c)
      else await serve(c)
    })

  program
    .command('migrate')
    .description('Apply pending database migrations (the server also does this at start).')
    .option('--down', 'undo the most recent migration instead')
    .action(async (options: { down?: boolean }) => {
      const config = cli.config()
      const db = openDatabase(config)
      try {
        // The same bounded wait and by-name failure as `serve` (DATABASE_WAIT_SECONDS).
        await connectDatabase(db, config.databaseUrl, {
          waitMs: config.databaseWaitSeconds * 1000,
          onRetry: ({ attempt, giveUpInMs }) =>
            cli.err(
              `database not reachable yet (attempt ${attempt}): retrying for ${Math.ceil(giveUpInMs / 1000)} s more`,
            ),
        })
        const results = options.down ? await migrateDown(db) : await migrateToLatest(db)
        cli.out(results.length > 0 ? results.join('\n') : 'Nothing to migrate.')
        const last = /^\S+ (\S+):/.exec(results.at(-1) ?? '')?.[1]
        if (last === undefined || (options.down && last <= AUDIT_LOG_MIGRATION)) return
        const audit = openAudit(db, config, undefined, (err) =>
          cli.err(`Audit log write failed: ${err instanceof Error ? err.message : err}`),
        )
        audit.record({
          type: 'database.migrated',
          outcome: 'success',
          detail: {
            ...operatorDetail(cli.operator()),
            direction: options.down ? 'down' : 'up',
            count: results.length,
            last,
          },
        })
        await audit.flush()
      } finally {
        await db.destroy()
      }
    })

  const user = program.command('user').description('Manage users.')

  user
    .command('create')
    .description(
      'Create a user. The password is read without echo from the terminal (asked twice), or from stdin: ' +
        'one line, optionally repeated on a second; never argv.',
    )
    .argument('<username>')
    .action(async (username: string) => {
      const password = await readPassword(io.stdin, io.stderr)
      const created = await withServices(cli, (s) => s.account.createUser(cli.operator(), username, password))
      cli.out(`Created user ${created.username} with ID ${created.id}.`)
    })

  user
    .command('set-password')
    .description("Reset a user's password; read like `user create`. The policy applies; every session ends.")
    .argument('<username>')
    .action(async (username: string) => {
      const password = await readPassword(io.stdin, io.stderr)
      await onUser(
        cli,
        username,
        (s) => s.account.resetPassword(cli.operator(), username, password),
        `Password set for ${username}.`,
      )
    })

  user
    .command('list')
    .description('List users: id, username, created, password hash scheme (never the hash).')
    .option('--json', 'print JSON lines')
    .action(async (options: { json?: boolean }) => {
      const users = await withServices(cli, (s) => s.users.list())
      if (users.length === 0) cli.err('No users yet.')
      else if (!options.json) cli.out(['id', 'username', 'created_at', 'hash_scheme'].join('\t'))
      for (const u of users) {
        cli.out(
          options.json
            ? JSON.stringify(snakeCase(u))
            : `${u.id}\t${u.username}\t${u.createdAt ?? '-'}\t${u.hashScheme}`,
        )
      }
    })

  user
    .command('delete')
    .description(
      'Delete a user by name (exact, or canonical); every session ends, and the id is never reused.',
    )
    .argument('<username>')
    .action(async (username: string) => {
      await onUser(
        cli,
        username,
        (s) => s.account.removeUser(cli.operator(), username),
        `Deleted user ${username}.`,
      )
    })

  user
    .command('unlock')
    .description(
      "Lift the login throttle on a user: the failed logins counted against the account's name and its " +
        'devices are forgotten, so the right password logs in at once (per-address limits stay). ' +
        'Give it the servers’ REDIS_URL when they keep their counters in Redis.',
    )
    .argument('<username>')
    .action(async (username: string) => {
      await onUser(
        cli,
        username,
        (s) => s.account.unlockUser(cli.operator(), username),
        `Unlocked ${username}: its failed logins are forgotten.`,
      )
    })

  user
    .command('show')
    .description(
      "Show a user and their sign-in factors: the password's hash scheme, TOTP (enabled, pending or " +
        'off) and how many recovery codes are left; never a hash, a secret or a code.',
    )
    .argument('<username>')
    .option('--json', 'print one JSON object')
    .action(async (username: string, options: { json?: boolean }) => {
      const shown = await withServices(cli, async (s) => {
        const found = await s.users.find(username)
        if (!found) return undefined
        const summary = (await s.users.list()).find((u) => u.id === found.id)
        return { ...summary, mfa: await s.mfa.status(found.id) }
      })
      if (!shown?.id) {
        cli.err(`No user named ${username}.`)
        cli.exitCode = 1
        return
      }
      const facts = {
        id: shown.id,
        username: shown.username,
        created_at: shown.createdAt ?? null,
        hash_scheme: shown.hashScheme,
        totp: shown.mfa.totp,
        recovery_codes_left: shown.mfa.recoveryCodesLeft,
      }
      if (options.json) cli.out(JSON.stringify(facts))
      else for (const [key, value] of Object.entries(facts)) cli.out(`${key}\t${value ?? '-'}`)
    })

  user
    .command('mfa-reset')
    .description(
      "Remove a user's second factor (TOTP and recovery codes), for a user who lost both: the password " +
        'alone signs in again. Every session of the user ends. Audited.',
    )
    .argument('<username>')
    .action(async (username: string) => {
      const reset = await withServices(cli, (s) => s.mfa.resetByOperator(cli.operator(), username))
      if (!reset) {
        cli.err(`No user named ${username}.`)
        cli.exitCode = 1
        return
      }
      const ended = `${reset.endedSessions} session${reset.endedSessions === 1 ? '' : 's'} ended`
      cli.out(
        reset.removed
          ? `Removed the second factor of ${reset.user.username}; ${ended}.`
          : `${reset.user.username} had no second factor; ${ended}.`,
      )
    })

  registerAuditCommands(program, cli)
  registerKeyCommands(program, cli)
  registerClientCommands(program, cli)

  const help = environmentHelp()
  const withHelp = (command: Command) => {
    command.addHelpText('after', help)
    for (const sub of command.commands) withHelp(sub)
  }
  withHelp(program)
  return program
}

/** Runs `authgate <argv>` (arguments only, no node or script path); resolves to the exit code. */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  let operator = io.operator
  let envLoaded = false
  const cli: Cli = {
    io,
    config() {
      if (!envLoaded) {
        envLoaded = true
        io.loadDotEnv?.()
      }
      return loadConfig(io.env)
    },
    out: (line) => void io.stdout.write(`${line}\n`),
    err: (line) => void io.stderr.write(`${line}\n`),
    operator() {
      operator ??= { actor: 'cli', osUser: osUser(io.env) }
      return operator
    },
    exitCode: 0,
  }
  try {
    await buildProgram(cli).parseAsync(argv, { from: 'user' })
    return cli.exitCode
  } catch (err) {
    // Commander has written its own message (or the help, or the version) already.
    if (err instanceof CommanderError) return err.exitCode
    if (err instanceof ConfigError) cli.err(`Configuration error: ${err.message}`)
    else if (err instanceof ValidationError) cli.err(`Invalid: ${err.message}`)
    else if (err instanceof DomainError) cli.err(err.detail)
    else if (err instanceof PasswordInputError) cli.err(`Password refused: ${err.message}`)
    else cli.err(err instanceof Error ? err.message : String(err))
    return 1
  }
}
