// Opens the database, migrates it, and wires the domain services; shared by the app and the CLI.
// Three parts, at the end of the file: the infrastructure (database, Redis, broadcast), the domain
// wired on it, and the background jobs a server starts; openServices puts them together.
import { type Config, ConfigError } from './config.js'
import { type AccountService, createAccountService } from './domain/account.js'
import type { AuditFacts } from './domain/audit-chain.js'
import { type AuditService, createAuditService } from './domain/audit-writer.js'
import { type AuthService, createAuthService } from './domain/auth.js'
import {
  type AuthorizationCodeService,
  createAuthorizationCodeService,
} from './domain/authorization-codes.js'
import { type AuthorizeService, createAuthorizeService } from './domain/authorize.js'
import { type Broadcast, type Channel, createBroadcast } from './domain/broadcast.js'
import { type BrowserSessionService, createBrowserSessionService } from './domain/browser-sessions.js'
import { type ClientAuthenticator, createClientAuthenticator } from './domain/client-auth.js'
import { type ClientTokenService, createClientTokenService } from './domain/client-tokens.js'
import { type ClientService, createClientService } from './domain/clients.js'
import { type CodeExchange, createCodeExchange } from './domain/code-exchange.js'
import { type ConsentService, createConsentService, endClientSessionsOf } from './domain/consents.js'
import { type CsrfTokens, createCsrfTokens } from './domain/csrf.js'
import {
  type IssuerView,
  openIssuers,
  SettingsConflictError,
  type SettingsMode,
  type SigningRecord,
  settleSigning,
} from './domain/deployment.js'
import { createEmailService, type EmailService, type Mail, type Mailer } from './domain/email.js'
import { createIdTokens, type IdTokens } from './domain/id-tokens.js'
import { createIntrospection, type IntrospectionService } from './domain/introspection.js'
import {
  DEFAULT_KEY_RELOAD_MS,
  type KeyAdmin,
  type KeyRing,
  openKeyAdmin,
  openKeyRing,
  RETIREMENT_SLACK_MS,
} from './domain/keys.js'
import { createLogout, type LogoutService } from './domain/logout.js'
import { type Meter, noMeter } from './domain/meter.js'
import { createMfaService, createTotpSealer, type MfaService } from './domain/mfa.js'
import { createPasskeyService, type PasskeyService, relyingPartyOf } from './domain/passkeys.js'
import { createPasswordHasher, type PasswordHasher } from './domain/passwords.js'
import { createRevocationView, type RevocationView } from './domain/revocations.js'
import { createSessionService, type SessionService, type SessionServiceDeps } from './domain/sessions.js'
import { createThrottle, DEFAULT_THROTTLE, failoverThrottleStore, type Throttle } from './domain/throttle.js'
import { createTokenRevocation, type TokenRevocation } from './domain/token-revocation.js'
import { createTokenService, type TokenService } from './domain/tokens.js'
import { createUserInfo, type UserInfoService } from './domain/userinfo.js'
import { createUserService, type UserService } from './domain/users.js'
import { type Clock, systemClock } from './lib/clock.js'
import { every, type Periodic } from './lib/periodic.js'
import { randomSecret } from './lib/random.js'
import { mailerFor } from './mail.js'
import { createAuditStore } from './storage/audit.repository.js'
import { createAuthorizationCodesRepository } from './storage/authorization-codes.repository.js'
import { createClientsRepository } from './storage/clients.repository.js'
import { createConsentsRepository } from './storage/consents.repository.js'
import { createCredentialsRepository } from './storage/credentials.repository.js'
import { connectDatabase, createDatabase, type Db, dialectOf } from './storage/database.js'
import { DatabaseOpenError, describeDatabase, parseDatabaseUrl } from './storage/database-url.js'
import { createDevicesRepository } from './storage/devices.repository.js'
import { createEmailRepository } from './storage/email.repository.js'
import { createKeysRepository } from './storage/keys.repository.js'
import { createMfaRepository } from './storage/mfa.repository.js'
import { migrateAtStartup, type StartupMigration } from './storage/migrate.js'
import { createPasskeysRepository } from './storage/passkeys.repository.js'
import { createPostgresChannel } from './storage/pg-notify.js'
import { createRedisChannel, createRedisThrottleStore, openRedis, type RedisLink } from './storage/redis.js'
import { createRevocationFeed, createSessionsRepository } from './storage/sessions.repository.js'
import { createSettingsRepository } from './storage/settings.repository.js'
import { createThrottleStore } from './storage/throttle.repository.js'
import { createUsersRepository } from './storage/users.repository.js'

export interface ServiceDeps {
  /** Tests that are not about hashing inject cheaper argon2 parameters here. */
  hasher?: PasswordHasher
  clock?: Clock
  /**
   * How often the revocation view reads the feed that other processes write to. Default: every
   * second on PostgreSQL, a backstop behind the signals (NOTIFY is there even when Redis is not);
   * every 250 ms on SQLite, where no signal comes while Redis is away (an indexed local read).
   */
  revocationPollMs?: number
  onRevocationPollError?: (err: unknown) => void
  /** No broadcast channel took a signal, or the PostgreSQL listener lost its connection. */
  onBroadcastError?: (err: unknown) => void
  /** Redis went away (its work falls back to the database) or came back. */
  onRedisStateChange?: (up: boolean, err?: unknown) => void
  /** How often the key ring re-reads the signing keys and the issuer, to notice a change made elsewhere. */
  keyReloadMs?: number
  /**
   * A server adopts an explicit JWT_ALGORITHM, JWT_ISSUER or PUBLIC_URL into the deployment's
   * recorded settings ('adopt', what buildApp passes); the CLI only records them on a first start
   * ('record', the default). See domain/deployment.ts.
   */
  settingsMode?: SettingsMode
  /** A deployment setting changed (or another process changed it): for the log. */
  onSettingsNote?: (message: string) => void
  onKeyReloadError?: (err: unknown) => void
  onThrottlePruneError?: (err: unknown) => void
  onCodePruneError?: (err: unknown) => void
  /** An audit write or prune failed; `lost` are the events not stored. Default: ignored. */
  onAuditError?: (err: unknown, lost: readonly AuditFacts[]) => void
  /** Sends the verification and reset mails; by default SMTP_URL's, or the log in development. */
  mailer?: Mailer
  /** A mail written to the log instead of sent (development without SMTP_URL). */
  onDevelopmentMail?: (mail: Mail) => void
  /** A mail that could not be sent (after the request was answered). */
  onMailError?: (err: unknown) => void
  /** Counts logins, refreshes, sign-ups, revocations and throttling (METRICS_PORT); none by default. */
  meter?: Meter
  /** A database query failed or a connection could not be made (the metrics). */
  onDatabaseError?: (err: unknown) => void
  /** The database cannot be reached yet at start-up: retried for DATABASE_WAIT_SECONDS. */
  onDatabaseRetry?: (info: { database: string; attempt: number; err: unknown; giveUpInMs: number }) => void
}

/** What the domain runs on: opened first, closed last (in reverse order of opening). */
export interface Infrastructure {
  db: Db
  /** REDIS_URL's connection, when set. */
  redis: RedisLink | undefined
  /** Tells the deployment's other processes about revocations and key rotations. */
  broadcast: Broadcast
  /** What opening did, for the start-up line: the database (redacted) and the migrations applied. */
  opened: { database: string } & StartupMigration
}

/** The domain services, wired on the infrastructure; none of them runs a timer until start(). */
export interface DomainServices {
  users: UserService
  tokens: TokenService
  sessions: SessionService
  /** AuthGate's own browser sessions (single sign-on), ended like every other session. */
  browserSessions: BrowserSessionService
  /** RP-initiated logout's checks (the end_session_endpoint). */
  logout: LogoutService
  account: AccountService
  auth: AuthService
  /** The second factor: TOTP, recovery codes, and the mfa_token of a sign-in's second step. */
  mfa: MfaService
  /** Passkeys (WebAuthn): registration, passwordless sign-in, the credential list. */
  passkeys: PasskeyService
  /** Email addresses, their verification, and password reset by mail. */
  email: EmailService
  throttle: Throttle
  /** record() for events; flush() before the database closes; retention, verify, export. */
  audit: AuditService
  /** Not yet polling: the app starts it when it starts serving. */
  revocations: RevocationView
  /** The signing keys; not yet polling either. */
  keys: KeyRing
  /** ID tokens (OpenID Connect Core §2), RS256 by default; for the code exchange. */
  idTokens: IdTokens
  /** The OAuth client registry (domain/clients.ts). */
  clients: ClientService
  /** Client authentication at the token, introspection and revocation endpoints. */
  clientAuth: ClientAuthenticator
  /** The client credentials grant's access tokens (RFC 9068). */
  clientTokens: ClientTokenService
  /** RFC 7662, from the same in-memory view as GET /. */
  introspection: IntrospectionService
  /** RFC 7009: the first-party path, and clients revoking their own tokens. */
  tokenRevocation: TokenRevocation
  /** The deployment's algorithm, as recorded in the database. */
  signing: SigningRecord
  /** The deployment's issuer (the one tokens carry, and the previous ones still accepted). */
  issuers: IssuerView
  /** The pages' CSRF tokens, under a secret every process on the database shares. */
  csrf: CsrfTokens
  /** Authorization codes: issued by /authorize, redeemed by the token endpoint. */
  authorizationCodes: AuthorizationCodeService
  /** The token endpoint's authorization_code grant. */
  codeExchange: CodeExchange
  userinfo: UserInfoService
  /** Remembered consents, per user and client. */
  consents: ConsentService
  /** The authorization endpoint and the consent page's rules. */
  authorize: AuthorizeService
}

export interface Services extends Infrastructure, DomainServices {
  /** Starts the background work a server needs: listening, polling, reloading, retention, pruning. */
  start(): Promise<void>
  /** Stops it, writes what the audit log still holds, and closes every connection. */
  close(): Promise<void>
}

const DAY_MS = 86_400_000

/** The database DATABASE_URL names, with the pool settings from the environment. Not migrated. */
export function openDatabase(config: Config, onError?: (err: unknown) => void): Db {
  return createDatabase(config.databaseUrl, {
    poolSize: config.databasePoolSize,
    statementTimeoutMs: config.databaseStatementTimeoutMs,
    onError,
  })
}

/** The audit log on `db`, with retention from config; also used alone by `authgate audit`. */
export function openAudit(
  db: Db,
  config: Config,
  clock: Clock = systemClock,
  onError?: (err: unknown, lost: readonly AuditFacts[]) => void,
): AuditService {
  return createAuditService({
    store: createAuditStore(db),
    clock,
    retentionDays: config.auditRetentionDays,
    ...(onError ? { onError } : {}),
  })
}

/** A contradiction between the environment and the database is a configuration error: exit 1, say what to do. */
async function asConfigError<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run()
  } catch (err) {
    if (err instanceof SettingsConflictError) throw new ConfigError(err.message)
    throw err
  }
}

/**
 * The deployment's signing algorithm, as recorded in the database (recorded now on a first start,
 * unless `mode` is 'read'); throws ConfigError when the environment contradicts it.
 */
export function openSigningSettings(
  db: Db,
  config: Config,
  mode: SettingsMode,
): Promise<SigningRecord & { notes: string[] }> {
  return asConfigError(() =>
    settleSigning({
      mode,
      configured: config.jwtAlgorithm,
      secretKeySet: config.secretKey !== undefined,
      settings: createSettingsRepository(db),
      currentKeyAlg: async () => (await createKeysRepository(db).currentKey())?.alg,
    }),
  )
}

/**
 * The key operations alone, for `authgate keys`: nothing else opened, no key made until asked.
 * The algorithm is the deployment's (`mode` 'read' for list, 'record' for rotate), never the
 * CLI's own environment's: an environment that contradicts it is a ConfigError.
 */
export async function openKeys(
  db: Db,
  config: Config,
  clock: Clock = systemClock,
  mode: SettingsMode = 'record',
): Promise<KeyAdmin> {
  const signing = await openSigningSettings(db, config, mode)
  return openKeyAdmin({
    configured: signing.alg,
    secretKey: config.secretKey,
    settings: { get: (key) => createSettingsRepository(db).get(key) },
    keys: createKeysRepository(db),
    clock,
    accessTtlMs: config.accessTokenExpireMinutes * 60_000,
    activationDelayMs: config.keyActivationDelayMs,
  })
}

/**
 * The broadcast channels this deployment has, in the order they are tried: Redis pub/sub when
 * REDIS_URL is set, then PostgreSQL's NOTIFY when the database is PostgreSQL. SQLite alone has
 * none; its processes (WORKERS) read the revocation feed often instead.
 */
export async function openBroadcast(
  config: Config,
  db: Db,
  deps: Pick<ServiceDeps, 'onBroadcastError' | 'onRedisStateChange'> = {},
): Promise<{ broadcast: Broadcast; redis: RedisLink | undefined }> {
  const redis = config.redisUrl
    ? await openRedis(config.redisUrl, config.redisKeyPrefix, {
        ...(deps.onRedisStateChange ? { onStateChange: deps.onRedisStateChange } : {}),
      })
    : undefined
  const onError = deps.onBroadcastError ? { onError: deps.onBroadcastError } : {}
  const channels: Channel[] = []
  if (redis) channels.push(createRedisChannel(redis))
  if (dialectOf(db) === 'postgres') channels.push(createPostgresChannel(db, config.databaseUrl, onError))
  return { broadcast: createBroadcast(channels, onError), redis }
}

// ---- the lifecycle ---------------------------------------------------------------------------
// openServices opens the infrastructure, wires the domain on it, and lists the background jobs;
// start() starts the jobs in list order; close() stops them in reverse, flushes the audit log and
// closes the infrastructure in reverse order of opening.

/** The database (connected, then migrated), Redis and the broadcast channels; none listening yet. */
async function openInfrastructure(config: Config, deps: ServiceDeps): Promise<Infrastructure> {
  const db = openDatabase(config, deps.onDatabaseError)
  const database = describeDatabase(parseDatabaseUrl(config.databaseUrl))
  try {
    await connectDatabase(db, config.databaseUrl, {
      waitMs: config.databaseWaitSeconds * 1000,
      ...(deps.onDatabaseRetry ? { onRetry: deps.onDatabaseRetry } : {}),
    })
    const migrated = await migrateAtStartup(db).catch((err: unknown) => {
      throw new DatabaseOpenError(
        `DATABASE_URL (${database}): migrating the database failed: ${err instanceof Error ? err.message : err}`,
        { cause: err },
      )
    })
    const { broadcast, redis } = await openBroadcast(config, db, deps)
    return { db, redis, broadcast, opened: { database, ...migrated } }
  } catch (err) {
    await db.destroy()
    throw err
  }
}

/** In reverse order of opening. The broadcast's close ends its listening, once its last signals are out. */
async function closeInfrastructure({ db, redis, broadcast }: Infrastructure): Promise<void> {
  await broadcast.close()
  await redis?.close()
  await db.destroy()
}

/**
 * The domain services on opened infrastructure. It reads and records settings (canonical names,
 * the signing algorithm, the issuer, the first key) but starts no timer: that is start()'s.
 */
async function wireDomain(
  { db, redis, broadcast }: Infrastructure,
  config: Config,
  deps: ServiceDeps,
): Promise<DomainServices> {
  const clock = deps.clock ?? systemClock
  const meter = deps.meter ?? noMeter
  const usersRepository = createUsersRepository(db)
  const users = await createUserService({
    users: usersRepository,
    hasher: deps.hasher ?? createPasswordHasher(),
    policy: { minLength: config.passwordMinLength, maxLength: config.passwordMaxLength },
    clock,
  })
  await users.claimCanonicalNames()
  const audit = openAudit(db, config, clock, deps.onAuditError)
  // The algorithm and the issuer every process on this database shares (domain/deployment.ts).
  const mode = deps.settingsMode ?? 'record'
  const signing = await openSigningSettings(db, config, mode)
  const settings = createSettingsRepository(db)
  const { view: issuers, notes: issuerNotes } = await openIssuers({
    mode,
    explicit: config.jwtIssuerExplicit,
    fallback: config.jwtIssuer,
    settings,
    clock,
    retainMs: config.accessTokenExpireMinutes * 60_000 + RETIREMENT_SLACK_MS,
    ...(deps.onSettingsNote ? { onNote: deps.onSettingsNote } : {}),
    ...(deps.onKeyReloadError ? { onError: deps.onKeyReloadError } : {}),
  })
  for (const note of [...signing.notes, ...issuerNotes]) deps.onSettingsNote?.(note)
  // The others follow a new issuer now, not at their next reload.
  if (issuerNotes.length > 0) void broadcast.publish('keys')
  const keys = await openKeyRing({
    configured: signing.alg,
    secretKey: config.secretKey,
    settings,
    keys: createKeysRepository(db),
    clock,
    accessTtlMs: config.accessTokenExpireMinutes * 60_000,
    ...(deps.keyReloadMs === undefined ? {} : { reloadMs: deps.keyReloadMs }),
    ...(deps.onKeyReloadError ? { onError: deps.onKeyReloadError } : {}),
    onKeyMade: () => void broadcast.publish('keys'),
  })
  const tokens = createTokenService({
    keys,
    expiresInMinutes: config.accessTokenExpireMinutes,
    clock,
    issuer: issuers,
    audience: config.jwtAudience,
  })
  const idTokens = createIdTokens({ keys, clock, expiresInSeconds: config.accessTokenExpireMinutes * 60 })
  const revocations = createRevocationView(createRevocationFeed(db), clock, {
    pollMs: deps.revocationPollMs ?? (dialectOf(db) === 'postgres' ? 1000 : 250),
    ...(deps.onRevocationPollError ? { onError: deps.onRevocationPollError } : {}),
    announce: () => void broadcast.publish('revocations'),
  })
  // Client access tokens (RFC 9068): client_credentials, and those of a client's user sessions.
  const clientTokens = createClientTokenService({
    keys,
    issuers,
    audience: config.jwtAudience,
    clock,
    expiresInSeconds: config.accessTokenExpireMinutes * 60,
    revocations,
    feed: createSessionsRepository(db),
    audit,
  })
  // One set of session dependencies: browser sessions are admitted, capped and ended like the rest.
  const sessionDeps: SessionServiceDeps = {
    clientAccess: (grant) => clientTokens.issueForUser(grant),
    sessions: createSessionsRepository(db),
    credentials: createCredentialsRepository(db),
    tokens,
    revocations,
    clock,
    policy: {
      refreshIdleMs: config.refreshTokenExpireDays * DAY_MS,
      sessionMaxMs: config.sessionMaxDays * DAY_MS,
      reuseGraceMs: config.refreshReuseGraceSeconds * 1000,
      maxPerUser: config.maxSessionsPerUser,
    },
    accessTtlMs: config.accessTokenExpireMinutes * 60_000,
    events: {
      reuseDetected: ({ userId, sessionId }) =>
        audit.record({ type: 'token.reuse_detected', outcome: 'failure', userId, detail: { sessionId } }),
      capReached: ({ userId, sessionIds }) => {
        for (const sessionId of sessionIds)
          audit.record({
            type: 'session.revoked',
            outcome: 'success',
            userId,
            detail: { sessionId, reason: 'session_limit' },
          })
      },
      ended: (reason, count) => meter.revoked(reason, count),
    },
  }
  const sessions = createSessionService(sessionDeps)
  const browserSessions = createBrowserSessionService(sessionDeps)
  const windowMs = config.throttle.windowMinutes * 60_000
  const registrationWindowMs = 60 * 60_000
  const dbCounters = createThrottleStore(db)
  const throttle = createThrottle({
    // REDIS_URL moves the counters to Redis, with the database taking over while it is away.
    store: redis ? failoverThrottleStore(createRedisThrottleStore(redis), dbCounters, redis) : dbCounters,
    clock,
    policy: {
      enabled: config.throttle.enabled,
      windowMs,
      accountFailures: config.throttle.loginMaxFailures,
      deviceFailures: config.throttle.loginMaxFailures,
      ipFailures: config.throttle.loginIpMaxFailures,
      secondFactorFailures: DEFAULT_THROTTLE.secondFactorFailures,
      registrations: config.throttle.registrationsPerIpPerHour,
      registrationWindowMs,
      trustedDevices: DEFAULT_THROTTLE.trustedDevices,
    },
    deviceSecret: await settings.getOrInsert('device_cookie_secret', randomSecret()),
    devices: createDevicesRepository(db),
    onRefused: (scope) => meter.throttled(scope),
  })
  const clients = createClientService({
    clients: createClientsRepository(db),
    audit,
    clock,
    endSessions: (clientId) => sessions.endClient(clientId),
    revocations,
    accessTokenLifetimeMs: config.accessTokenExpireMinutes * 60_000,
  })
  const clientAuth = createClientAuthenticator({ clients, audit })
  const introspection = createIntrospection({
    tokens,
    clientTokens,
    revocations,
    audience: config.jwtAudience,
  })
  const account = createAccountService({ users, sessions, throttle, audit })
  const mfa = createMfaService({
    repository: createMfaRepository(db),
    sealer: createTotpSealer(config.mfaEncryptionKeys),
    throttle,
    audit,
    clock,
    issuerName: () => hostOf(issuers.current()),
    reauthenticate: async (caller, password) => (await account.reauthenticate(caller, password)).user,
    findUser: (username) => users.find(username),
    endSessions: (userId) => sessions.end(userId, 'revoked'),
  })
  const passkeys = createPasskeyService({
    repository: createPasskeysRepository(db),
    // WebAuthn §5.1.3: the relying party is PUBLIC_URL's host, its origin the only one accepted.
    relyingParty: relyingPartyOf(config.publicUrl),
    audit,
    clock,
    users: usersRepository,
    challengeSecret: await settings.getOrInsert('webauthn_challenge_secret', randomSecret()),
  })
  const email = createEmailService({
    repository: createEmailRepository(db),
    mailer: deps.mailer ?? mailerFor(config, (mail) => deps.onDevelopmentMail?.(mail)),
    users,
    sessions,
    userById: async (id) => {
      const row = await usersRepository.findById(id)
      return (
        row && { id: Number(row.id), username: row.username, epoch: Number(row.authgate_credential_epoch) }
      )
    },
    allowance: (key, limit, windowMs) => throttle.allowMail(key, limit, windowMs),
    audit,
    clock,
    publicUrl: config.publicUrl,
    ...(deps.onMailError ? { onError: deps.onMailError } : {}),
  })
  const auth = createAuthService({ users, sessions, tokens, throttle, audit, mfa, passkeys, email, meter })
  const csrf = createCsrfTokens(await settings.getOrInsert('page_csrf_secret', randomSecret()))
  const authorizationCodes = createAuthorizationCodeService({
    codes: createAuthorizationCodesRepository(db),
    clock,
    audit,
    // RFC 6749 §4.1.2: a replayed code revokes the session its exchange started (idempotent).
    revokeIssued: async (sessionId) => {
      await sessions.endSession(sessionId, 'revoked')
    },
  })
  const codeExchange = createCodeExchange({
    clientAuth,
    codes: authorizationCodes,
    users: usersRepository,
    sessions,
    idTokens,
    issuers,
    audit,
  })
  const consents = createConsentService({
    consents: createConsentsRepository(db),
    audit,
    clock,
    endSessions: endClientSessionsOf(sessions),
  })
  const authorize = createAuthorizeService({
    clients,
    codes: authorizationCodes,
    consents,
    clock,
    issuer: () => issuers.current(),
    // Signs what the authorization endpoint sends through the browser (domain/authorize.ts).
    secret: await settings.getOrInsert('authorize_secret', randomSecret()),
  })
  const logout = createLogout({
    clients,
    jwks: () => ({ keys: keys.jwks() }),
    algorithms: () => idTokens.algorithms(),
    issuer: () => issuers.current(),
    audit,
  })
  const tokenRevocation = createTokenRevocation({ auth, clientAuth, clientTokens, sessions, audit })
  return {
    users,
    tokens,
    sessions,
    browserSessions,
    account,
    auth,
    mfa,
    passkeys,
    email,
    throttle,
    audit,
    revocations,
    keys,
    idTokens,
    clients,
    clientAuth,
    clientTokens,
    introspection,
    tokenRevocation,
    signing: { alg: signing.alg, ...(signing.secret ? { secret: signing.secret } : {}) },
    issuers,
    csrf,
    authorizationCodes,
    codeExchange,
    userinfo: createUserInfo({ clientTokens, users: usersRepository }),
    consents,
    authorize,
    logout,
  }
}

/** What an authenticator app names the account's issuer: the issuer URL's host, or the issuer as is. */
function hostOf(issuer: string): string {
  return URL.canParse(issuer) ? new URL(issuer).host || issuer : issuer
}

/** How long an expired authorization code is kept, so that a late replay still revokes. */
const CODE_KEPT_AFTER_EXPIRY_MS = 60 * 60_000

/** A background job of a server: start() starts each in list order, close() stops them in reverse. */
interface BackgroundJob {
  start(): void | Promise<void>
  stop?(): void
}

function periodicJob(
  everyMs: number,
  run: () => Promise<unknown>,
  onError: (err: unknown) => void,
): BackgroundJob {
  let periodic: Periodic | undefined
  return {
    start() {
      periodic = every(everyMs, run, onError)
    },
    stop: () => periodic?.stop(),
  }
}

function backgroundJobs(
  { broadcast }: Infrastructure,
  { revocations, keys, issuers, audit, throttle, authorizationCodes, mfa, passkeys, email }: DomainServices,
  deps: ServiceDeps,
): BackgroundJob[] {
  const onRevocationPollError = (err: unknown) => deps.onRevocationPollError?.(err)
  const onKeyReloadError = (err: unknown) => deps.onKeyReloadError?.(err)
  return [
    // Listening first: a change signalled while the view makes its first read is not missed.
    // A signal from another process: read what it changed now, not at the next poll. Listening
    // stops when the broadcast closes, with the infrastructure.
    {
      start: () =>
        broadcast.listen((heard) => {
          if (heard !== 'keys') revocations.refresh().catch(onRevocationPollError)
          if (heard !== 'revocations') {
            keys.reload().catch(onKeyReloadError)
            issuers.reload().catch(onKeyReloadError)
          }
        }),
    },
    // The revocation view's first read (a server does not serve without it), then its polling.
    { start: () => revocations.start(), stop: () => revocations.stop() },
    { start: () => keys.start(), stop: () => keys.stop() },
    periodicJob(deps.keyReloadMs ?? DEFAULT_KEY_RELOAD_MS, () => issuers.reload(), onKeyReloadError),
    { start: () => audit.startRetention(), stop: () => audit.stopRetention() },
    // Spent and expired codes go an hour after they expire: until then a replay is still caught
    // and revokes what the code issued (RFC 6749 §4.1.2); after it, a replay is only refused.
    periodicJob(
      10 * 60_000,
      async () => {
        const now = (deps.clock ?? systemClock).now()
        await authorizationCodes.prune(now - CODE_KEPT_AFTER_EXPIRY_MS)
        // mfa_tokens are worthless once expired: nothing revokes through them.
        await mfa.prune(now)
        await passkeys.prune(now)
        await email.prune(now)
      },
      (err) => deps.onCodePruneError?.(err),
    ),
    // Old throttling windows are forgotten every ten minutes.
    periodicJob(
      10 * 60_000,
      () => throttle.prune(),
      (err) => deps.onThrottlePruneError?.(err),
    ),
  ]
}

export async function openServices(config: Config, deps: ServiceDeps = {}): Promise<Services> {
  const infrastructure = await openInfrastructure(config, deps)
  let domain: DomainServices
  try {
    domain = await wireDomain(infrastructure, config, deps)
  } catch (err) {
    await closeInfrastructure(infrastructure)
    throw err
  }
  const jobs = backgroundJobs(infrastructure, domain, deps)
  return {
    ...infrastructure,
    ...domain,
    async start() {
      for (const job of jobs) await job.start()
    },
    async close() {
      for (const job of [...jobs].reverse()) job.stop?.()
      // Requests have finished: write what they recorded while the database is still open.
      await domain.audit.flush()
      await closeInfrastructure(infrastructure)
    },
  }
}
