// loadConfig: defaults, conversions, and start-up errors that name the variable.
import { describe, expect, it } from 'vitest'
import { ConfigError, loadConfig } from '../../src/config.js'

describe('loadConfig', () => {
  it('has the documented defaults', () => {
    expect(loadConfig({})).toEqual({
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
    })
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
    [{ PASSWORD_MIN_LENGTH: '4' }, 'PASSWORD_MIN_LENGTH'],
    [{ REFRESH_REUSE_GRACE_SECONDS: '-5' }, 'REFRESH_REUSE_GRACE_SECONDS'],
    [{ SESSION_MAX_DAYS: '3' }, 'SESSION_MAX_DAYS'],
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
