// Remembered consents (issue 12 items 3 and 6): a user's "allow" on the consent page for one
// client, with the scopes it covers, so the next authorization request for those scopes goes
// through without asking again; withdrawn with DELETE /auth/consents/{client_id}. One row per
// user and client; times are epoch milliseconds.
import type { Kysely } from 'kysely'

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('authgate_consents')
    // Deleting the user or the client takes the consent with it.
    .addColumn('user_id', 'integer', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('client_id', 'text', (c) =>
      c.notNull().references('authgate_oauth_clients.client_id').onDelete('cascade'),
    )
    // A JSON array of scope tokens: every scope the user allowed this client, so far.
    .addColumn('scopes', 'text', (c) => c.notNull())
    // The last "allow".
    .addColumn('granted_at', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('authgate_consents_pk', ['user_id', 'client_id'])
    .execute()
  // The primary key serves a user's own lookups; a client's deletion cascades through this one.
  await db.schema
    .createIndex('authgate_consents_client_id')
    .on('authgate_consents')
    .column('client_id')
    .execute()
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('authgate_consents').execute()
}
