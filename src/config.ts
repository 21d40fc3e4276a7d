// Every environment variable AuthGate reads, in one schema: loadConfig(env) -> frozen Config.
import { availableParallelism } from 'node:os'
import { type Static, type TSchema, Type } from 'typebox'
import { Value } from 'typebox/value'
import { defaultActivationDelayMs, SIGNING_ALGORITHMS, type SigningAlgorithm } from './domain/keys.js'
import {
  DatabaseUrlError,
  MAX_POOL_SIZE,
  MAX_STATEMENT_TIMEOUT_MS,
  parseDatabaseUrl,
} from './storage/database-url.js'

export const MAX_WORKERS = 256
// Long enough for a PostgreSQL started beside AuthGate (docker compose, a reboot) to come up;
// short enough that a wrong host fails the start within seconds.
export const DEFAULT_DATABASE_WAIT_SECONDS = 10

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const

// `description` doubles as the message when a value is rejected, so it says what is expected.
const int = (minimum: number, maximum: number) =>
  Type.Integer({ minimum, maximum, description: `an integer from ${minimum} to ${maximum}` })

export const EnvSchema = Type.Object({
  PORT: Type.Optional(int(0, 65535)),
  HOST: Type.Optional(Type.String({ description: 'a host name or address' })),
  DATABASE_URL: Type.Optional(
    Type.String({ description: 'sqlite:///relative.db, sqlite:////abs.db, a path, or postgres://host/db' }),
  ),
  // PostgreSQL only; when set, they win over the URL's pool_size and statement_timeout.
  DATABASE_POOL_SIZE: Type.Optional(int(1, MAX_POOL_SIZE)),
  DATABASE_STATEMENT_TIMEOUT_MS: Type.Optional(int(0, MAX_STATEMENT_TIMEOUT_MS)),
  // How long start-up waits for a database that cannot be reached yet (a PostgreSQL still
  // starting), retrying with a logged warning; 0 fails at the first refusal.
  DATABASE_WAIT_SECONDS: Type.Optional(int(0, 3600)),
  // Optional: throttling counters and the change broadcast in Redis (redis://, rediss://).
  REDIS_URL: Type.Optional(
    // No pattern: a rejected value would be echoed, password and all; parseRedisUrl checks it.
    Type.String({ description: 'a redis:// or rediss:// URL' }),
  ),
  // Every key and channel AuthGate uses in Redis starts with this: several deployments can share one.
  REDIS_KEY_PREFIX: Type.Optional(
    Type.String({ pattern: '^[A-Za-z0-9:._-]{1,64}$', description: 'up to 64 of A-Z a-z 0-9 : . _ -' }),
  ),
  SECRET_KEY: Type.Optional(Type.String()),
  JWT_ALGORITHM: Type.Optional(
    Type.Union(
      SIGNING_ALGORITHMS.map((a) => Type.Literal(a)),
      { description: `one of ${SIGNING_ALGORITHMS.join(', ')}` },
    ),
  ),
  PUBLIC_URL: Type.Optional(
    Type.String({ maxLength: 2048, description: 'an http(s) URL such as https://auth.example.com' }),
  ),
  JWT_ISSUER: Type.Optional(
    Type.String({ maxLength: 2048, pattern: '^\\S+$', description: 'a URL or a string without spaces' }),
  ),
  JWT_AUDIENCE: Type.Optional(
    Type.String({ maxLength: 2048, pattern: '^\\S+$', description: 'a URL or a string without spaces' }),
  ),
  // How long verifiers may cache /.well-known/jwks.json (its Cache-Control max-age).
  JWKS_MAX_AGE_SECONDS: Type.Optional(int(0, 86_400)),
  // How long `keys rotate` publishes the next key before it signs; default: the JWKS max-age + 6 s.
  KEY_ACTIVATION_DELAY_SECONDS: Type.Optional(int(0, 30 * 86_400)),
  ACCESS_TOKEN_EXPIRE_MINUTES: Type.Optional(int(1, 525600)),
  REFRESH_TOKEN_EXPIRE_DAYS: Type.Optional(int(1, 3650)),
  SESSION_MAX_DAYS: Type.Optional(int(1, 3650)),
  REFRESH_REUSE_GRACE_SECONDS: Type.Optional(int(0, 300)),
  // OWASP ASVS 5.0 7.1.2: a documented limit on concurrent sessions per account.
  MAX_SESSIONS_PER_USER: Type.Optional(int(1, 10_000)),
  LOG_LEVEL: Type.Optional(
    Type.Union(
      LOG_LEVELS.map((l) => Type.Literal(l)),
      { description: `one of ${LOG_LEVELS.join(', ')}` },
    ),
  ),
  // OWASP ASVS 2.1.1 / NIST SP 800-63B 5.1.1.2: at least 8 characters, at least 64 allowed.
  PASSWORD_MIN_LENGTH: Type.Optional(int(8, 1024)),
  PASSWORD_MAX_LENGTH: Type.Optional(int(64, 1024)),
  // Days an audit entry is kept; 0 keeps them forever.
  AUDIT_RETENTION_DAYS: Type.Optional(int(0, 36500)),
  RATE_LIMIT: Type.Optional(
    Type.Union([Type.Literal('on'), Type.Literal('off')], { description: 'on or off' }),
  ),
  // OWASP ASVS 2.2.1: no more than 100 failed attempts per account per hour.
  LOGIN_MAX_FAILURES: Type.Optional(int(1, 25)),
  LOGIN_IP_MAX_FAILURES: Type.Optional(int(1, 100_000)),
  THROTTLE_WINDOW_MINUTES: Type.Optional(int(15, 1440)),
  REGISTRATIONS_PER_IP_PER_HOUR: Type.Optional(int(1, 100_000)),
  CORS_ORIGINS: Type.Optional(
    Type.String({ description: 'a comma-separated list of origins, like https://app.example.com' }),
  ),
  // The device cookie's SameSite: strict unless a CORS origin is on another site (then none).
  DEVICE_COOKIE_SAMESITE: Type.Optional(
    Type.Union([Type.Literal('strict'), Type.Literal('lax'), Type.Literal('none')], {
      description: 'strict, lax or none',
    }),
  ),
  // Terminal-friendly one-line logs (pretty) or JSON lines; auto: pretty when stdout is a TTY.
  LOG_FORMAT: Type.Optional(
    Type.Union([Type.Literal('auto'), Type.Literal('pretty'), Type.Literal('json')], {
      description: 'auto, pretty or json',
    }),
  ),
  TRUST_PROXY: Type.Optional(
    Type.String({ description: 'off, on, a hop count, or a comma-separated list of proxy addresses/CIDRs' }),
  ),
  // Concurrent connections per client address (the socket's, not X-Forwarded-For); 0: no cap.
  MAX_CONNECTIONS_PER_IP: Type.Optional(int(0, 1_000_000)),
  WORKERS: Type.Optional(
    Type.String({
      pattern: '^(auto|[0-9]{1,4})$',
      description: `auto or an integer from 1 to ${MAX_WORKERS}`,
    }),
  ),
  // Prometheus metrics on a listener of their own (bound to HOST), never on PORT; unset: none.
  METRICS_PORT: Type.Optional(int(1, 65535)),
})

export type LogLevel = (typeof LOG_LEVELS)[number]

export interface Config {
  readonly port: number
  readonly host: string
  readonly databaseUrl: string
  /** PostgreSQL: connections per process (DATABASE_POOL_SIZE); undefined leaves it to the URL. */
  readonly databasePoolSize: number | undefined
  /** PostgreSQL: statement_timeout in ms, 0 for none (DATABASE_STATEMENT_TIMEOUT_MS). */
  readonly databaseStatementTimeoutMs: number | undefined
  /** DATABASE_WAIT_SECONDS: how long start-up retries a database it cannot reach yet. */
  readonly databaseWaitSeconds: number
  /** REDIS_URL: throttling counters and the change broadcast go to Redis; undefined keeps both in the database. */
  readonly redisUrl: string | undefined
  /** REDIS_KEY_PREFIX: what every key and channel in Redis starts with. */
  readonly redisKeyPrefix: string
  /** From SECRET_KEY; when absent the key is generated once and kept in the database. */
  readonly secretKey: string | undefined
  /**
   * From JWT_ALGORITHM. Undefined means "decide from the database" (domain/keys.ts): HS256 with
   * SECRET_KEY or an already generated HS256 secret, else ES256.
   */
  readonly jwtAlgorithm: SigningAlgorithm | undefined
  /** Where clients reach this server, without a trailing slash: the base of the metadata's URLs. */
  readonly publicUrl: string
  /**
   * The issuer a first start records in the database when neither JWT_ISSUER nor PUBLIC_URL is set
   * (the listen address). Every process then signs as, and accepts, the recorded issuer
   * (domain/deployment.ts), whatever its own port.
   */
  readonly jwtIssuer: string
  /** JWT_ISSUER, else PUBLIC_URL: an issuer set on purpose, which a server makes the deployment's. */
  readonly jwtIssuerExplicit: string | undefined
  /** JWKS_MAX_AGE_SECONDS: the JWKS's Cache-Control max-age. */
  readonly jwksMaxAgeSeconds: number
  /** KEY_ACTIVATION_DELAY_SECONDS, or the JWKS max-age plus the key reload interval and a clock margin. */
  readonly keyActivationDelayMs: number
  /** When set, every token carries this `aud` and must carry it to be accepted. */
  readonly jwtAudience: string | undefined
  readonly accessTokenExpireMinutes: number
  /** A refresh token unused for this long expires. */
  readonly refreshTokenExpireDays: number
  /** No session lives longer than this, however often it refreshes. */
  readonly sessionMaxDays: number
  /** A just-spent refresh token presented again within this window returns the same pair. */
  readonly refreshReuseGraceSeconds: number
  /** Live sessions per user; a login beyond it ends the least recently used one. */
  readonly maxSessionsPerUser: number
  readonly logLevel: LogLevel
  readonly passwordMinLength: number
  readonly passwordMaxLength: number
  /** Audit entries older than this many days are pruned; 0 keeps them forever. */
  readonly auditRetentionDays: number
  readonly throttle: {
    readonly enabled: boolean
    /** Failed logins per account per window from clients without its device cookie (and per device). */
    readonly loginMaxFailures: number
    readonly loginIpMaxFailures: number
    readonly windowMinutes: number
    readonly registrationsPerIpPerHour: number
  }
  /** Origins allowed to call from a browser (CORS); none by default. */
  readonly corsOrigins: string[]
  /** DEVICE_COOKIE_SAMESITE: `none` (always with Secure) lets a cross-site CORS origin keep it. */
  readonly deviceCookieSameSite: 'Strict' | 'Lax' | 'None'
  /** LOG_FORMAT: pretty (one line per request, for people) or json; auto picks by stdout's TTY. */
  readonly logFormat: 'auto' | 'pretty' | 'json'
  /** Fastify's trustProxy: whether and which X-Forwarded-For hops to believe. */
  readonly trustProxy: boolean | number | string[]
  /** Processes serving the port (WORKERS): 1 is one process; more run a node:cluster primary. */
  readonly workers: number
  /** Connections one client address may hold open per process (MAX_CONNECTIONS_PER_IP); 0: no cap. */
  readonly maxConnectionsPerIp: number
  /** METRICS_PORT: where GET /metrics answers in Prometheus's text format; undefined: no listener. */
  readonly metricsPort: number | undefined
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
  const port = env2.PORT ?? 8000
  const host = env2.HOST ?? '127.0.0.1'
  let publicUrl: string
  if (env2.PUBLIC_URL !== undefined) {
    publicUrl = parsePublicUrl(env2.PUBLIC_URL)
  } else {
    // The listen address, as clients on this machine reach it; set PUBLIC_URL behind a proxy.
    publicUrl = `http://${host.includes(':') ? `[${host}]` : host}:${port}`
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
  const trustProxy = parseTrustProxy(env2.TRUST_PROXY)
  const jwksMaxAgeSeconds = env2.JWKS_MAX_AGE_SECONDS ?? 60
  const workers = parseWorkers(env2.WORKERS)
  if (env2.METRICS_PORT !== undefined && env2.METRICS_PORT === port) {
    throw new ConfigError('METRICS_PORT: must differ from PORT (metrics have a listener of their own)')
  }
  return Object.freeze({
    port,
    host,
    databaseUrl,
    databasePoolSize: env2.DATABASE_POOL_SIZE,
    databaseStatementTimeoutMs: env2.DATABASE_STATEMENT_TIMEOUT_MS,
    databaseWaitSeconds: env2.DATABASE_WAIT_SECONDS ?? DEFAULT_DATABASE_WAIT_SECONDS,
    redisUrl: parseRedisUrl(env2.REDIS_URL),
    redisKeyPrefix: env2.REDIS_KEY_PREFIX ?? 'authgate:',
    secretKey: env2.SECRET_KEY,
    jwtAlgorithm: env2.JWT_ALGORITHM,
    publicUrl,
    jwtIssuer: env2.JWT_ISSUER ?? publicUrl,
    jwtIssuerExplicit: env2.JWT_ISSUER ?? (env2.PUBLIC_URL === undefined ? undefined : publicUrl),
    jwksMaxAgeSeconds,
    keyActivationDelayMs:
      env2.KEY_ACTIVATION_DELAY_SECONDS === undefined
        ? defaultActivationDelayMs(jwksMaxAgeSeconds)
        : env2.KEY_ACTIVATION_DELAY_SECONDS * 1000,
    jwtAudience: env2.JWT_AUDIENCE,
    accessTokenExpireMinutes: env2.ACCESS_TOKEN_EXPIRE_MINUTES ?? 30,
    refreshTokenExpireDays,
    sessionMaxDays,
    refreshReuseGraceSeconds: env2.REFRESH_REUSE_GRACE_SECONDS ?? 10,
    maxSessionsPerUser: env2.MAX_SESSIONS_PER_USER ?? 100,
    logLevel: (env2.LOG_LEVEL ?? 'info') as LogLevel,
    passwordMinLength,
    passwordMaxLength,
    auditRetentionDays: env2.AUDIT_RETENTION_DAYS ?? 365,
    throttle: Object.freeze({
      enabled: env2.RATE_LIMIT !== 'off',
      loginMaxFailures: env2.LOGIN_MAX_FAILURES ?? 10,
      loginIpMaxFailures: env2.LOGIN_IP_MAX_FAILURES ?? 100,
      windowMinutes: env2.THROTTLE_WINDOW_MINUTES ?? 15,
      registrationsPerIpPerHour: env2.REGISTRATIONS_PER_IP_PER_HOUR ?? 30,
    }),
    trustProxy,
    corsOrigins: parseOrigins(env2.CORS_ORIGINS),
    deviceCookieSameSite: ({ strict: 'Strict', lax: 'Lax', none: 'None' } as const)[
      env2.DEVICE_COOKIE_SAMESITE ?? 'strict'
    ],
    logFormat: env2.LOG_FORMAT ?? 'auto',
    workers,
    maxConnectionsPerIp: env2.MAX_CONNECTIONS_PER_IP ?? 256,
    metricsPort: env2.METRICS_PORT,
  })
}

function parseWorkers(value: string | undefined): number {
  if (value === undefined) return 1
  if (value === 'auto') return Math.min(availableParallelism(), MAX_WORKERS)
  const n = Number(value)
  if (n < 1 || n > MAX_WORKERS) {
    throw new ConfigError(
      `WORKERS: expected auto or an integer from 1 to ${MAX_WORKERS}, got ${JSON.stringify(value)}`,
    )
  }
  return n
}

function parseRedisUrl(value: string | undefined): string | undefined {
  if (value === undefined) return undefined
  try {
    const url = new URL(value)
    if ((url.protocol === 'redis:' || url.protocol === 'rediss:') && url.hostname) return value
  } catch {
    // reported below
  }
  // Never echoes the value: it may hold a password.
  throw new ConfigError('REDIS_URL: expected a redis://[user:password@]host[:port][/db] or rediss:// URL')
}

function parseOrigins(value: string | undefined): string[] {
  if (value === undefined) return []
  const origins = value
    .split(',')
    .map((v) => v.trim())
    .filter(Boolean)
  for (const origin of origins) {
    let parsed: URL | undefined
    try {
      parsed = new URL(origin)
    } catch {
      parsed = undefined
    }
    if (!parsed || parsed.origin !== origin) {
      throw new ConfigError(
        `CORS_ORIGINS: ${JSON.stringify(origin)} is not an origin like https://app.example.com`,
      )
    }
  }
  return origins
}

function parseTrustProxy(value: string | undefined): boolean | number | string[] {
  if (value === undefined || value === 'off' || value === 'false') return false
  if (value === 'on' || value === 'true') return true
  if (/^\d+$/.test(value)) return Number(value)
  const list = value.split(',').map((v) => v.trim())
  if (list.some((v) => !/^[0-9a-fA-F:.]+(\/\d{1,3})?$/.test(v))) {
    throw new ConfigError(
      `TRUST_PROXY: expected off, on, a hop count or addresses/CIDRs, got ${JSON.stringify(value)}`,
    )
  }
  return list
}

/** An absolute http(s) URL without query or fragment, returned without a trailing slash. */
function parsePublicUrl(text: string): string {
  let url: URL
  try {
    url = new URL(text)
  } catch {
    throw new ConfigError(`PUBLIC_URL: expected an http(s) URL, got ${JSON.stringify(text)}`)
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.search || url.hash || url.username) {
    throw new ConfigError(
      `PUBLIC_URL: expected an http(s) URL without query, fragment or credentials, got ${JSON.stringify(text)}`,
    )
  }
  return url.href.replace(/\/+$/, '')
}

/** Loads ./.env into process.env when present; variables already set win. */
export function loadDotEnv(path = '.env'): void {
  try {
    process.loadEnvFile(path)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
}
