// Throttling counters, in the database so every process on it shares them.
import type { Kysely } from 'kysely'

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('authgate_throttle')
    // e.g. `login-ip:203.0.113.7`, `login-account:alice`, `login-device:<nonce>`.
    .addColumn('key', 'text', (c) => c.primaryKey())
    .addColumn('window_start', 'bigint', (c) => c.notNull())
    .addColumn('count', 'integer', (c) => c.notNull())
    .execute()
  await db.schema
    .createIndex('authgate_throttle_window_start')
    .on('authgate_throttle')
    .column('window_start')
    .execute()
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('authgate_throttle').execute()
}
