// Multi-factor authentication (issue 13 item 1): each user's TOTP secret, sealed under
// MFA_ENCRYPTION_KEY (never stored in the clear, and the key is not in the database); the
// recovery codes, as SHA-256 only; and the mfa_tokens a password grant hands out while the second
// factor is pending. Times are epoch milliseconds.
import type { Kysely } from 'kysely'

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('authgate_totp')
    // One authenticator per user; deleting the user takes it with them.
    .addColumn('user_id', 'integer', (c) => c.primaryKey().references('users.id').onDelete('cascade'))
    // `<key id>.<AES-256-GCM of the base32 secret>`, bound to the user id (domain/mfa.ts).
    .addColumn('secret', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    // NULL until the first code from the app confirms the enrolment; only then is it enforced.
    .addColumn('confirmed_at', 'bigint')
    // The RFC 6238 time step of the last code accepted: a code is accepted once, never an older one.
    .addColumn('last_step', 'bigint')
    .execute()
  await db.schema
    .createTable('authgate_recovery_codes')
    .addColumn('user_id', 'integer', (c) => c.notNull().references('users.id').onDelete('cascade'))
    // SHA-256 of the normalised code, hex.
    .addColumn('code_hash', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    // Set once, when the code is burnt.
    .addColumn('used_at', 'bigint')
    .addPrimaryKeyConstraint('authgate_recovery_codes_pk', ['user_id', 'code_hash'])
    .execute()
  await db.schema
    .createTable('authgate_mfa_challenges')
    // SHA-256 of the mfa_token, hex; the token itself is never stored.
    .addColumn('token_hash', 'text', (c) => c.primaryKey())
    .addColumn('user_id', 'integer', (c) => c.notNull().references('users.id').onDelete('cascade'))
    // The credential epoch the password was verified at: a password change meanwhile voids it.
    .addColumn('epoch', 'integer', (c) => c.notNull())
    // What the token is bound to besides the user: the OAuth client that asked (NULL: the
    // first-party password grant), and where it is to be spent ('token' endpoint or 'page').
    .addColumn('client_id', 'text')
    .addColumn('channel', 'text', (c) => c.notNull())
    // The trusted device cookie's nonce the password step came with, if any (domain/throttle.ts).
    .addColumn('device', 'text')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    // Set once, by the grant that completed the sign-in.
    .addColumn('consumed_at', 'bigint')
    .execute()
  await db.schema
    .createIndex('authgate_mfa_challenges_expires_at')
    .on('authgate_mfa_challenges')
    .column('expires_at')
    .execute()
  await db.schema
    .createIndex('authgate_mfa_challenges_user_id')
    .on('authgate_mfa_challenges')
    .column('user_id')
    .execute()
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('authgate_mfa_challenges').execute()
  await db.schema.dropTable('authgate_recovery_codes').execute()
  await db.schema.dropTable('authgate_totp').execute()
}
