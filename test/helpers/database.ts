import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createDatabase, type Db } from '../../src/storage/database.js'
import { createTestDatabase, testServerUrl } from './postgres-server.js'

export type TestDialect = 'sqlite' | 'postgres'

/** Which run this is: vitest.config.ts sets AUTHGATE_TEST_DIALECT per project. */
export const TEST_DIALECT: TestDialect =
  process.env.AUTHGATE_TEST_DIALECT === 'postgres' ? 'postgres' : 'sqlite'
export const onPostgres = TEST_DIALECT === 'postgres'

export function tempDir(prefix = 'authgate-test-'): { path: string; cleanup: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix))
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) }
}

export interface TestDatabase {
  /** A DATABASE_URL for the app, the CLI or a child process. */
  url: string
  /** SQLite: the file (tests of the file itself); undefined on PostgreSQL. */
  path: string | undefined
  /** Closes inspect() handles on it and removes it. Idempotent; also done when the file ends. */
  drop(): Promise<void>
}

const pending = new Set<() => Promise<void>>()
const inspectors = new Map<string, Db>()

/**
 * A new, empty database. SQLite: `file` in a new temporary folder (a nested path tests that the
 * folder is made). PostgreSQL: CREATE DATABASE authgate_t_<pid>_<random> on the test server.
 */
export async function freshDatabase(file = 'authgate.db'): Promise<TestDatabase> {
  let url: string
  let path: string | undefined
  let remove: () => Promise<void>
  if (onPostgres) {
    const server = testServerUrl()
    if (!server) throw new Error('the PostgreSQL run needs TEST_DATABASE_URL')
    const made = await createTestDatabase(server)
    url = made.url
    remove = made.drop
  } else {
    const dir = tempDir()
    path = join(dir.path, file)
    url = `sqlite:///${path}`
    remove = async () => dir.cleanup()
  }
  let dropped: Promise<void> | undefined
  const drop = () => {
    dropped ??= (async () => {
      pending.delete(drop)
      await closeInspector(url)
      await remove()
    })()
    return dropped
  }
  pending.add(drop)
  return { url, path, drop }
}

/**
 * A connection of the test's own to the database at `url`, for checking what the app stored:
 * Kysely, so one query serves both dialects (count(*) and bigint columns come back as numbers).
 */
export function inspect(url: string): Db {
  let db = inspectors.get(url)
  if (!db) {
    db = createDatabase(url, { poolSize: 2 })
    inspectors.set(url, db)
  }
  return db
}

async function closeInspector(url: string): Promise<void> {
  const db = inspectors.get(url)
  inspectors.delete(url)
  await db?.destroy()
}

/** Drops every database this file made and has not dropped yet; test/helpers/setup.ts runs it. */
export async function releaseTestDatabases(): Promise<void> {
  await Promise.all([...pending].map((drop) => drop()))
  await Promise.all([...inspectors.keys()].map(closeInspector))
}

/**
 * For tests that only make sense on SQLite (the file itself, the seed app sharing it): true, with
 * the reason printed, when this is the PostgreSQL run. Use with describe.skipIf / it.skipIf.
 */
export function sqliteOnly(reason: string): boolean {
  if (!onPostgres) return false
  console.info(`[postgres run] SQLite-only, skipped: ${reason}`)
  return true
}
