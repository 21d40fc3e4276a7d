// createDatabase(url) -> Kysely over better-sqlite3, with the pragmas a server needs.
import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import SQLite from 'better-sqlite3'
import {
  CompiledQuery,
  type DatabaseConnection,
  type DialectAdapter,
  type Driver,
  Kysely,
  SqliteAdapter,
  SqliteDialect,
  type SqliteDialectConfig,
  SqliteDriver,
  sql,
} from 'kysely'
import { parseDatabaseUrl } from './database-url.js'
import type { Database } from './tables.js'

export type { Database } from './tables.js'
export type Db = Kysely<Database>

export function createDatabase(url: string): Db {
  const location = parseDatabaseUrl(url)
  if (location.path !== ':memory:') mkdirSync(dirname(location.path), { recursive: true })
  const sqlite = new SQLite(location.path)
  // WAL lets readers (and the seed app, if it still runs on the file) work beside one writer;
  // busy_timeout waits for a lock instead of failing with SQLITE_BUSY.
  sqlite.pragma('journal_mode = WAL')
  sqlite.pragma('busy_timeout = 5000')
  sqlite.pragma('foreign_keys = ON')
  // NORMAL is durable across process crashes in WAL mode, and avoids an fsync per commit.
  sqlite.pragma('synchronous = NORMAL')
  return new Kysely<Database>({ dialect: new ImmediateSqliteDialect({ database: sqlite }) })
}

/**
 * Transactions BEGIN IMMEDIATE: they take the write lock up front and wait for it (busy_timeout)
 * instead of failing when a read upgrades to a write while another process writes. And SQLite
 * DDL is transactional, so migrations run in one such transaction: that is the migration lock
 * which keeps two servers starting on one file from running the same migration twice.
 */
class ImmediateSqliteDialect extends SqliteDialect {
  readonly #config: SqliteDialectConfig
  constructor(config: SqliteDialectConfig) {
    super(config)
    this.#config = config
  }

  override createDriver(): Driver {
    return new ImmediateSqliteDriver(this.#config)
  }

  override createAdapter(): DialectAdapter {
    return new TransactionalDdlSqliteAdapter()
  }
}

class TransactionalDdlSqliteAdapter extends SqliteAdapter {
  override get supportsTransactionalDdl(): boolean {
    return true
  }
}

class ImmediateSqliteDriver extends SqliteDriver {
  override async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('begin immediate'))
  }
}

/** True when the database answers a trivial query. */
export async function pingDatabase(db: Db): Promise<boolean> {
  try {
    await sql`select 1`.execute(db)
    return true
  } catch {
    return false
  }
}

/** A unique or primary-key constraint violation, from either driver. */
export function isUniqueViolation(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code
  return code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || code === '23505'
}
