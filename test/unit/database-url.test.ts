// parseDatabaseUrl: SQLAlchemy-style SQLite URLs and plain paths.
import { describe, expect, it } from 'vitest'
import { DatabaseUrlError, parseDatabaseUrl } from '../../src/storage/database-url.js'

describe('parseDatabaseUrl', () => {
  const cwd = '/srv/app'
  it.each([
    ['sqlite:///./todosapp.db', '/srv/app/todosapp.db'],
    ['sqlite:///data/authgate.db', '/srv/app/data/authgate.db'],
    ['sqlite:////var/lib/authgate/auth.db', '/var/lib/authgate/auth.db'],
    ['sqlite+pysqlite:////tmp/x.db', '/tmp/x.db'],
    ['sqlite:///./todosapp.db?check_same_thread=False', '/srv/app/todosapp.db'],
    ['./data/a.db', '/srv/app/data/a.db'],
    ['/abs/a.db', '/abs/a.db'],
    [':memory:', ':memory:'],
    ['sqlite:///:memory:', ':memory:'],
  ])('%s -> %s', (url, path) => {
    expect(parseDatabaseUrl(url, cwd)).toEqual({ dialect: 'sqlite', path })
  })

  it.each(['sqlite://relative.db', 'sqlite:///', 'mysql://x/y', 'postgres://localhost/test'])(
    'rejects %s',
    (url) => {
      expect(() => parseDatabaseUrl(url, cwd)).toThrow(DatabaseUrlError)
    },
  )
})
