// The audit log: one row per authentication event, hash-chained (domain/audit-chain.ts) so an
// edited, deleted or reordered row is detectable. Never a password, token or hash of one.
import type { Kysely } from 'kysely'
import { dialectOf } from '../database.js'

export async function up(db: Kysely<unknown>): Promise<void> {
  const postgres = dialectOf(db) === 'postgres'
  await db.schema
    .createTable('authgate_audit_log')
    // AUTOINCREMENT: a seq is never reused, even after the newest rows are deleted. PostgreSQL: an
    // identity column, whose sequence never goes back either.
    .addColumn('seq', 'integer', (c) =>
      postgres ? c.primaryKey().generatedByDefaultAsIdentity() : c.primaryKey().autoIncrement(),
    )
    // Epoch milliseconds, when the event happened.
    .addColumn('at', 'bigint', (c) => c.notNull())
    .addColumn('type', 'text', (c) => c.notNull())
    .addColumn('outcome', 'text', (c) => c.notNull())
    // No foreign key on purpose: entries outlive the users they mention (account.deleted above all).
    .addColumn('user_id', 'integer')
    .addColumn('username', 'text')
    .addColumn('ip', 'text')
    .addColumn('user_agent', 'text')
    // Canonical JSON text (sorted keys), hashed exactly as stored.
    .addColumn('detail', 'text')
    .addColumn('prev_hash', 'text', (c) => c.notNull())
    .addColumn('hash', 'text', (c) => c.notNull())
    // Two entries can never claim the same predecessor: whatever a writer gets wrong about
    // locking, the chain cannot fork (the losing insert fails and is retried on the new head).
    .addUniqueConstraint('authgate_audit_log_prev_hash_key', ['prev_hash'])
    .execute()
  // Retention prunes and `audit export --since/--until` by time; `--user` by id.
  await db.schema.createIndex('authgate_audit_log_at').on('authgate_audit_log').column('at').execute()
  await db.schema
    .createIndex('authgate_audit_log_user_id')
    .on('authgate_audit_log')
    .column('user_id')
    .execute()
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('authgate_audit_log').execute()
}
