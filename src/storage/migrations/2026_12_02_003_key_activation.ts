// Issue 10 item 2: a rotated-in key is published before it signs. `activates_at` is when a key
// starts signing (NULL on keys made before: since created_at); `retired_at` may now lie in the
// future (when the next key takes over). `revoked_at`: `keys rotate --now` stopped trusting the
// key at once (a compromised key), so its tokens no longer verify.
import type { Kysely } from 'kysely'

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('authgate_signing_keys').addColumn('activates_at', 'bigint').execute()
  await db.schema.alterTable('authgate_signing_keys').addColumn('revoked_at', 'bigint').execute()
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('authgate_signing_keys').dropColumn('revoked_at').execute()
  await db.schema.alterTable('authgate_signing_keys').dropColumn('activates_at').execute()
}
