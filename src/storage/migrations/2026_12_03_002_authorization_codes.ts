// Authorization codes (issue 12 item 2; RFC 6749 §4.1, RFC 7636, OpenID Connect Core 1.0 §3.1.2):
// one row per code, keyed by the code's SHA-256 (the code itself is never stored), with what the
// code is bound to and what its single use did. Times are epoch milliseconds.
import { type Kysely, sql } from 'kysely'

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('authgate_authorization_codes')
    // SHA-256 of the code, hex: a leaked table (or backup) yields no usable code.
    .addColumn('code_hash', 'text', (c) => c.primaryKey())
    // Deleting the client or the user takes their pending codes with them.
    .addColumn('client_id', 'text', (c) =>
      c.notNull().references('authgate_oauth_clients.client_id').onDelete('cascade'),
    )
    .addColumn('user_id', 'integer', (c) => c.notNull().references('users.id').onDelete('cascade'))
    // As the authorization request sent it: the token request must send the same string.
    .addColumn('redirect_uri', 'text', (c) => c.notNull())
    // Space-separated scope tokens, as granted.
    .addColumn('scope', 'text', (c) => c.notNull())
    // BASE64URL(SHA-256(code_verifier)): S256 is the only method, so no method column.
    .addColumn('code_challenge', 'text', (c) => c.notNull())
    .addColumn('nonce', 'text')
    // When the user last authenticated (OIDC Core §2 auth_time), and how: a JSON array of amr values.
    .addColumn('auth_time', 'bigint', (c) => c.notNull())
    .addColumn('amr', 'text', (c) => c.notNull())
    // The browser (SSO) session that authenticated the user; its table comes with a later item.
    .addColumn('browser_session_id', 'text')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    // Set by the first redemption, whatever its outcome (the compare-and-swap that makes it single use).
    .addColumn('consumed_at', 'bigint')
    // The refresh-token session the exchange created: what a replay revokes (RFC 6749 §4.1.2).
    // No foreign key: sessions are another module's, and revoking a session already gone is a no-op.
    .addColumn('issued_session_id', 'text')
    // Set by the first replay: an exchange that records its session after a replay revokes it itself.
    .addColumn('replayed_at', 'bigint')
    .execute()
  await sql`CREATE INDEX authgate_authorization_codes_expires_at ON authgate_authorization_codes (expires_at)`.execute(
    db,
  )
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('authgate_authorization_codes').execute()
}
