// Reads DATABASE_URL: SQLAlchemy-style SQLite URLs (the seed's `sqlite:///./todosapp.db`), a plain
// path, or a PostgreSQL URL (`postgres://` / `postgresql://`) with the few parameters AuthGate reads.
import { isAbsolute, resolve } from 'node:path'

/** TLS to PostgreSQL, as libpq's sslmode names it (`allow` and `prefer` are refused: pg cannot fall back). */
export type SslMode = 'disable' | 'require' | 'verify-ca' | 'verify-full'

export interface PostgresTls {
  mode: SslMode
  /** Paths from sslrootcert, sslcert and sslkey; read when the pool is made. */
  rootCert?: string
  cert?: string
  key?: string
}

export interface PostgresLocation {
  dialect: 'postgres'
  /** The URL without the parameters below, which AuthGate applies itself; the rest goes to pg. */
  connectionString: string
  tls: PostgresTls
  /** `pool_size`: connections per process. */
  poolSize?: number
  /** `statement_timeout`: milliseconds, 0 for none. */
  statementTimeoutMs?: number
  /** `query_timeout`: milliseconds the client waits for an answer, 0 for no limit (pg's own name). */
  queryTimeoutMs?: number
  /** `connect_timeout`: seconds, as libpq; kept here in milliseconds. */
  connectTimeoutMs?: number
}

export interface SqliteLocation {
  dialect: 'sqlite'
  path: string
  /** `timeout`: seconds to wait for another writer's lock (SQLAlchemy's, for sqlite3.connect); kept in ms. */
  busyTimeoutMs?: number
}

export type DatabaseLocation = SqliteLocation | PostgresLocation

export class DatabaseUrlError extends Error {
  override name = 'DatabaseUrlError'
}

/**
 * The database could not be opened or reached at start-up. The message names DATABASE_URL and
 * the file or host (describeDatabase: never the password), and says why.
 */
export class DatabaseOpenError extends Error {
  override name = 'DatabaseOpenError'
}

/**
 * The database as a log line or an error may show it: `sqlite:///` and the absolute path, or the
 * PostgreSQL URL without its password (nor any parameter that could hold one).
 */
export function describeDatabase(location: DatabaseLocation): string {
  if (location.dialect === 'sqlite')
    return location.path === ':memory:' ? ':memory:' : `sqlite:///${location.path}`
  const url = new URL(location.connectionString)
  url.password = ''
  for (const name of [...url.searchParams.keys()]) {
    if (/pass|secret|token/i.test(name)) url.searchParams.delete(name)
  }
  return url.href
}

export const MAX_POOL_SIZE = 1000
export const MAX_STATEMENT_TIMEOUT_MS = 86_400_000
const MAX_BUSY_TIMEOUT_S = 3600

/**
 * `sqlite:///relative/path.db` -> relative to the working directory (three slashes, as SQLAlchemy);
 * `sqlite:////absolute/path.db` -> absolute (four slashes); `sqlite:///:memory:` -> in memory;
 * `sqlite:///path.db?timeout=10` -> wait 10 s for a lock (SQLAlchemy's parameter; others are ignored);
 * `postgres://user:pass@host:5432/db?sslmode=verify-full&pool_size=20&statement_timeout=5000`;
 * anything without a scheme is a file path.
 */
export function parseDatabaseUrl(url: string, cwd = process.cwd()): DatabaseLocation {
  const trimmed = url.trim()
  if (trimmed === ':memory:' || trimmed === 'sqlite://' || trimmed === 'sqlite:///:memory:') {
    return { dialect: 'sqlite', path: ':memory:' }
  }
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(trimmed)?.[1]?.toLowerCase()
  if (scheme === undefined || /^[a-z]$/i.test(scheme)) {
    // No scheme (or a Windows drive letter): a plain path.
    return { dialect: 'sqlite', path: resolve(cwd, trimmed) }
  }
  if (scheme === 'sqlite' || scheme === 'sqlite+pysqlite') {
    const rest = trimmed.slice(scheme.length + 1)
    if (!rest.startsWith('///') || rest.length === 3) {
      throw new DatabaseUrlError('expected sqlite:///relative/path.db or sqlite:////absolute/path.db')
    }
    const [path = '', query = ''] = rest.slice(3).split('?', 2)
    const location: SqliteLocation = { dialect: 'sqlite', path: isAbsolute(path) ? path : resolve(cwd, path) }
    const timeout = new URLSearchParams(query).getAll('timeout')
    if (timeout.length > 1) throw new DatabaseUrlError('timeout is given more than once')
    if (timeout[0] !== undefined) location.busyTimeoutMs = busyTimeoutMs(timeout[0])
    return location
  }
  if (scheme === 'postgres' || scheme === 'postgresql') return parsePostgresUrl(trimmed)
  throw new DatabaseUrlError(
    `unsupported scheme "${scheme}:"; use sqlite:///path.db, a file path, or postgres://host/db`,
  )
}

/** Seconds, as SQLAlchemy and Python's sqlite3 take it (a fraction allowed), in milliseconds. */
function busyTimeoutMs(text: string): number {
  const seconds = Number(text)
  if (!/^\d+(\.\d+)?$/.test(text) || seconds > MAX_BUSY_TIMEOUT_S) {
    throw new DatabaseUrlError(`timeout: expected seconds from 0 to ${MAX_BUSY_TIMEOUT_S}`)
  }
  return Math.round(seconds * 1000)
}

const SSL_MODES = ['disable', 'require', 'verify-ca', 'verify-full'] as const

// Never echo the URL itself in an error: it may hold a password.
function parsePostgresUrl(text: string): PostgresLocation {
  let url: URL
  try {
    url = new URL(text)
  } catch {
    throw new DatabaseUrlError('expected postgres://user:password@host:port/database')
  }
  const params = url.searchParams
  const take = (name: string): string | undefined => {
    const values = params.getAll(name)
    params.delete(name)
    if (values.length > 1) throw new DatabaseUrlError(`${name} is given more than once`)
    return values[0]
  }
  const integer = (name: string, value: string | undefined, min: number, max: number) => {
    if (value === undefined) return undefined
    if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > max) {
      throw new DatabaseUrlError(`${name}: expected an integer from ${min} to ${max}`)
    }
    return Number(value)
  }

  if (params.has('ssl'))
    throw new DatabaseUrlError('use sslmode=disable|require|verify-ca|verify-full, not ssl=')
  const sslmode = take('sslmode') ?? 'disable'
  if (sslmode === 'allow' || sslmode === 'prefer') {
    throw new DatabaseUrlError(
      `sslmode=${sslmode} is not supported (the driver cannot fall back to plain text); use disable or require`,
    )
  }
  if (!(SSL_MODES as readonly string[]).includes(sslmode)) {
    throw new DatabaseUrlError(`sslmode: expected one of ${SSL_MODES.join(', ')}`)
  }
  const tls: PostgresTls = { mode: sslmode as SslMode }
  const rootCert = take('sslrootcert')
  const cert = take('sslcert')
  const key = take('sslkey')
  // libpq's sslrootcert=system: the platform's CAs, which is Node's default anyway.
  if (rootCert !== undefined && rootCert !== 'system') tls.rootCert = rootCert
  if (cert !== undefined) tls.cert = cert
  if (key !== undefined) tls.key = key
  if ((cert === undefined) !== (key === undefined)) {
    throw new DatabaseUrlError('sslcert and sslkey go together')
  }

  const location: PostgresLocation = { dialect: 'postgres', connectionString: '', tls }
  const poolSize = integer('pool_size', take('pool_size'), 1, MAX_POOL_SIZE)
  const statementTimeoutMs = integer(
    'statement_timeout',
    take('statement_timeout'),
    0,
    MAX_STATEMENT_TIMEOUT_MS,
  )
  // pg would read query_timeout from the URL itself, unchecked: taken here, checked and applied.
  const queryTimeoutMs = integer('query_timeout', take('query_timeout'), 0, MAX_STATEMENT_TIMEOUT_MS)
  const connectTimeout = integer('connect_timeout', take('connect_timeout'), 0, 3600)
  if (poolSize !== undefined) location.poolSize = poolSize
  if (statementTimeoutMs !== undefined) location.statementTimeoutMs = statementTimeoutMs
  if (queryTimeoutMs !== undefined) location.queryTimeoutMs = queryTimeoutMs
  if (connectTimeout !== undefined) location.connectTimeoutMs = connectTimeout * 1000
  location.connectionString = url.href
  return location
}
