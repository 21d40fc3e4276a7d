// createDatabase(url) -> Kysely over better-sqlite3 (with the pragmas a server needs) or over a pg
// pool (PostgreSQL), and the few helpers where the two dialects differ. Repositories write each
// query out in Kysely's builder even where two look alike (one column by key, one conditional
// UPDATE): a generic wrapper would hide the SQL whose locks and indexes each race relies on.
import { existsSync, mkdirSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import type { ConnectionOptions } from 'node:tls'
import SQLite from 'better-sqlite3'
import {
  CompiledQuery,
  type DatabaseConnection,
  type DialectAdapter,
  type Driver,
  Kysely,
  type KyselyConfig,
  PostgresAdapter,
  type PostgresCursor,
  PostgresDialect,
  type PostgresPool,
  type PostgresPoolClient,
  type PostgresQueryResult,
  SqliteAdapter,
  type SqliteDatabase,
  SqliteDialect,
  type SqliteDialectConfig,
  SqliteDriver,
  sql,
} from 'kysely'
import type * as Pg from 'pg'
import {
  DatabaseOpenError,
  describeDatabase,
  type PostgresLocation,
  parseDatabaseUrl,
  type SqliteLocation,
} from './database-url.js'
import type { Database } from './tables.js'

export type { Database } from './tables.js'
export type Db = Kysely<Database>
export type Dialect = 'sqlite' | 'postgres'

/** Settings from the environment (DATABASE_POOL_SIZE...) that win over the URL's parameters. */
export interface DatabaseOptions {
  poolSize?: number | undefined
  statementTimeoutMs?: number | undefined
  /**
   * Called for each query that fails and each connection that cannot be opened (the metrics'
   * authgate_db_errors_total). Unique violations are not errors here: callers expect them.
   */
  onError?: ((err: unknown) => void) | undefined
}

/** Kysely's log hook, only when someone listens: without one Kysely adds nothing per query. */
function errorLog(onError: DatabaseOptions['onError']): Pick<KyselyConfig, 'log'> {
  if (!onError) return {}
  return {
    log(event) {
      if (event.level === 'error' && !isUniqueViolation(event.error)) onError(event.error)
    },
  }
}

export const DEFAULT_POOL_SIZE = 10
// A request waits at most this long for a connection to an unreachable server, then gets a 503.
const DEFAULT_CONNECT_TIMEOUT_MS = 5_000
// ...and at most this long for an answer on an open connection that went silent (no
// statement_timeout set); with one, that timeout plus QUERY_TIMEOUT_MARGIN_MS, so the server's
// own cancellation (a clean error) comes first.
const DEFAULT_QUERY_TIMEOUT_MS = 15_000
const QUERY_TIMEOUT_MARGIN_MS = 5_000
// How long a write waits for another connection's lock before SQLITE_BUSY (a 503).
const DEFAULT_BUSY_TIMEOUT_MS = 5_000

export function createDatabase(url: string, options: DatabaseOptions = {}): Db {
  const location = parseDatabaseUrl(url)
  if (location.dialect === 'postgres') return createPostgresDatabase(location, options)
  if (location.path !== ':memory:') makeFolder(location, dirname(location.path))
  let sqlite: SQLite.Database | undefined
  try {
    sqlite = new SQLite(location.path)
    // WAL lets readers (and the seed app, if it still runs on the file) work beside one writer;
    // busy_timeout waits for a lock instead of failing with SQLITE_BUSY at once.
    sqlite.pragma('journal_mode = WAL')
    sqlite.pragma(`busy_timeout = ${location.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS}`)
    sqlite.pragma('foreign_keys = ON')
    // NORMAL is durable across process crashes in WAL mode, and avoids an fsync per commit.
    sqlite.pragma('synchronous = NORMAL')
  } catch (err) {
    sqlite?.close()
    throw new DatabaseOpenError(
      `DATABASE_URL (${describeDatabase(location)}): cannot open or create the SQLite file ${location.path}: ` +
        `${errorReason(err)}. Its folder must exist and be writable by this user (SQLite adds -wal and -shm files beside it).`,
      { cause: err },
    )
  }
  return new Kysely<Database>({
    dialect: new ImmediateSqliteDialect({ database: withStatementCache(sqlite) }),
    ...errorLog(options.onError),
  })
}

// Distinct statements kept prepared; the app has a few dozen, so this only bounds the unusual.
const STATEMENT_CACHE_MAX = 500

/**
 * The database as Kysely's SQLite driver sees it, with each statement prepared once: the driver
 * prepares on every query, and compiling the SQL costs more than running a lookup by primary key
 * (the client lookup of every client authentication, issue 12). Safe to reuse: better-sqlite3
 * runs each statement to completion before returning (nothing here streams), and re-prepares it
 * by itself after a schema change (SQLITE_SCHEMA, sqlite3_prepare_v2).
 */
function withStatementCache(sqlite: SQLite.Database): SqliteDatabase {
  const statements = new Map<string, SQLite.Statement>()
  return {
    prepare(text: string) {
      let statement = statements.get(text)
      if (!statement) {
        if (statements.size >= STATEMENT_CACHE_MAX) statements.clear()
        statement = sqlite.prepare(text)
        statements.set(text, statement)
      }
      return statement
    },
    close() {
      statements.clear()
      sqlite.close()
    },
  }
}

/**
 * mkdir -p, one level at a time. Node's mkdirSync(dir, { recursive: true }) never returns where
 * the kernel answers ENOENT for a folder whose parent exists (/proc/nope: it retries the parent,
 * which exists, then the folder, forever, at full CPU); here that is an error naming DATABASE_URL.
 */
function makeFolder(location: SqliteLocation, folder: string): void {
  const missing: string[] = []
  for (let dir = folder; !existsSync(dir); dir = dirname(dir)) {
    missing.unshift(dir)
    if (dirname(dir) === dir) break
  }
  for (const dir of missing) {
    try {
      mkdirSync(dir)
    } catch (err) {
      // Another process starting on the same file made it first.
      if ((err as NodeJS.ErrnoException).code === 'EEXIST' && existsSync(dir)) continue
      throw new DatabaseOpenError(
        `DATABASE_URL (${describeDatabase(location)}): cannot create the folder ${dir} for the SQLite file: ${errorReason(err)}`,
        { cause: err },
      )
    }
  }
}

/** An error as one line: its message and code (each of an AggregateError's errors). */
export function errorReason(err: unknown): string {
  if (!(err instanceof Error)) return String(err)
  // net.connect to several addresses (localhost: ::1 and 127.0.0.1): an AggregateError, no message.
  if (err instanceof AggregateError && err.message === '') return err.errors.map(errorReason).join('; ')
  const code = (err as { code?: unknown }).code
  return typeof code === 'string' && !err.message.includes(code) ? `${err.message} (${code})` : err.message
}

export interface ConnectOptions {
  /** How long to keep retrying a database that cannot be reached yet (DATABASE_WAIT_SECONDS); 0: try once. */
  waitMs: number
  /** Called before each retry, with what failed and how much longer it is retried. */
  onRetry?: (info: { database: string; attempt: number; err: unknown; giveUpInMs: number }) => void
}

const RETRY_FIRST_MS = 250
const RETRY_MAX_MS = 2_000

/**
 * Makes sure the database answers before anything else uses it: a PostgreSQL that is not up yet
 * (refused, starting up, not resolvable yet) is retried, with a growing pause, until
 * `options.waitMs` have passed. Anything else (a wrong password, no such database), or still no
 * answer by then, is a DatabaseOpenError naming DATABASE_URL and the host, never the password.
 */
export async function connectDatabase(db: Db, url: string, options: ConnectOptions): Promise<void> {
  const database = describeDatabase(parseDatabaseUrl(url))
  const startedAt = Date.now()
  let pause = RETRY_FIRST_MS
  for (let attempt = 1; ; attempt++) {
    try {
      await sql`select 1`.execute(db)
      return
    } catch (err) {
      const waited = Date.now() - startedAt
      const giveUpInMs = options.waitMs - waited
      if (!isDatabaseUnavailable(err) || giveUpInMs <= 0) {
        const after =
          attempt > 1 ? ` (still, after ${attempt} attempts in ${Math.round(waited / 1000)} s)` : ''
        const hint = isDatabaseUnavailable(err)
          ? '. Is the server up and reachable from here? DATABASE_WAIT_SECONDS sets how long start-up waits for it.'
          : ''
        throw new DatabaseOpenError(
          `DATABASE_URL (${database}): cannot connect${after}: ${errorReason(err)}${hint}`,
          {
            cause: err,
          },
        )
      }
      options.onRetry?.({ database, attempt, err, giveUpInMs })
      await sleep(Math.min(pause, giveUpInMs))
      pause = Math.min(pause * 2, RETRY_MAX_MS)
    }
  }
}

// pg is loaded only when a PostgreSQL URL is used: a SQLite server never pays for it.
const requireCjs = createRequire(import.meta.url)

const INT8_OID = 20

function parseInt8(text: string): number {
  const value = Number(text)
  // Epoch milliseconds, ids and counts: far below 2^53. Anything beyond would lose digits silently.
  if (!Number.isSafeInteger(value)) throw new RangeError(`bigint ${text} does not fit a JS number`)
  return value
}

function createPostgresDatabase(location: PostgresLocation, options: DatabaseOptions): Db {
  const pg = requireCjs('pg') as typeof Pg
  // bigint (int8) columns hold epoch milliseconds, and count(*) is int8: as JS numbers, like
  // better-sqlite3 gives them. Scoped to this pool; pg's global parsers stay as they are.
  const types = {
    getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
      oid === INT8_OID && format !== 'binary'
        ? parseInt8
        : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
  }
  const statementTimeoutMs = options.statementTimeoutMs ?? location.statementTimeoutMs ?? 0
  // Nothing else notices a connection whose peer went silent (no RST: a dead host, a cut network
  // path) while a query waits: TCP retransmits for many minutes, and the request with it.
  const queryTimeoutMs =
    location.queryTimeoutMs ??
    (statementTimeoutMs > 0 ? statementTimeoutMs + QUERY_TIMEOUT_MARGIN_MS : DEFAULT_QUERY_TIMEOUT_MS)
  const pool = new pg.Pool({
    connectionString: location.connectionString,
    ssl: tlsOptions(location),
    max: options.poolSize ?? location.poolSize ?? DEFAULT_POOL_SIZE,
    connectionTimeoutMillis: location.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
    ...(statementTimeoutMs > 0 ? { statement_timeout: statementTimeoutMs } : {}),
    ...(queryTimeoutMs > 0 ? { query_timeout: queryTimeoutMs } : {}),
    fallback_application_name: 'authgate',
    types,
  })
  // An idle connection that dies (a server restart, a failover) emits 'error' on the pool, and an
  // unhandled 'error' event would end the process. The pool drops that client; the next query
  // opens a new one, and a query that fails is reported by whoever ran it.
  pool.on('error', () => {})
  // A connection that dies while checked out (between a transaction's queries, during a query)
  // emits 'error' on its client, where the pool listens only while it is idle: without a listener
  // of its own that too would end the process. Its query fails (a 503), the client is no longer
  // queryable, and the pool discards it on release.
  pool.on('connect', (client) => {
    client.on('error', () => {})
  })
  return new Kysely<Database>({
    dialect: new PostgresDialect({ pool: new DiscardingPool(pool, options.onError) }),
    ...errorLog(options.onError),
  })
}

const QUERY_TIMEOUT_MESSAGE = 'Query read timeout'

/**
 * The pool as Kysely sees it, except that a connection whose query timed out is destroyed, never
 * reused. pg fails such a query but leaves it pending on the connection, which stays "busy": given
 * back to the pool, it would hold every later query behind the one that never gets an answer.
 */
class DiscardingPool implements PostgresPool {
  constructor(
    readonly pool: Pg.Pool,
    readonly onError?: (err: unknown) => void,
  ) {}

  async connect(): Promise<PostgresPoolClient> {
    try {
      return new DiscardingClient(await this.pool.connect())
    } catch (err) {
      // Kysely reports failed queries only; a connection never made fails before any query.
      this.onError?.(err)
      throw err
    }
  }

  end(): Promise<void> {
    return this.pool.end()
  }
}

class DiscardingClient implements PostgresPoolClient {
  #timedOut: Error | undefined
  constructor(readonly client: Pg.PoolClient) {}

  query<R>(sql: string, parameters: readonly unknown[]): Promise<PostgresQueryResult<R>>
  query<R>(cursor: PostgresCursor<R>): PostgresCursor<R>
  query<R>(
    sql: string | PostgresCursor<R>,
    parameters: readonly unknown[] = [],
  ): Promise<PostgresQueryResult<R>> | PostgresCursor<R> {
    // Kysely passes a cursor only when its dialect is given a cursor class, and ours is not.
    if (typeof sql !== 'string') throw new TypeError('cursors are not supported')
    return this.#query<R>(sql, parameters)
  }

  async #query<R>(sql: string, parameters: readonly unknown[]): Promise<PostgresQueryResult<R>> {
    // The rest of the request's queries (its rollback...) fail at once instead of queueing.
    if (this.#timedOut) throw this.#timedOut
    try {
      // pg's result: Kysely's type for it lists the commands it tells apart, pg's says string.
      return (await this.client.query(sql, [...parameters])) as unknown as PostgresQueryResult<R>
    } catch (err) {
      if (err instanceof Error && err.message === QUERY_TIMEOUT_MESSAGE) this.#timedOut = err
      throw err
    }
  }

  /** release(error): the pool ends the client (its socket destroyed) instead of keeping it. */
  release(destroy?: boolean): void {
    this.client.release(this.#timedOut ?? destroy)
  }
}

/**
 * How to open a connection of one's own to the PostgreSQL server `url` names, beside the pool
 * (LISTEN needs one that is never handed to anybody else): the pool's address and TLS settings.
 */
export function postgresClientConfig(url: string): Pg.ClientConfig {
  const location = parseDatabaseUrl(url)
  if (location.dialect !== 'postgres') throw new Error('not a PostgreSQL URL')
  return {
    connectionString: location.connectionString,
    ssl: tlsOptions(location),
    connectionTimeoutMillis: location.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
    application_name: 'authgate-listener',
  }
}

/** libpq's sslmode: require encrypts without checking the certificate (unless a root cert is given). */
function tlsOptions(location: PostgresLocation): false | ConnectionOptions {
  const { mode, rootCert, cert, key } = location.tls
  if (mode === 'disable') return false
  const files: ConnectionOptions = {
    ...(rootCert ? { ca: readFileSync(rootCert, 'utf8') } : {}),
    ...(cert ? { cert: readFileSync(cert, 'utf8') } : {}),
    ...(key ? { key: readFileSync(key, 'utf8') } : {}),
  }
  if (mode === 'verify-full') return files
  if (mode === 'verify-ca' || (mode === 'require' && rootCert)) {
    return { ...files, checkServerIdentity: () => undefined }
  }
  return { ...files, rejectUnauthorized: false }
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

/** Which SQL dialect a database (or a transaction, or a migration's Kysely) speaks. */
export function dialectOf(db: { getExecutor(): { readonly adapter: DialectAdapter } }): Dialect {
  return db.getExecutor().adapter instanceof PostgresAdapter ? 'postgres' : 'sqlite'
}

/** Advisory lock keys: (AuthGate's namespace, what is locked). */
const LOCK_NAMESPACE = 0x41757468 // "Auth"
export const LOCKS = { auditChain: 1, signingKeys: 2 } as const

/**
 * Serialises the rest of the transaction against every other holder of `lock`, in any process.
 * PostgreSQL: a transaction-scoped advisory lock, released at commit or rollback. SQLite: nothing
 * to do, our transactions BEGIN IMMEDIATE and so already hold the database's write lock.
 */
export async function lockTransaction(trx: Db, lock: (typeof LOCKS)[keyof typeof LOCKS]): Promise<void> {
  if (dialectOf(trx) !== 'postgres') return
  await sql`select pg_advisory_xact_lock(${sql.lit(LOCK_NAMESPACE)}, ${sql.lit(lock)})`.execute(trx)
}

/**
 * Whether `text` can equal a stored value. PostgreSQL text cannot hold U+0000 (the server refuses
 * such a parameter outright), so on PostgreSQL a lookup by a value containing it finds nothing:
 * answered here instead of as a 500. SQLite stores it (a row the seed app wrote may have one).
 */
export function canBeStored(
  db: { getExecutor(): { readonly adapter: DialectAdapter } },
  text: string,
): boolean {
  return !text.includes('\u0000') || dialectOf(db) !== 'postgres'
}

/** A unique or primary-key constraint violation, from either driver. */
export function isUniqueViolation(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code
  return code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || code === '23505'
}

// Node's socket errors, and SQLSTATEs that mean "the server is not there" rather than "the query
// was wrong": class 08 (connection exception), 57P01-57P03 (shutdown, crash, starting up), 53300
// (too many connections).
const UNREACHABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  '57P01',
  '57P02',
  '57P03',
  '53300',
])
// pg and pg-pool signal a lost or never-made connection, or one that stopped answering (query_timeout,
// see DiscardingPool), by message only.
const UNREACHABLE_MESSAGES =
  /^(Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|Client was closed and is not queryable|Query read timeout$)/

/**
 * Whether `err` says the database cannot be reached (down, restarting, refusing connections, cut
 * off, silent), or on SQLite that another connection held the write lock past busy_timeout, as
 * opposed to a failed query: such a request gets a 503, and a later one may well succeed (the pool
 * reconnects by itself; the lock is released).
 */
export function isDatabaseUnavailable(err: unknown, depth = 0): boolean {
  if (!(err instanceof Error) || depth > 3) return false
  const code = (err as { code?: unknown }).code
  if (typeof code === 'string' && (UNREACHABLE_CODES.has(code) || code.startsWith('08'))) return true
  // better-sqlite3's codes are extended ones: SQLITE_BUSY, SQLITE_BUSY_SNAPSHOT, _RECOVERY, _TIMEOUT.
  if (typeof code === 'string' && (code === 'SQLITE_BUSY' || code.startsWith('SQLITE_BUSY_'))) return true
  if (UNREACHABLE_MESSAGES.test(err.message)) return true
  // net.connect with several addresses (localhost: ::1 and 127.0.0.1) fails with an AggregateError.
  if (err instanceof AggregateError) return err.errors.some((e) => isDatabaseUnavailable(e, depth + 1))
  return isDatabaseUnavailable(err.cause, depth + 1)
}
