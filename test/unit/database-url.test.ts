// parseDatabaseUrl: SQLAlchemy-style SQLite URLs, plain paths, and PostgreSQL URLs with the
// parameters AuthGate reads itself (sslmode, pool_size, statement_timeout, query_timeout,
// connect_timeout; SQLite's timeout).
import { describe, expect, it } from 'vitest'
import { DatabaseUrlError, describeDatabase, parseDatabaseUrl } from '../../src/storage/database-url.js'

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

  it.each([
    ['sqlite:///./todosapp.db?timeout=10', 10_000],
    ['sqlite:////tmp/x.db?check_same_thread=False&timeout=0.25', 250],
    ['sqlite:///x.db?timeout=0', 0],
  ])("%s waits %i ms for a lock (SQLAlchemy's timeout, in seconds)", (url, busyTimeoutMs) => {
    expect(parseDatabaseUrl(url, cwd)).toMatchObject({ dialect: 'sqlite', busyTimeoutMs })
  })

  it.each([
    'sqlite://relative.db',
    'sqlite:///',
    'mysql://x/y',
    'postgres://h/db?pool_size=1&pool_size=2',
    'sqlite:///x.db?timeout=-1',
    'sqlite:///x.db?timeout=soon',
    'sqlite:///x.db?timeout=3601',
    'sqlite:///x.db?timeout=1&timeout=2',
  ])('rejects %s', (url) => {
    expect(() => parseDatabaseUrl(url, cwd)).toThrow(DatabaseUrlError)
  })
})

describe('parseDatabaseUrl for PostgreSQL', () => {
  it.each(['postgres', 'postgresql'])('reads %s:// with no TLS and no settings by default', (scheme) => {
    expect(parseDatabaseUrl(`${scheme}://authgate:s3cret@db.internal:5433/auth`)).toEqual({
      dialect: 'postgres',
      connectionString: `${scheme}://authgate:s3cret@db.internal:5433/auth`,
      tls: { mode: 'disable' },
    })
  })

  it('takes out the parameters it applies itself and passes the rest to the driver', () => {
    const location = parseDatabaseUrl(
      'postgres://u@h/db?application_name=edge&pool_size=20&statement_timeout=5000&query_timeout=8000&connect_timeout=3&sslmode=verify-full&sslrootcert=/etc/ca.pem',
    )
    expect(location).toEqual({
      dialect: 'postgres',
      connectionString: 'postgres://u@h/db?application_name=edge',
      tls: { mode: 'verify-full', rootCert: '/etc/ca.pem' },
      poolSize: 20,
      statementTimeoutMs: 5000,
      queryTimeoutMs: 8000,
      connectTimeoutMs: 3000,
    })
  })

  it.each([
    ['disable', { mode: 'disable' }],
    ['require', { mode: 'require' }],
    ['verify-ca&sslrootcert=/ca.pem', { mode: 'verify-ca', rootCert: '/ca.pem' }],
    ['verify-full&sslrootcert=system', { mode: 'verify-full' }],
    ['require&sslcert=/c.pem&sslkey=/k.pem', { mode: 'require', cert: '/c.pem', key: '/k.pem' }],
  ])('reads sslmode=%s', (query, tls) => {
    expect(parseDatabaseUrl(`postgres://h/db?sslmode=${query}`)).toMatchObject({ tls })
  })

  it.each([
    ['sslmode=prefer', /sslmode=prefer is not supported/],
    ['sslmode=allow', /sslmode=allow is not supported/],
    ['sslmode=on', /sslmode: expected one of disable, require, verify-ca, verify-full/],
    ['ssl=true', /use sslmode/],
    ['sslcert=/c.pem', /sslcert and sslkey go together/],
    ['pool_size=0', /pool_size: expected an integer from 1 to 1000/],
    ['pool_size=ten', /pool_size/],
    ['statement_timeout=-5', /statement_timeout/],
    ['query_timeout=1.5', /query_timeout: expected an integer from 0 to 86400000/],
    ['connect_timeout=1.5', /connect_timeout/],
  ])('refuses %s, saying why', (query, message) => {
    expect(() => parseDatabaseUrl(`postgres://u:hunter2@h/db?${query}`)).toThrow(message)
  })

  it('never repeats the URL (and its password) in an error', () => {
    for (const url of ['postgres://u:hunter2@h/db?sslmode=nope', 'postgres://u:hunter2@[bad/db']) {
      expect(() => parseDatabaseUrl(url)).toThrow(DatabaseUrlError)
      expect(() => parseDatabaseUrl(url)).not.toThrow(/hunter2/)
    }
  })
})

describe('describeDatabase (logs and errors)', () => {
  const describe_ = (url: string) => describeDatabase(parseDatabaseUrl(url, '/srv/app'))

  it('shows a SQLite file by its absolute path', () => {
    expect(describe_('sqlite:///./todosapp.db')).toBe('sqlite:////srv/app/todosapp.db')
    expect(describe_('data/x.db')).toBe('sqlite:////srv/app/data/x.db')
    expect(describe_('sqlite:///:memory:')).toBe(':memory:')
  })

  it('shows a PostgreSQL URL without its password, nor any parameter that could hold one', () => {
    expect(describe_('postgres://authgate:hunter2@db.internal:5432/authgate?pool_size=5')).toBe(
      'postgres://authgate@db.internal:5432/authgate',
    )
    expect(describe_('postgresql://u@h/db?password=hunter2&application_name=x')).toBe(
      'postgresql://u@h/db?application_name=x',
    )
  })
})
