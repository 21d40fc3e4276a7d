#!/usr/bin/env node
// `authgate`: one binary that serves, migrates and administers users.
import './v8-flags.js'
import { Command } from 'commander'
import { serveCluster } from '../cluster.js'
import { type Config, ConfigError, loadConfig, loadDotEnv } from '../config.js'
import { DomainError, ValidationError } from '../domain/errors.js'
import { serve } from '../server.js'
import { openDatabase, openServices } from '../services.js'
import { migrateDown, migrateToLatest } from '../storage/migrate.js'
import { registerAuditCommands } from './audit.js'
import { registerKeyCommands } from './keys.js'
import { readPassword } from './prompt.js'

function config(): Config {
  loadDotEnv()
  return loadConfig(process.env)
}

async function withServices<T>(fn: (s: Awaited<ReturnType<typeof openServices>>) => Promise<T>): Promise<T> {
  const services = await openServices(config(), {
    onAuditError: (err, lost) =>
      console.error(
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

const program = new Command('authgate')
  .description('AuthGate: sign-up, OAuth2 password login and JWTs, compatible with the FastAPI tutorial app.')
  .showHelpAfterError()

program
  .command('serve')
  .description('Start the HTTP server (PORT, HOST, DATABASE_URL, WORKERS... from the environment or .env).')
  .action(async () => {
    const c = config()
    if (c.workers > 1) await serveCluster(c)
    else await serve(c)
  })

program
  .command('migrate')
  .description('Apply pending database migrations (the server also does this at start).')
  .option('--down', 'undo the most recent migration instead')
  .action(async (options: { down?: boolean }) => {
    const db = openDatabase(config())
    try {
      const results = options.down ? await migrateDown(db) : await migrateToLatest(db)
      console.log(results.length > 0 ? results.join('\n') : 'Nothing to migrate.')
    } finally {
      await db.destroy()
    }
  })

const user = program.command('user').description('Manage users.')

user
  .command('create')
  .description(
    'Create a user. The password is read without echo from the terminal, or from stdin; never argv.',
  )
  .argument('<username>')
  .action(async (username: string) => {
    const password = await readPassword()
    const created = await withServices((s) => s.users.register(username, password))
    console.log(`Created user ${created.username} with ID ${created.id}.`)
  })

user
  .command('set-password')
  .description("Reset a user's password; read like `user create`. The policy applies; every session ends.")
  .argument('<username>')
  .action(async (username: string) => {
    const password = await readPassword()
    if (!(await withServices((s) => s.account.resetPassword(username, password)))) {
      console.error(`No user named ${username}.`)
      process.exitCode = 1
      return
    }
    console.log(`Password set for ${username}.`)
  })

user
  .command('list')
  .description('List users: id, username, created, password hash scheme (never the hash).')
  .option('--json', 'print JSON lines')
  .action(async (options: { json?: boolean }) => {
    const users = await withServices((s) => s.users.list())
    for (const u of users) {
      console.log(
        options.json ? JSON.stringify(u) : `${u.id}\t${u.username}\t${u.createdAt ?? '-'}\t${u.hashScheme}`,
      )
    }
  })

user
  .command('delete')
  .description('Delete a user by name (exact, or canonical); every session ends, and the id is never reused.')
  .argument('<username>')
  .action(async (username: string) => {
    if (!(await withServices((s) => s.account.removeUser(username)))) {
      console.error(`No user named ${username}.`)
      process.exitCode = 1
      return
    }
    console.log(`Deleted user ${username}.`)
  })

registerAuditCommands(program, config)
registerKeyCommands(program, config)

program.parseAsync(process.argv).catch((err: unknown) => {
  if (err instanceof ConfigError) console.error(`Configuration error: ${err.message}`)
  else if (err instanceof ValidationError) console.error(`Invalid: ${err.message}`)
  else if (err instanceof DomainError) console.error(err.detail)
  else console.error(err instanceof Error ? err.message : err)
  process.exitCode = 1
})
