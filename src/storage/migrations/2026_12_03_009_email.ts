// Email (issue 13 item 3): one address per user, optional, unique among verified addresses after
// normalisation; and the single-use links sent to it (verification, password reset), stored as
// SHA-256 only. Times are epoch milliseconds.
import { type Kysely, sql } from 'kysely'

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('authgate_emails')
    .addColumn('user_id', 'integer', (c) => c.primaryKey().references('users.id').onDelete('cascade'))
    // As the user typed it, and the form it is compared in (domain/email.ts normalizeEmail).
    .addColumn('email', 'text', (c) => c.notNull())
    .addColumn('email_normalized', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('verified_at', 'bigint')
    .execute()
  // Two accounts may have typed one address; only one may have it verified.
  await db.schema
    .createIndex('authgate_emails_verified_unique')
    .on('authgate_emails')
    .column('email_normalized')
    .unique()
    .where(sql.ref('verified_at'), 'is not', null)
    .execute()
  await db.schema
    .createTable('authgate_email_tokens')
    // SHA-256 of the link's token, hex.
    .addColumn('token_hash', 'text', (c) => c.primaryKey())
    .addColumn('user_id', 'integer', (c) => c.notNull().references('users.id').onDelete('cascade'))
    // 'verify' or 'reset'.
    .addColumn('purpose', 'text', (c) => c.notNull())
    // The address a verification link was sent to (a later change of address voids it).
    .addColumn('email_normalized', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .addColumn('consumed_at', 'bigint')
    .execute()
  await db.schema
    .createIndex('authgate_email_tokens_expires_at')
    .on('authgate_email_tokens')
    .column('expires_at')
    .execute()
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('authgate_email_tokens').execute()
  await db.schema.dropTable('authgate_emails').execute()
}
