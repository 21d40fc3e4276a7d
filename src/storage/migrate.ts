// Runs the migrations with Kysely's Migrator; used at start-up and by `authgate migrate`.
import { type MigrationResultSet, Migrator } from 'kysely'
import type { Db } from './database.js'
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

export async function migrateToLatest(db: Db): Promise<string[]> {
  return unwrap(await migrator(db).migrateToLatest())
}

export async function migrateDown(db: Db): Promise<string[]> {
  return unwrap(await migrator(db).migrateDown())
}
