// Every environment variable AuthGate reads, in one schema: loadConfig(env) -> frozen Config.
import { type Static, type TSchema, Type } from 'typebox'
import { Value } from 'typebox/value'
import { DatabaseUrlError, parseDatabaseUrl } from './storage/database-url.js'

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const

// `description` doubles as the message when a value is rejected, so it says what is expected.
const int = (minimum: number, maximum: number) =>
  Type.Integer({ minimum, maximum, description: `an integer from ${minimum} to ${maximum}` })

export const EnvSchema = Type.Object({
  PORT: Type.Optional(int(0, 65535)),
  HOST: Type.Optional(Type.String({ description: 'a host name or address' })),
  DATABASE_URL: Type.Optional(
    Type.String({ description: 'sqlite:///relative.db, sqlite:////abs.db or a path' }),
  ),
  SECRET_KEY: Type.Optional(Type.String()),
  ACCESS_TOKEN_EXPIRE_MINUTES: Type.Optional(int(1, 525600)),
  REFRESH_TOKEN_EXPIRE_DAYS: Type.Optional(int(1, 3650)),
  SESSION_MAX_DAYS: Type.Optional(int(1, 3650)),
  REFRESH_REUSE_GRACE_SECONDS: Type.Optional(int(0, 300)),
  LOG_LEVEL: Type.Optional(
    Type.Union(
      LOG_LEVELS.map((l) => Type.Literal(l)),
      { description: `one of ${LOG_LEVELS.join(', ')}` },
    ),
  ),
  // OWASP ASVS 2.1.1 / NIST SP 800-63B 5.1.1.2: at least 8 characters, at least 64 allowed.
  PASSWORD_MIN_LENGTH: Type.Optional(int(8, 1024)),
  PASSWORD_MAX_LENGTH: Type.Optional(int(64, 1024)),
})

export type LogLevel = (typeof LOG_LEVELS)[number]

export interface Config {
  readonly port: number
  readonly host: string
  readonly databaseUrl: string
  /** From SECRET_KEY; when absent the key is generated once and kept in the database. */
  readonly secretKey: string | undefined
  readonly accessTokenExpireMinutes: number
  /** A refresh token unused for this long expires. */
  readonly refreshTokenExpireDays: number
  /** No session lives longer than this, however often it refreshes. */
  readonly sessionMaxDays: number
  /** A just-spent refresh token presented again within this window returns the same pair. */
  readonly refreshReuseGraceSeconds: number
  readonly logLevel: LogLevel
  readonly passwordMinLength: number
  readonly passwordMaxLength: number
}

export class ConfigError extends Error {
  override name = 'ConfigError'
}

// RFC 7518 §3.2: an HS256 key must be at least as long as the hash output (256 bits).
export const MIN_SECRET_KEY_BYTES = 32

/** Builds the configuration from an environment; throws ConfigError naming the offending variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const raw: Record<string, unknown> = {}
  for (const key of Object.keys(EnvSchema.properties)) {
    const value = env[key]
    if (value !== undefined && value !== '') raw[key] = value
  }
  for (const [name, value] of Object.entries(raw)) {
    const schema = EnvSchema.properties[name as keyof typeof EnvSchema.properties] as TSchema & {
      type?: string
      description?: string
    }
    // Value.Convert would round "1.5" to 1; an integer variable takes digits only.
    const text = String(value)
    const converted = schema.type === 'integer' && /^\d+$/.test(text) ? Number(text) : text
    if (!Value.Check(schema, converted)) {
      throw new ConfigError(`${name}: expected ${schema.description}, got ${JSON.stringify(text)}`)
    }
    raw[name] = converted
  }
  const env2 = raw as Static<typeof EnvSchema>
  if (env2.SECRET_KEY !== undefined && Buffer.byteLength(env2.SECRET_KEY) < MIN_SECRET_KEY_BYTES) {
    throw new ConfigError(
      `SECRET_KEY: must be at least ${MIN_SECRET_KEY_BYTES} bytes (try: openssl rand -hex 32), or unset it to let AuthGate generate one`,
    )
  }
  const databaseUrl = env2.DATABASE_URL ?? 'sqlite:///./data/authgate.db'
  try {
    parseDatabaseUrl(databaseUrl)
  } catch (err) {
    if (err instanceof DatabaseUrlError) throw new ConfigError(`DATABASE_URL: ${err.message}`)
    throw err
  }
  const passwordMinLength = env2.PASSWORD_MIN_LENGTH ?? 8
  const passwordMaxLength = env2.PASSWORD_MAX_LENGTH ?? 128
  const refreshTokenExpireDays = env2.REFRESH_TOKEN_EXPIRE_DAYS ?? 7
  const sessionMaxDays = env2.SESSION_MAX_DAYS ?? 30
  if (sessionMaxDays < refreshTokenExpireDays) {
    throw new ConfigError('SESSION_MAX_DAYS: must not be shorter than REFRESH_TOKEN_EXPIRE_DAYS')
  }
  if (passwordMaxLength < passwordMinLength) {
    throw new ConfigError('PASSWORD_MAX_LENGTH: must not be smaller than PASSWORD_MIN_LENGTH')
  }
  return Object.freeze({
    port: env2.PORT ?? 8000,
    host: env2.HOST ?? '127.0.0.1',
    databaseUrl,
    secretKey: env2.SECRET_KEY,
    accessTokenExpireMinutes: env2.ACCESS_TOKEN_EXPIRE_MINUTES ?? 30,
    refreshTokenExpireDays,
    sessionMaxDays,
    refreshReuseGraceSeconds: env2.REFRESH_REUSE_GRACE_SECONDS ?? 10,
    logLevel: (env2.LOG_LEVEL ?? 'info') as LogLevel,
    passwordMinLength,
    passwordMaxLength,
  })
}

/** Loads ./.env into process.env when present; variables already set win. */
export function loadDotEnv(path = '.env'): void {
  try {
    process.loadEnvFile(path)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
}
