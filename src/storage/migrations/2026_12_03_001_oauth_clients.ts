// The OAuth 2.0 / OpenID Connect client registry (issue 12 item 1). Named like every AuthGate
// table (authgate_...), since the database may be shared with the seed app. Lists are JSON arrays
// in text columns and flags are 0/1 integers: one code path, the same on SQLite and PostgreSQL.
import { type Kysely, sql } from 'kysely'

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('authgate_oauth_clients')
    // 128 random bits, hex: not a secret, but never guessable or reused (domain/clients.ts).
    .addColumn('client_id', 'text', (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => c.notNull())
    // SHA-256 of the secret, hex; NULL for a public client, which has none (PKCE is its proof).
    .addColumn('secret_hash', 'text')
    .addColumn('public', 'integer', (c) => c.notNull())
    // First-party clients skip the consent page.
    .addColumn('first_party', 'integer', (c) => c.notNull())
    // JSON arrays of strings; compared exactly, never as prefixes or patterns.
    .addColumn('redirect_uris', 'text', (c) => c.notNull())
    .addColumn('post_logout_redirect_uris', 'text', (c) => c.notNull())
    .addColumn('grant_types', 'text', (c) => c.notNull())
    .addColumn('scopes', 'text', (c) => c.notNull())
    // Epoch milliseconds.
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('secret_rotated_at', 'bigint')
    // A confidential client always has a secret, a public one never: whatever writes the row.
    .addCheckConstraint(
      'authgate_oauth_clients_secret_iff_confidential',
      sql`("public" = 1 AND secret_hash IS NULL) OR ("public" = 0 AND secret_hash IS NOT NULL)`,
    )
    .execute()
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('authgate_oauth_clients').execute()
}
