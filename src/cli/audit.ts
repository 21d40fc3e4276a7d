// `authgate audit verify | export | prune`: check the hash chain, write entries as JSON lines, apply retention.
import { type Command, InvalidArgumentError } from 'commander'
import type { Config } from '../config.js'
import type { AuditEntry } from '../domain/audit-chain.js'
import type { AuditFilter, AuditService } from '../domain/audit-writer.js'
import { canonicalUsername } from '../domain/usernames.js'
import { openAudit, openDatabase } from '../services.js'
import type { Db } from '../storage/database.js'
import { migrateToLatest } from '../storage/migrate.js'
import { findUserByCanonicalName, findUserByUsername } from '../storage/users.repository.js'

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
  const canonical = canonicalUsername(user)
  const found =
    (await findUserByUsername(db, user)) ??
    (canonical.ok ? await findUserByCanonicalName(db, canonical.canonical) : undefined)
  if (!found) return { usernames: [user] }
  return { userId: found.id, usernames: [...new Set([user, found.username])] }
}

function exportLine(e: AuditEntry): string {
  return JSON.stringify({
    seq: e.seq,
    at: new Date(e.at).toISOString(),
    type: e.type,
    outcome: e.outcome,
    userId: e.userId,
    username: e.username,
    ip: e.ip,
    userAgent: e.userAgent,
    detail: e.detail === null ? null : JSON.parse(e.detail),
    prevHash: e.prevHash,
    hash: e.hash,
  })
}

export function registerAuditCommands(program: Command, config: () => Config): void {
  const audit = program.command('audit').description('Check, export and prune the audit log.')

  audit
    .command('verify')
    .description(
      'Check the hash chain from the oldest remaining entry; name the first broken link and exit 1 if any.',
    )
    .action(async () => {
      const report = await withAudit(config(), (a) => a.verify())
      if (!report.ok) {
        console.error(`Audit log BROKEN at ${report.broken.message}.`)
        console.error(`${report.count} entries before it check out.`)
        process.exitCode = 1
        return
      }
      if (!report.head || !report.first) {
        console.log('OK: the audit log is empty.')
        return
      }
      const pruned = report.first.seq > 1 ? ` (entries before seq ${report.first.seq} were pruned)` : ''
      console.log(
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
      await withAudit(config(), async (a, db) => {
        const filter: AuditFilter = {
          since: options.since,
          until: options.until,
          ...(options.user === undefined ? {} : await userFilter(db, options.user)),
        }
        let lines: string[] = []
        await a.export(filter, (entry) => {
          lines.push(exportLine(entry))
          if (lines.length >= 1000) {
            process.stdout.write(`${lines.join('\n')}\n`)
            lines = []
          }
        })
        if (lines.length > 0) process.stdout.write(`${lines.join('\n')}\n`)
      })
    })

  audit
    .command('prune')
    .description('Delete entries older than AUDIT_RETENTION_DAYS (the server also does this hourly).')
    .action(async () => {
      const cfg = config()
      if (cfg.auditRetentionDays === 0) {
        console.log('AUDIT_RETENTION_DAYS=0: entries are kept forever; nothing pruned.')
        return
      }
      const removed = await withAudit(cfg, (a) => a.prune())
      console.log(`Pruned ${removed} entries older than ${cfg.auditRetentionDays} days.`)
    })
}
