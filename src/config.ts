// Every environment variable AuthGate reads, declared once in VARIABLES: its schema, its default
// and the Config field it fills. EnvSchema and the Config type are derived from that table, and
// test/unit/config.test.ts holds the README's table to it.
import { availableParallelism } from 'node:os'
import {
  type Static,
  type TLiteral,
  type TObject,
  type TOptional,
  type TSchema,
  type TUnion,
  Type,
} from 'typebox'
import { Value } from 'typebox/value'
import { defaultActivationDelayMs, SIGNING_ALGORITHMS } from './domain/keys.js'
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
// RFC 7518 §3.2: an HS256 key must be at least as long as the hash output (256 bits).
export const MIN_SECRET_KEY_BYTES = 32

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const
export type LogLevel = (typeof LOG_LEVELS)[number]

export class ConfigError extends Error {
  override name = 'ConfigError'
}

/**
 * One environment variable. The schema's `description` doubles as the message when a value is
 * rejected, so it says what is expected. `field` is the Config field it fills (`throttle.x`: one in
 * Config.throttle), from the value or the default, through `parse` when the field's type differs;
 * a variable without a field is read by derive().
 */
interface Variable<S extends TSchema = TSchema, F extends string = string, T = unknown> {
  readonly schema: S
  readonly field?: F
  readonly default?: Static<S>
  readonly parse?: (value: never) => T
}

function variable<S extends TSchema>(schema: S): Variable<S, never, never>
function variable<S extends TSchema, const F extends string, T>(
  schema: S,
  options: { field: F; default: Static<S>; parse: (value: Static<S>) => T },
): Variable<S, F, T>
function variable<S extends TSchema, const F extends string, T>(
  schema: S,
  options: { field: F; parse: (value: Static<S> | undefined) => T },
): Variable<S, F, T>
function variable<S extends TSchema, const F extends string>(
  schema: S,
  options: { field: F; default: Static<S> },
): Variable<S, F, Static<S>>
function variable<S extends TSchema, const F extends string>(
  schema: S,
  options: { field: F },
): Variable<S, F, Static<S> | undefined>
function variable(schema: TSchema, options: Omit<Variable, 'schema'> = {}): Variable {
  return { schema, ...options }
}

const int = (minimum: number, maximum: number) =>
  Type.Integer({ minimum, maximum, description: `an integer from ${minimum} to ${maximum}` })
// The cast keeps the literals' tuple, which .map loses, so Static<> is their union.
const oneOf = <const L extends readonly string[]>(literals: L, description: string) =>
  Type.Union(
    literals.map((l) => Type.Literal(l)),
    { description },
  ) as unknown as TUnion<{ -readonly [I in keyof L]: TLiteral<L[I]> }>

// The order is the CLI's help order (cli/program.ts); the README's table follows its own.
export const VARIABLES = {
  PORT: variable(int(0, 65535), { field: 'port', default: 8000 }),
  HOST: variable(Type.String({ description: 'a host name or address' }), {
    field: 'host',
    default: '127.0.0.1',
  }),
  DATABASE_URL: variable(
    Type.String({ description: 'sqlite:///relative.db, sqlite:////abs.db, a path, or postgres://host/db' }),
    { field: 'databaseUrl', default: 'sqlite:///./data/authgate.db', parse: checkDatabaseUrl },
  ),
  // PostgreSQL only; when set, they win over the URL's pool_size and statement_timeout.
  /** PostgreSQL: connections per process; undefined leaves it to the URL. */
  DATABASE_POOL_SIZE: variable(int(1, MAX_POOL_SIZE), { field: 'databasePoolSize' }),
  /** PostgreSQL: statement_timeout in ms, 0 for none; undefined leaves it to the URL. */
  DATABASE_STATEMENT_TIMEOUT_MS: variable(int(0, MAX_STATEMENT_TIMEOUT_MS), {
    field: 'databaseStatementTimeoutMs',
  }),
  /**
   * How long start-up waits for a database that cannot be reached yet (a PostgreSQL still
   * starting), retrying with a logged warning; 0 fails at the first refusal.
   */
  DATABASE_WAIT_SECONDS: variable(int(0, 3600), {
    field: 'databaseWaitSeconds',
    default: DEFAULT_DATABASE_WAIT_SECONDS,
  }),
  /** Throttling counters and the change broadcast go to Redis; undefined keeps both in the database. */
  REDIS_URL: variable(
    // No pattern: a rejected value would be echoed, password and all; parseRedisUrl checks it.
    Type.String({ description: 'a redis:// or rediss:// URL' }),
    { field: 'redisUrl', parse: parseRedisUrl },
  ),
  /** Every key and channel AuthGate uses in Redis starts with this: several deployments can share one. */
  REDIS_KEY_PREFIX: variable(
    Type.String({ pattern: '^[A-Za-z0-9:._-]{1,64}$', description: 'up to 64 of A-Z a-z 0-9 : . _ -' }),
    { field: 'redisKeyPrefix', default: 'authgate:' },
  ),
  /** When absent the key is generated once and kept in the database. */
  SECRET_KEY: variable(Type.String(), { field: 'secretKey', parse: checkSecretKey }),
  /**
   * The key TOTP secrets are sealed under (domain/mfa.ts), which must not live in the database: a
   * dump of it alone must not give the secrets. Comma-separated to rotate: the first seals, all
   * open. Unset: nobody can enrol TOTP (and a user who did cannot finish signing in).
   */
  MFA_ENCRYPTION_KEY: variable(
    Type.String({ description: 'one or more keys of 32+ bytes, comma-separated' }),
    {
      field: 'mfaEncryptionKeys',
      parse: checkMfaKeys,
    },
  ),
  /** Where mail goes (verification and reset links): nodemailer's smtp:// or smtps:// URL. */
  SMTP_URL: variable(
    // No pattern: a rejected value would be echoed, password and all.
    Type.String({ description: 'an smtp:// or smtps:// URL' }),
    { field: 'smtpUrl', parse: checkSmtpUrl },
  ),
  /** The From of those mails. */
  MAIL_FROM: variable(Type.String({ maxLength: 256, description: 'an address, or a name and <address>' }), {
    field: 'mailFrom',
  }),
  /** `production` turns off what is only for development: mail written to the log without SMTP_URL. */
  NODE_ENV: variable(Type.String({ maxLength: 32, description: 'production, development or test' }), {
    field: 'nodeEnv',
  }),
  /**
   * Undefined means "decide from the database" (domain/keys.ts): HS256 with SECRET_KEY or an
   * already generated HS256 secret, else ES256.
   */
  JWT_ALGORITHM: variable(oneOf(SIGNING_ALGORITHMS, `one of ${SIGNING_ALGORITHMS.join(', ')}`), {
    field: 'jwtAlgorithm',
  }),
  // PUBLIC_URL, JWT_ISSUER: read by derive().
  PUBLIC_URL: variable(
    Type.String({ maxLength: 2048, description: 'an http(s) URL such as https://auth.example.com' }),
  ),
  JWT_ISSUER: variable(
    Type.String({ maxLength: 2048, pattern: '^\\S+$', description: 'a URL or a string without spaces' }),
  ),
  /** When set, every token carries this `aud` and must carry it to be accepted. */
  JWT_AUDIENCE: variable(
    Type.String({ maxLength: 2048, pattern: '^\\S+$', description: 'a URL or a string without spaces' }),
    { field: 'jwtAudience' },
  ),
  /** How long verifiers may cache /.well-known/jwks.json: its Cache-Control max-age. */
  JWKS_MAX_AGE_SECONDS: variable(int(0, 86_400), { field: 'jwksMaxAgeSeconds', default: 60 }),
  // How long `keys rotate` publishes the next key before it signs: read by derive().
  KEY_ACTIVATION_DELAY_SECONDS: variable(int(0, 30 * 86_400)),
  ACCESS_TOKEN_EXPIRE_MINUTES: variable(int(1, 525600), { field: 'accessTokenExpireMinutes', default: 30 }),
  /** A refresh token unused for this long expires. */
  REFRESH_TOKEN_EXPIRE_DAYS: variable(int(1, 3650), { field: 'refreshTokenExpireDays', default: 7 }),
  /** No session lives longer than this, however often it refreshes. */
  SESSION_MAX_DAYS: variable(int(1, 3650), { field: 'sessionMaxDays', default: 30 }),
  /** A just-spent refresh token presented again within this window returns the same pair. */
  REFRESH_REUSE_GRACE_SECONDS: variable(int(0, 300), { field: 'refreshReuseGraceSeconds', default: 10 }),
  /**
   * Live sessions per user; a login beyond it ends the least recently used one. OWASP ASVS 5.0
   * 7.1.2: a documented limit on concurrent sessions per account.
   */
  MAX_SESSIONS_PER_USER: variable(int(1, 10_000), { field: 'maxSessionsPerUser', default: 100 }),
  LOG_LEVEL: variable(oneOf(LOG_LEVELS, `one of ${LOG_LEVELS.join(', ')}`), {
    field: 'logLevel',
    default: 'info',
  }),
  // OWASP ASVS 2.1.1 / NIST SP 800-63B 5.1.1.2: at least 8 characters, at least 64 allowed.
  PASSWORD_MIN_LENGTH: variable(int(8, 1024), { field: 'passwordMinLength', default: 8 }),
  PASSWORD_MAX_LENGTH: variable(int(64, 1024), { field: 'passwordMaxLength', default: 128 }),
  /** Audit entries older than this many days are pruned; 0 keeps them forever. */
  AUDIT_RETENTION_DAYS: variable(int(0, 36500), { field: 'auditRetentionDays', default: 365 }),
  RATE_LIMIT: variable(oneOf(['on', 'off'], 'on or off'), {
    field: 'throttle.enabled',
    default: 'on',
    parse: (value) => value === 'on',
  }),
  /**
   * Failed logins per account per window from clients without its device cookie (and per device).
   * OWASP ASVS 2.2.1: no more than 100 failed attempts per account per hour.
   */
  LOGIN_MAX_FAILURES: variable(int(1, 25), { field: 'throttle.loginMaxFailures', default: 10 }),
  LOGIN_IP_MAX_FAILURES: variable(int(1, 100_000), { field: 'throttle.loginIpMaxFailures', default: 100 }),
  THROTTLE_WINDOW_MINUTES: variable(int(15, 1440), { field: 'throttle.windowMinutes', default: 15 }),
  REGISTRATIONS_PER_IP_PER_HOUR: variable(int(1, 100_000), {
    field: 'throttle.registrationsPerIpPerHour',
    default: 30,
  }),
  /** Origins allowed to call from a browser (CORS); none by default. */
  CORS_ORIGINS: variable(
    Type.String({ description: 'a comma-separated list of origins, like https://app.example.com' }),
    { field: 'corsOrigins', parse: parseOrigins },
  ),
  /**
   * The device cookie's SameSite: strict unless a CORS origin is on another site, which needs
   * `none` (always with Secure) to keep it.
   */
  DEVICE_COOKIE_SAMESITE: variable(oneOf(['strict', 'lax', 'none'], 'strict, lax or none'), {
    field: 'deviceCookieSameSite',
    default: 'strict',
    parse: (value) => (({ strict: 'Strict', lax: 'Lax', none: 'None' }) as const)[value],
  }),
  /** Terminal-friendly one-line logs (pretty) or JSON lines; auto: pretty when stdout is a TTY. */
  LOG_FORMAT: variable(oneOf(['auto', 'pretty', 'json'], 'auto, pretty or json'), {
    field: 'logFormat',
    default: 'auto',
  }),
  /** Fastify's trustProxy: whether and which X-Forwarded-For hops to believe. */
  TRUST_PROXY: variable(
    Type.String({ description: 'off, on, a hop count, or a comma-separated list of proxy addresses/CIDRs' }),
    { field: 'trustProxy', default: 'off', parse: parseTrustProxy },
  ),
  /** Concurrent connections per client address (the socket's, not X-Forwarded-For), per process; 0: no cap. */
  MAX_CONNECTIONS_PER_IP: variable(int(0, 1_000_000), { field: 'maxConnectionsPerIp', default: 256 }),
  /** Processes serving the port: 1 is one process; more run a node:cluster primary. */
  WORKERS: variable(
    Type.String({
      pattern: '^(auto|[0-9]{1,4})$',
      description: `auto or an integer from 1 to ${MAX_WORKERS}`,
    }),
    { field: 'workers', default: '1', parse: parseWorkers },
  ),
  /** Prometheus metrics on a listener of their own (bound to HOST), never on PORT; undefined: none. */
  METRICS_PORT: variable(int(1, 65535), { field: 'metricsPort' }),
}

type Variables = typeof VARIABLES
type ValueOf<V> = V extends Variable<TSchema, string, infer T> ? T : never
/** Config's own fields, `throttle.x` ones aside. */
type Fields = {
  readonly [K in keyof Variables as Variables[K] extends Variable<TSchema, infer F>
    ? F extends `${string}.${string}`
      ? never
      : F
    : never]: ValueOf<Variables[K]>
}
/** The fields under `group.`, such as Config.throttle's. */
type Group<G extends string> = {
  readonly [K in keyof Variables as Variables[K] extends Variable<TSchema, infer F>
    ? F extends `${G}.${infer N}`
      ? N
      : never
    : never]: ValueOf<Variables[K]>
}
/** The environment as read: each variable checked against its schema, unset ones absent. */
type Env = { readonly [K in keyof Variables]?: Static<Variables[K]['schema']> }

export const EnvSchema = Type.Object(
  Object.fromEntries(Object.entries(VARIABLES).map(([name, v]) => [name, Type.Optional(v.schema)])),
) as TObject<{ [K in keyof Variables]: TOptional<Variables[K]['schema']> }>

export interface Config extends Fields, Derived {
  readonly throttle: Group<'throttle'>
}

/** The fields computed from several variables. */
type Derived = ReturnType<typeof derive>
function derive(fields: Fields, env: Env) {
  const publicUrl =
    env.PUBLIC_URL === undefined
      ? // The listen address, as clients on this machine reach it; set PUBLIC_URL behind a proxy.
        `http://${fields.host.includes(':') ? `[${fields.host}]` : fields.host}:${fields.port}`
      : parsePublicUrl(env.PUBLIC_URL)
  return {
    /** Where clients reach this server, without a trailing slash: the base of the metadata's URLs. */
    publicUrl,
    /**
     * The issuer a first start records in the database when neither JWT_ISSUER nor PUBLIC_URL is
     * set (the listen address). Every process then signs as, and accepts, the recorded issuer
     * (domain/deployment.ts), whatever its own port.
     */
    jwtIssuer: env.JWT_ISSUER ?? publicUrl,
    /** JWT_ISSUER, else PUBLIC_URL: an issuer set on purpose, which a server makes the deployment's. */
    jwtIssuerExplicit: env.JWT_ISSUER ?? (env.PUBLIC_URL === undefined ? undefined : publicUrl),
    /** KEY_ACTIVATION_DELAY_SECONDS, or the JWKS max-age plus the key reload interval and a clock margin. */
    keyActivationDelayMs:
      env.KEY_ACTIVATION_DELAY_SECONDS === undefined
        ? defaultActivationDelayMs(fields.jwksMaxAgeSeconds)
        : env.KEY_ACTIVATION_DELAY_SECONDS * 1000,
  } as const
}

/** Builds the configuration from an environment; throws ConfigError naming the offending variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const read = readEnv(env)
  const fields: Record<string, unknown> = {}
  const groups: Record<string, Record<string, unknown>> = {}
  for (const [name, v] of Object.entries(VARIABLES) as [keyof Variables, Variable][]) {
    if (v.field === undefined) continue
    const value = read[name] ?? v.default
    const result = v.parse === undefined ? value : v.parse(value as never)
    const [field, member] = v.field.split('.') as [string, string?]
    if (member === undefined) fields[field] = result
    else groups[field] = { ...groups[field], [member]: result }
  }
  const config = fields as Fields
  if (config.sessionMaxDays < config.refreshTokenExpireDays) {
    throw new ConfigError('SESSION_MAX_DAYS: must not be shorter than REFRESH_TOKEN_EXPIRE_DAYS')
  }
  if (config.passwordMaxLength < config.passwordMinLength) {
    throw new ConfigError('PASSWORD_MAX_LENGTH: must not be smaller than PASSWORD_MIN_LENGTH')
  }
  if (config.metricsPort !== undefined && config.metricsPort === config.port) {
    throw new ConfigError('METRICS_PORT: must differ from PORT (metrics have a listener of their own)')
  }
  for (const [name, group] of Object.entries(groups)) fields[name] = Object.freeze(group)
  return Object.freeze({ ...config, ...derive(config, read) }) as Config
}

/** The set variables, each converted and checked against its schema. Empty strings count as unset. */
function readEnv(env: NodeJS.ProcessEnv): Env {
  const read: Record<string, unknown> = {}
  for (const [name, { schema }] of Object.entries(VARIABLES) as [string, Variable][]) {
    const text = env[name]
    if (text === undefined || text === '') continue
    const { type, description } = schema as { type?: string; description?: string }
    // Value.Convert would round "1.5" to 1; an integer variable takes digits only.
    const value = type === 'integer' && /^\d+$/.test(text) ? Number(text) : text
    if (!Value.Check(schema, value)) {
      throw new ConfigError(`${name}: expected ${description}, got ${JSON.stringify(text)}`)
    }
    read[name] = value
  }
  return read as Env
}

function checkSecretKey(value: string | undefined): string | undefined {
  if (value !== undefined && Buffer.byteLength(value) < MIN_SECRET_KEY_BYTES) {
    throw new ConfigError(
      `SECRET_KEY: must be at least ${MIN_SECRET_KEY_BYTES} bytes (try: openssl rand -hex 32), or unset it to let AuthGate generate one`,
    )
  }
  return value
}

function checkSmtpUrl(value: string | undefined): string | undefined {
  if (value === undefined) return undefined
  if (!URL.canParse(value) || !/^smtps?:$/.test(new URL(value).protocol))
    throw new ConfigError('SMTP_URL: expected an smtp:// or smtps:// URL (smtp://user:password@host:587)')
  return value
}

function checkMfaKeys(value: string | undefined): readonly string[] {
  const keys = value === undefined ? [] : value.split(',').map((k) => k.trim())
  if (keys.some((k) => Buffer.byteLength(k) < MIN_SECRET_KEY_BYTES)) {
    throw new ConfigError(
      `MFA_ENCRYPTION_KEY: each key must be at least ${MIN_SECRET_KEY_BYTES} bytes (try: openssl rand -hex 32)`,
    )
  }
  return Object.freeze(keys)
}

function checkDatabaseUrl(value: string): string {
  try {
    parseDatabaseUrl(value)
  } catch (err) {
    if (err instanceof DatabaseUrlError) throw new ConfigError(`DATABASE_URL: ${err.message}`)
    throw err
  }
  return value
}

function parseWorkers(value: string): number {
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

function parseTrustProxy(value: string): boolean | number | string[] {
  if (value === 'off' || value === 'false') return false
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
