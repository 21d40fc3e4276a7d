// `authgate audit verify | export | prune`: check the hash chain, write entries as JSON lines, apply retention.
import { type Command, InvalidArgumentError } from 'commander'
import type { Config } from '../config.js'
import { operatorDetail } from '../domain/audit.js'
import type { AuditEntry } from '../domain/audit-chain.js'
import type { AuditFilter, AuditService } from '../domain/audit-writer.js'
import { findUserByName } from '../domain/users.js'
import { openAudit, openDatabase } from '../services.js'
import type { Db } from '../storage/database.js'
import { migrateToLatest } from '../storage/migrate.js'
import { createUsersRepository } from '../storage/users.repository.js'
import { type Cli, snakeCase } from './context.js'

// Only the database and the audit log: verifying (say, a copy taken for an investigation) should
// not also claim usernames or generate keys the way opening every service does.
async function withAudit<T>(config: Config, fn: (audit: AuditService, db: Db) => Promise<T>): Promise<T> {
  const db = openDatabase(config)
  try {
    await migrateToLatest(db)
    return await fn(openAudit(db, config), db)
  } finally {
    await db.destroy()
  }
}

function isoTime(flag: string) {
  return (value: string): number => {
    const ms = Date.parse(value)
    if (Number.isNaN(ms)) throw new InvalidArgumentError(`${flag}: expected an ISO 8601 date or time`)
    return ms
  }
}

/** A user id (digits), or a name: the user's own entries and those naming it as typed or registered. */
async function userFilter(db: Db, user: string): Promise<Pick<AuditFilter, 'userId' | 'usernames'>> {
  if (/^\d+$/.test(user)) return { userId: Number(user) }
  // Reading only: an export claims no canonical names (UserService.find would).
  const found = await findUserByName(createUsersRepository(db), user)
  if (!found) return { usernames: [user] }
  return { userId: found.id, usernames: [...new Set([user, found.username])] }
}

function exportLine(e: AuditEntry): string {
  // The entry's fields in its order, snake_case as the table spells them; `detail` as recorded
  // and hashed (its own keys are not renamed).
  return JSON.stringify(
    snakeCase({
      ...e,
      at: new Date(e.at).toISOString(),
      detail: e.detail === null ? null : JSON.parse(e.detail),
    }),
  )
}

export function registerAuditCommands(program: Command, cli: Cli): void {
  const audit = program.command('audit').description('Check, export and prune the audit log.')

  audit
    .command('verify')
    .description(
      'Check the hash chain from the oldest remaining entry; name the first broken link and exit 1 if any.',
    )
    .action(async () => {
      const report = await withAudit(cli.config(), (a) => a.verify())
      if (!report.ok) {
        cli.err(`Audit log BROKEN at ${report.broken.message}.`)
        cli.err(`${report.count} entries before it check out.`)
        cli.exitCode = 1
        return
      }
      if (!report.head || !report.first) {
        cli.out('OK: the audit log is empty.')
        return
      }
      const pruned = report.first.seq > 1 ? ` (entries before seq ${report.first.seq} were pruned)` : ''
      cli.out(
        `OK: ${report.count} entries, seq ${report.first.seq} to ${report.head.seq}${pruned}; head hash ${report.head.hash}`,
      )
    })

  audit
    .command('export')
    .description('Write entries as JSON lines to stdout, oldest first.')
    .option('--since <iso>', 'entries at or after this time (ISO 8601)', isoTime('--since'))
    .option('--until <iso>', 'entries before this time (ISO 8601)', isoTime('--until'))
    .option('--user <id or name>', "a user's entries: digits are an id; a name also matches login attempts")
    .action(async (options: { since?: number; until?: number; user?: string }) => {
      await withAudit(cli.config(), async (a, db) => {
        const filter: AuditFilter = {
          since: options.since,
          until: options.until,
          ...(options.user === undefined ? {} : await userFilter(db, options.user)),
        }
        let lines: string[] = []
        await a.export(filter, (entry) => {
          lines.push(exportLine(entry))
          if (lines.length >= 1000) {
            cli.io.stdout.write(`${lines.join('\n')}\n`)
            lines = []
          }
        })
        if (lines.length > 0) cli.io.stdout.write(`${lines.join('\n')}\n`)
      })
    })

  audit
    .command('prune')
    .description('Delete entries older than AUDIT_RETENTION_DAYS (the server also does this hourly).')
    .action(async () => {
      const cfg = cli.config()
      if (cfg.auditRetentionDays === 0) {
        cli.out('AUDIT_RETENTION_DAYS=0: entries are kept forever; nothing pruned.')
        return
      }
      const removed = await withAudit(cfg, async (a) => {
        const count = await a.prune()
        // A change to the log is itself logged (not a prune that removed nothing).
        if (count > 0) {
          a.record({
            type: 'audit.pruned',
            outcome: 'success',
            detail: { ...operatorDetail(cli.operator()), count, retentionDays: cfg.auditRetentionDays },
          })
          await a.flush()
        }
        return count
      })
      cli.out(`Pruned ${removed} entries older than ${cfg.auditRetentionDays} days.`)
    })
}
