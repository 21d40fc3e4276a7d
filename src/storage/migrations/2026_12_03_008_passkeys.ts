// Passkeys (issue 13 item 2, WebAuthn Level 3): each user's registered credentials, with the
// public key and the signature counter the clone check compares against, and the challenges the
// options endpoints hand out, each spent once. Times are epoch milliseconds.
import type { Kysely } from 'kysely'

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('authgate_webauthn_credentials')
    // The credential ID, base64url, as the authenticator made it (WebAuthn §6.1: at most 1023 bytes).
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('user_id', 'integer', (c) => c.notNull().references('users.id').onDelete('cascade'))
    // The COSE public key, base64url. Public: a dump of it signs nothing.
    .addColumn('public_key', 'text', (c) => c.notNull())
    // The last signature counter seen (WebAuthn §6.1.1); 0 for authenticators that keep none.
    .addColumn('counter', 'bigint', (c) => c.notNull())
    // A JSON array of transports ("internal", "hybrid", "usb"...), handed back as hints.
    .addColumn('transports', 'text', (c) => c.notNull())
    // 'singleDevice' or 'multiDevice' (a synced passkey), and whether it is backed up now.
    .addColumn('device_type', 'text', (c) => c.notNull())
    .addColumn('backed_up', 'integer', (c) => c.notNull())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('last_used_at', 'bigint')
    .execute()
  await db.schema
    .createIndex('authgate_webauthn_credentials_user_id')
    .on('authgate_webauthn_credentials')
    .column('user_id')
    .execute()
  await db.schema
    .createTable('authgate_webauthn_challenges')
    // The challenge, base64url: random, handed to the client, signed back by the authenticator.
    .addColumn('challenge', 'text', (c) => c.primaryKey())
    // 'register' (for this user) or 'login' (anyone's passkey: NULL).
    .addColumn('purpose', 'text', (c) => c.notNull())
    .addColumn('user_id', 'integer', (c) => c.references('users.id').onDelete('cascade'))
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .addColumn('consumed_at', 'bigint')
    .execute()
  await db.schema
    .createIndex('authgate_webauthn_challenges_expires_at')
    .on('authgate_webauthn_challenges')
    .column('expires_at')
    .execute()
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('authgate_webauthn_challenges').execute()
  await db.schema.dropTable('authgate_webauthn_credentials').execute()
}
