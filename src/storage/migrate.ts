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
