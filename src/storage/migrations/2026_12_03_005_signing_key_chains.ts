// Issue 12 item 4: a second chain of signing keys beside the deployment's own. `chain` is
// 'primary' (the deployment's algorithm, JWT_ALGORITHM: what every key made before this was) or
// 'rs256' (RS256 always: OpenID Connect Discovery §3 requires RS256 for ID tokens; on an HS256
// deployment it also signs client access tokens). Each chain has at most one key not retired.
import { type Kysely, sql } from 'kysely'

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable('authgate_signing_keys')
    .addColumn('chain', 'text', (c) => c.notNull().defaultTo('primary'))
    .execute()
  await sql`DROP INDEX authgate_signing_keys_one_current`.execute(db)
  // One latest key per chain, whatever races (two servers starting on one fresh database).
  await sql`CREATE UNIQUE INDEX authgate_signing_keys_one_current
    ON authgate_signing_keys (chain) WHERE retired_at IS NULL`.execute(db)
}

export async function down(db: Kysely<unknown>): Promise<void> {
  // The RS256 chain goes with its column: the index before could not hold two latest keys.
  await sql`DELETE FROM authgate_signing_keys WHERE chain <> 'primary'`.execute(db)
  await sql`DROP INDEX authgate_signing_keys_one_current`.execute(db)
  await sql`CREATE UNIQUE INDEX authgate_signing_keys_one_current
    ON authgate_signing_keys ((retired_at IS NULL)) WHERE retired_at IS NULL`.execute(db)
  await db.schema.alterTable('authgate_signing_keys').dropColumn('chain').execute()
}
