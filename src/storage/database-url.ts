// Reads DATABASE_URL: SQLAlchemy-style SQLite URLs (the seed's `sqlite:///./todosapp.db`) or a plain path.
import { isAbsolute, resolve } from 'node:path'

export type DatabaseLocation = { dialect: 'sqlite'; path: string }

export class DatabaseUrlError extends Error {
  override name = 'DatabaseUrlError'
}

/**
 * `sqlite:///relative/path.db` -> relative to the working directory (three slashes, as SQLAlchemy);
 * `sqlite:////absolute/path.db` -> absolute (four slashes); `sqlite:///:memory:` -> in memory;
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
    const path = rest.slice(3).split('?')[0] ?? ''
    return { dialect: 'sqlite', path: isAbsolute(path) ? path : resolve(cwd, path) }
  }
  if (scheme === 'postgres' || scheme === 'postgresql') {
    throw new DatabaseUrlError('PostgreSQL is not supported yet; use a SQLite URL or path')
  }
  throw new DatabaseUrlError(`unsupported scheme "${scheme}:"; use sqlite:///path.db or a file path`)
}
