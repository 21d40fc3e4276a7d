// loadConfig: defaults, conversions, and start-up errors that name the variable.
import { readdirSync, readFileSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import type { TSchema } from 'typebox'
import { Value } from 'typebox/value'
import { describe, expect, it } from 'vitest'
import { ConfigError, loadConfig, VARIABLES } from '../../src/config.js'

describe('loadConfig', () => {
  it('has the documented defaults', () => {
    expect(loadConfig({})).toMatchObject({
      port: 8000,
      host: '127.0.0.1',
      databaseUrl: 'sqlite:///./data/authgate.db',
      secretKey: undefined,
      accessTokenExpireMinutes: 30,
      refreshTokenExpireDays: 7,
      sessionMaxDays: 30,
      refreshReuseGraceSeconds: 10,
      logLevel: 'info',
      passwordMinLength: 8,
      passwordMaxLength: 128,
      auditRetentionDays: 365,
      throttle: {
        enabled: true,
        loginMaxFailures: 10,
        loginIpMaxFailures: 100,
        windowMinutes: 15,
        registrationsPerIpPerHour: 30,
      },
      trustProxy: false,
      workers: 1,
    })
  })

  it('reads WORKERS: a count, or auto for one per core', () => {
    expect(loadConfig({ WORKERS: '4' }).workers).toBe(4)
    expect(loadConfig({ WORKERS: 'auto' }).workers).toBe(Math.min(availableParallelism(), 256))
  })

  it('reads METRICS_PORT: unset by default (no listener), never the public port', () => {
    expect(loadConfig({}).metricsPort).toBeUndefined()
    expect(loadConfig({ METRICS_PORT: '9464' }).metricsPort).toBe(9464)
    expect(() => loadConfig({ METRICS_PORT: '8000' })).toThrow(/^METRICS_PORT: must differ from PORT/)
    expect(() => loadConfig({ PORT: '9000', METRICS_PORT: '9000' })).toThrow(/^METRICS_PORT/)
    expect(() => loadConfig({ METRICS_PORT: '0' })).toThrow(/^METRICS_PORT/)
    expect(() => loadConfig({ METRICS_PORT: '70000' })).toThrow(/^METRICS_PORT/)
  })

  it('reads MAX_CONNECTIONS_PER_IP: 256 by default, 0 meaning no cap', () => {
    expect(loadConfig({}).maxConnectionsPerIp).toBe(256)
    expect(loadConfig({ MAX_CONNECTIONS_PER_IP: '0' }).maxConnectionsPerIp).toBe(0)
    expect(loadConfig({ MAX_CONNECTIONS_PER_IP: '5000' }).maxConnectionsPerIp).toBe(5000)
    expect(() => loadConfig({ MAX_CONNECTIONS_PER_IP: '-1' })).toThrow(/MAX_CONNECTIONS_PER_IP/)
    expect(() => loadConfig({ MAX_CONNECTIONS_PER_IP: 'lots' })).toThrow(/MAX_CONNECTIONS_PER_IP/)
  })

  it('reads AUDIT_RETENTION_DAYS, 0 meaning forever', () => {
    expect(loadConfig({ AUDIT_RETENTION_DAYS: '0' }).auditRetentionDays).toBe(0)
    expect(loadConfig({ AUDIT_RETENTION_DAYS: '90' }).auditRetentionDays).toBe(90)
    expect(() => loadConfig({ AUDIT_RETENTION_DAYS: '-1' })).toThrow(/AUDIT_RETENTION_DAYS/)
    expect(() => loadConfig({ AUDIT_RETENTION_DAYS: '1.5' })).toThrow(/AUDIT_RETENTION_DAYS/)
  })

  it('reads the PostgreSQL settings: DATABASE_URL, DATABASE_POOL_SIZE, DATABASE_STATEMENT_TIMEOUT_MS', () => {
    const config = loadConfig({
      DATABASE_URL: 'postgresql://authgate:secret@db.internal:5432/authgate?sslmode=require',
      DATABASE_POOL_SIZE: '25',
      DATABASE_STATEMENT_TIMEOUT_MS: '5000',
    })
    expect(config).toMatchObject({
      databaseUrl: 'postgresql://authgate:secret@db.internal:5432/authgate?sslmode=require',
      databasePoolSize: 25,
      databaseStatementTimeoutMs: 5000,
    })
    expect(loadConfig({})).toMatchObject({
      databasePoolSize: undefined,
      databaseStatementTimeoutMs: undefined,
    })
  })

  it('reads DATABASE_WAIT_SECONDS, 10 by default, 0 meaning one attempt', () => {
    expect(loadConfig({}).databaseWaitSeconds).toBe(10)
    expect(loadConfig({ DATABASE_WAIT_SECONDS: '0' }).databaseWaitSeconds).toBe(0)
    expect(loadConfig({ DATABASE_WAIT_SECONDS: '120' }).databaseWaitSeconds).toBe(120)
    expect(() => loadConfig({ DATABASE_WAIT_SECONDS: '-1' })).toThrow(/DATABASE_WAIT_SECONDS/)
    expect(() => loadConfig({ DATABASE_WAIT_SECONDS: '3601' })).toThrow(/DATABASE_WAIT_SECONDS/)
  })

  it('names DATABASE_URL for a bad PostgreSQL URL, without echoing its password', () => {
    for (const url of [
      'postgres://u:hunter2@h/db?sslmode=prefer',
      'postgres://u:hunter2@h/db?pool_size=0',
      'postgres://u:hunter2@h/db?statement_timeout=soon',
    ]) {
      expect(() => loadConfig({ DATABASE_URL: url })).toThrow(/^DATABASE_URL: /)
      expect(() => loadConfig({ DATABASE_URL: url })).not.toThrow(/hunter2/)
    }
  })

  it('reads REDIS_URL and REDIS_KEY_PREFIX, and names REDIS_URL without echoing its password', () => {
    expect(loadConfig({})).toMatchObject({ redisUrl: undefined, redisKeyPrefix: 'authgate:' })
    expect(
      loadConfig({ REDIS_URL: 'rediss://:pw@cache.internal:6380/2', REDIS_KEY_PREFIX: 'blue:' }),
    ).toMatchObject({ redisUrl: 'rediss://:pw@cache.internal:6380/2', redisKeyPrefix: 'blue:' })
    for (const url of ['http://:hunter2@cache', 'redis//:hunter2@cache', 'redis://:hunter2@']) {
      expect(() => loadConfig({ REDIS_URL: url })).toThrow(/^REDIS_URL: /)
      expect(() => loadConfig({ REDIS_URL: url })).not.toThrow(/hunter2/)
    }
    expect(() => loadConfig({ REDIS_KEY_PREFIX: 'has space' })).toThrow(/^REDIS_KEY_PREFIX: /)
  })

  it.each([
    ['off', false],
    ['on', true],
    ['2', 2],
    ['10.0.0.1, 10.1.0.0/16', ['10.0.0.1', '10.1.0.0/16']],
  ])('reads TRUST_PROXY=%s', (value, expected) => {
    expect(loadConfig({ TRUST_PROXY: value }).trustProxy).toEqual(expected)
  })

  it('converts numbers and treats empty strings as unset', () => {
    const config = loadConfig({ PORT: '0', ACCESS_TOKEN_EXPIRE_MINUTES: '5', HOST: '', LOG_LEVEL: 'warn' })
    expect(config.port).toBe(0)
    expect(config.accessTokenExpireMinutes).toBe(5)
    expect(config.host).toBe('127.0.0.1')
    expect(config.logLevel).toBe('warn')
  })

  it.each([
    [{ PORT: 'eighty' }, 'PORT'],
    [{ PORT: '70000' }, 'PORT'],
    [{ PORT: '-1' }, 'PORT'],
    [{ ACCESS_TOKEN_EXPIRE_MINUTES: '1.5' }, 'ACCESS_TOKEN_EXPIRE_MINUTES'],
    [{ ACCESS_TOKEN_EXPIRE_MINUTES: '0' }, 'ACCESS_TOKEN_EXPIRE_MINUTES'],
    [{ LOG_LEVEL: 'loud' }, 'LOG_LEVEL'],
    [{ SECRET_KEY: 'x'.repeat(31) }, 'SECRET_KEY'],
    [{ DATABASE_URL: 'mysql://localhost/db' }, 'DATABASE_URL'],
    [{ DATABASE_URL: 'sqlite://relative.db' }, 'DATABASE_URL'],
    [{ DATABASE_URL: 'postgres://h/db?sslmode=maybe' }, 'DATABASE_URL'],
    [{ DATABASE_POOL_SIZE: '0' }, 'DATABASE_POOL_SIZE'],
    [{ DATABASE_POOL_SIZE: 'many' }, 'DATABASE_POOL_SIZE'],
    [{ DATABASE_STATEMENT_TIMEOUT_MS: '-1' }, 'DATABASE_STATEMENT_TIMEOUT_MS'],
    [{ DATABASE_STATEMENT_TIMEOUT_MS: '2.5' }, 'DATABASE_STATEMENT_TIMEOUT_MS'],
    [{ PASSWORD_MIN_LENGTH: '4' }, 'PASSWORD_MIN_LENGTH'],
    [{ REFRESH_REUSE_GRACE_SECONDS: '-5' }, 'REFRESH_REUSE_GRACE_SECONDS'],
    [{ SESSION_MAX_DAYS: '3' }, 'SESSION_MAX_DAYS'],
    [{ RATE_LIMIT: 'maybe' }, 'RATE_LIMIT'],
    [{ LOGIN_MAX_FAILURES: '26' }, 'LOGIN_MAX_FAILURES'],
    [{ TRUST_PROXY: 'everyone' }, 'TRUST_PROXY'],
    [{ DEVICE_COOKIE_SAMESITE: 'None' }, 'DEVICE_COOKIE_SAMESITE'],
    [{ CORS_ORIGINS: '*' }, 'CORS_ORIGINS'],
    [{ LOG_FORMAT: 'fancy' }, 'LOG_FORMAT'],
    [{ WORKERS: '0' }, 'WORKERS'],
    [{ WORKERS: '257' }, 'WORKERS'],
    [{ WORKERS: 'many' }, 'WORKERS'],
    [{ WORKERS: '2.5' }, 'WORKERS'],
    [{ PASSWORD_MIN_LENGTH: '100', PASSWORD_MAX_LENGTH: '64' }, 'PASSWORD_MAX_LENGTH'],
  ])('rejects %o naming %s', (env, name) => {
    expect(() => loadConfig(env)).toThrow(ConfigError)
    expect(() => loadConfig(env)).toThrow(new RegExp(`^${name}: `))
  })

  it('accepts a SECRET_KEY of 32 bytes, counted in UTF-8', () => {
    expect(loadConfig({ SECRET_KEY: 'k'.repeat(32) }).secretKey).toBe('k'.repeat(32))
    // 16 two-byte characters are 32 bytes.
    expect(loadConfig({ SECRET_KEY: 'é'.repeat(16) }).secretKey).toBe('é'.repeat(16))
  })

  it('returns a frozen object', () => {
    expect(Object.isFrozen(loadConfig({}))).toBe(true)
  })
})

describe('loadConfig: signing algorithm, issuer and audience', () => {
  it('leaves the algorithm to the database, and takes the issuer from the listen address', () => {
    const config = loadConfig({})
    expect(config.jwtAlgorithm).toBeUndefined()
    expect(config.publicUrl).toBe('http://127.0.0.1:8000')
    expect(config.jwtIssuer).toBe('http://127.0.0.1:8000')
    expect(config.jwtAudience).toBeUndefined()
    expect(loadConfig({ HOST: '::1', PORT: '9000' }).jwtIssuer).toBe('http://[::1]:9000')
  })

  it('takes the issuer from PUBLIC_URL, without a trailing slash, unless JWT_ISSUER is set', () => {
    expect(loadConfig({ PUBLIC_URL: 'https://auth.example.com/' })).toMatchObject({
      publicUrl: 'https://auth.example.com',
      jwtIssuer: 'https://auth.example.com',
    })
    expect(loadConfig({ PUBLIC_URL: 'https://example.com/auth/' }).publicUrl).toBe('https://example.com/auth')
    expect(
      loadConfig({ PUBLIC_URL: 'https://auth.example.com', JWT_ISSUER: 'urn:example:authgate' }),
    ).toMatchObject({ publicUrl: 'https://auth.example.com', jwtIssuer: 'urn:example:authgate' })
  })

  it.each(['HS256', 'ES256', 'EdDSA', 'RS256'])('accepts JWT_ALGORITHM=%s', (alg) => {
    expect(loadConfig({ JWT_ALGORITHM: alg }).jwtAlgorithm).toBe(alg)
  })

  it('reads JWT_AUDIENCE', () => {
    expect(loadConfig({ JWT_AUDIENCE: 'https://api.example.com' }).jwtAudience).toBe(
      'https://api.example.com',
    )
  })

  it.each([
    [{ JWT_ALGORITHM: 'none' }, 'JWT_ALGORITHM'],
    [{ JWT_ALGORITHM: 'es256' }, 'JWT_ALGORITHM'],
    [{ JWT_ALGORITHM: 'HS512' }, 'JWT_ALGORITHM'],
    [{ PUBLIC_URL: 'auth.example.com' }, 'PUBLIC_URL'],
    [{ PUBLIC_URL: 'ftp://auth.example.com' }, 'PUBLIC_URL'],
    [{ PUBLIC_URL: 'https://auth.example.com/?x=1' }, 'PUBLIC_URL'],
    [{ PUBLIC_URL: 'https://user:pw@auth.example.com' }, 'PUBLIC_URL'],
    [{ JWT_ISSUER: 'has spaces' }, 'JWT_ISSUER'],
    [{ JWT_AUDIENCE: 'two words' }, 'JWT_AUDIENCE'],
  ])('rejects %o naming %s', (env, name) => {
    expect(() => loadConfig(env)).toThrow(ConfigError)
    expect(() => loadConfig(env)).toThrow(new RegExp(`^${name}: `))
  })
})

describe('the documented variables', () => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8')
  const section = readme.slice(readme.indexOf('\n## Configuration\n'))
  const table = section.slice(0, section.indexOf('\n## ', 1))
  // | `NAME` | default | meaning |
  const rows = new Map(
    [...table.matchAll(/^\| `([A-Z0-9_]+)` \| ([^|]*) \|/gm)].map((m) => [m[1], m[2]?.trim()] as const),
  )
  const variables = Object.entries(VARIABLES) as [
    string,
    { schema: TSchema; field?: string; default?: unknown },
  ][]

  it("the README's table lists every variable, and only those", () => {
    expect([...rows.keys()].sort()).toEqual(Object.keys(VARIABLES).sort())
  })

  it("the README's defaults are the table's", () => {
    const shown = (cell: string | undefined) => /^`([^`]*)`$/.exec(cell ?? '')?.[1]
    const defaults = variables
      // Without a field, derive() computes the value, and the README says how (`http://HOST:PORT`).
      .filter(([, v]) => v.field !== undefined)
      .map(([name, v]) => [name, v.default === undefined ? undefined : String(v.default)])
    // A lone `value` in the Default column is a default; "pool_size, else 10" or "(unset)" is none.
    expect(defaults.map(([name]) => [name, shown(rows.get(name as string))])).toEqual(defaults)
  })

  it('every default passes its own schema', () => {
    const failing = variables.filter(([, v]) => v.default !== undefined && !Value.Check(v.schema, v.default))
    expect(failing.map(([name]) => name)).toEqual([])
  })

  it('the docs name no variable that does not exist', () => {
    const docs = new URL('../../docs/', import.meta.url)
    const texts = [readme, ...readdirSync(docs).map((f) => readFileSync(new URL(f, docs), 'utf8'))]
    // `NAME` or `NAME=value` with an underscore: HS256, CI, NOTIFY and the like are not variables.
    const named = new Set(
      texts.flatMap((t) => [...t.matchAll(/`([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)(?:=[^`]*)?`/g)].map((m) => m[1])),
    )
    // The test suite's own, documented with it.
    for (const own of ['TEST_DATABASE_URL', 'TEST_REDIS_URL']) named.delete(own)
    // A constant of the code (`PAGE_HEADERS`) is named as the code names it: declared in src/.
    const src = new URL('../../src/', import.meta.url)
    const code = readdirSync(src, { recursive: true, encoding: 'utf8' })
      .filter((f) => f.endsWith('.ts'))
      .map((f) => readFileSync(new URL(f, src), 'utf8'))
      .join('\n')
    for (const name of named)
      if (new RegExp(`\\b(?:const|let|function|class) ${name}\\b`).test(code)) named.delete(name)
    expect([...named].filter((n) => n !== undefined && !(n in VARIABLES))).toEqual([])
  })
})
