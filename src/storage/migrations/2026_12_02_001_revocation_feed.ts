// The revocation feed records, on PostgreSQL, which transaction wrote each row, so readers can
// tell which rows have settled (storage/sessions.repository.ts, createRevocationFeed). SQLite needs
// nothing: its writers are serialised, so seq order is already commit order.
import { type Kysely, sql } from 'kysely'
import { dialectOf } from '../database.js'

export async function up(db: Kysely<unknown>): Promise<void> {
  if (dialectOf(db) !== 'postgres') return
  // Rows already there get this migration's transaction id: they are settled before any reader
  // of the new feed takes its first mark. Every later insert, from any writer, gets its own.
  await sql`ALTER TABLE authgate_revocations ADD COLUMN xid xid8 NOT NULL DEFAULT pg_current_xact_id()`.execute(
    db,
  )
  await sql`CREATE INDEX authgate_revocations_xid ON authgate_revocations (xid)`.execute(db)
}

export async function down(db: Kysely<unknown>): Promise<void> {
  if (dialectOf(db) !== 'postgres') return
  await sql`DROP INDEX authgate_revocations_xid`.execute(db)
  await sql`ALTER TABLE authgate_revocations DROP COLUMN xid`.execute(db)
}
