// Sessions, their refresh tokens (stored only as SHA-256 hashes), and the revocation feed that
// every process polls to keep its in-memory view of revoked sessions current.
import { type Kysely, sql } from 'kysely'
import { dialectOf } from '../database.js'

export async function up(db: Kysely<unknown>): Promise<void> {
  const postgres = dialectOf(db) === 'postgres'
  await db.schema
    .createTable('authgate_sessions')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('user_id', 'integer', (c) => c.notNull().references('users.id').onDelete('cascade'))
    // Times are epoch milliseconds.
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('last_used_at', 'bigint', (c) => c.notNull())
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .addColumn('user_agent', 'text')
    .addColumn('ip', 'text')
    .addColumn('revoked_at', 'bigint')
    .addColumn('revoked_reason', 'text')
    .execute()
  await db.schema.createIndex('authgate_sessions_user_id').on('authgate_sessions').column('user_id').execute()

  await db.schema
    .createTable('authgate_refresh_tokens')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('session_id', 'text', (c) =>
      c.notNull().references('authgate_sessions.id').onDelete('cascade'),
    )
    .addColumn('token_hash', 'text', (c) => c.notNull().unique())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .addColumn('spent_at', 'bigint')
    // The pair that replaced this token, encrypted under a key derived from this token itself, so
    // only its holder can read it back during the grace window.
    .addColumn('successor', 'text')
    .execute()
  await db.schema
    .createIndex('authgate_refresh_tokens_session_id')
    .on('authgate_refresh_tokens')
    .column('session_id')
    .execute()

  await db.schema
    .createTable('authgate_revocations')
    // SQLite AUTOINCREMENT; PostgreSQL has no such keyword, an identity column does the same.
    .addColumn('seq', 'integer', (c) =>
      postgres ? c.primaryKey().generatedByDefaultAsIdentity() : c.primaryKey().autoIncrement(),
    )
    // 'session': every token carrying this sid; 'user': tokens without a sid issued before `at`.
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('subject', 'text', (c) => c.notNull())
    .addColumn('at', 'bigint', (c) => c.notNull())
    // After this, no access token it could affect is still valid: the row can be pruned.
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .execute()
  await sql`CREATE INDEX authgate_revocations_expires_at ON authgate_revocations (expires_at)`.execute(db)
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('authgate_revocations').execute()
  await db.schema.dropTable('authgate_refresh_tokens').execute()
  await db.schema.dropTable('authgate_sessions').execute()
}
