// Runs the migrations with Kysely's Migrator; used at start-up and by `authgate migrate`.
import { type MigrationResultSet, Migrator, sql } from 'kysely'
import { type Db, dialectOf } from './database.js'
import { migrations } from './migrations/index.js'

function migrator(db: Db): Migrator {
  return new Migrator({
    db,
    provider: { getMigrations: async () => migrations },
    // Our own names, so they never meet another app's Kysely tables in a shared database.
    migrationTableName: 'authgate_migration',
    migrationLockTableName: 'authgate_migration_lock',
  })
}

function unwrap(result: MigrationResultSet): string[] {
  if (result.error) throw result.error
  return (result.results ?? []).map((r) => `${r.direction} ${r.migrationName}: ${r.status}`)
}

/**
 * SQLite: foreign keys off while migrating (the pragma is ignored inside a transaction, so it is set
 * around it), so a migration can rebuild a table that others reference without the DROP cascading
 * (https://www.sqlite.org/lang_altertable.html#otheralter); such a migration checks the keys itself
 * before it commits. Our one connection is not serving yet.
 */
async function withoutForeignKeys<T>(db: Db, run: () => Promise<T>): Promise<T> {
  if (dialectOf(db) !== 'sqlite') return run()
  await sql`PRAGMA foreign_keys = OFF`.execute(db)
  try {
    return await run()
  } finally {
    await sql`PRAGMA foreign_keys = ON`.execute(db)
  }
}

export async function migrateToLatest(db: Db): Promise<string[]> {
  return withoutForeignKeys(db, async () => unwrap(await migrator(db).migrateToLatest()))
}

export async function migrateDown(db: Db): Promise<string[]> {
  return withoutForeignKeys(db, async () => unwrap(await migrator(db).migrateDown()))
}

/** The migration that adopts (or creates) the seed's users table. */
const ADOPT_SEED_USERS = '2026_11_28_001_adopt_seed_users'

export interface StartupMigration {
  /** Names of the migrations this call applied, in order; empty when the schema was current. */
  applied: string[]
  /** When this call adopted an existing seed database (todosapp.db): how many users it holds. */
  adoptedSeedUsers?: number
}

/** migrateToLatest, telling what it did: the start-up line reports it. */
export async function migrateAtStartup(db: Db): Promise<StartupMigration> {
  const result = await withoutForeignKeys(db, () => migrator(db).migrateToLatest())
  unwrap(result)
  const applied = (result.results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName)
  if (!applied.includes(ADOPT_SEED_USERS)) return { applied }
  // Rows right after the adopting migration were there before it: the seed's users.
  const { n } = await db
    .selectFrom('users')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .executeTakeFirstOrThrow()
  return Number(n) > 0 ? { applied, adoptedSeedUsers: Number(n) } : { applied }
}
