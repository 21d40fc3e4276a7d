// buildApp(config, deps) -> a ready Fastify instance; used by the server, the CLI and every test.
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import formbody from '@fastify/formbody'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify'
import type { Config } from './config.js'
import { limitConnectionsPerAddress } from './http/connection-limit.js'
import { authenticatePlugin } from './http/plugins/authenticate.js'
import { docsPlugin } from './http/plugins/docs.js'
import { answerClientError, answerFrameworkError, errorsPlugin } from './http/plugins/errors.js'
import { metricsPlugin } from './http/plugins/metrics.js'
import { OneLinePerRequest } from './http/plugins/request-log.js'
import { securityPlugin } from './http/plugins/security.js'
import { accountRoutes } from './http/routes/account.js'
import { authRoutes } from './http/routes/auth.js'
import { authorizeRoutes } from './http/routes/authorize.js'
import { healthRoutes } from './http/routes/health.js'
import { introspectionRoutes } from './http/routes/introspection.js'
import { logoutRoutes } from './http/routes/logout.js'
import { pageRoutes } from './http/routes/pages.js'
import { rootRoutes } from './http/routes/root.js'
import { userinfoRoutes } from './http/routes/userinfo.js'
import { wellKnownRoutes } from './http/routes/well-known.js'
import type { Metrics } from './metrics.js'
import { openServices, type ServiceDeps, type Services } from './services.js'
import { errorReason, isDatabaseUnavailable, pingDatabase } from './storage/database.js'

export interface AppDeps extends ServiceDeps {
  /** A pino logger; omitted means silent (tests). */
  logger?: FastifyBaseLogger
  /** METRICS_PORT: what the app counts and times (src/metrics.ts); the caller starts its listener. */
  metrics?: Metrics
}

export const VERSION: string = JSON.parse(
  readFileSync(new URL('../package.json', import.meta.url), 'utf8'),
).version

const servicesByApp = new WeakMap<object, Services>()

/** The services an app from buildApp runs on: serve() reports what they opened in its start-up line. */
export function servicesOf(app: FastifyInstance): Services | undefined {
  return servicesByApp.get(app)
}

function requestIds(): () => string {
  const tag = randomBytes(4).toString('hex')
  let n = 0
  return () => `${tag}-${(++n).toString(36)}`
}

export async function buildApp(config: Config, deps: AppDeps = {}): Promise<FastifyInstance> {
  // Background work that fails (the database away a moment) is logged, never thrown; a test may
  // pass its own handlers in deps.
  const warn = (msg: string) => (err: unknown) => deps.logger?.warn({ err }, msg)
  const services = await openServices(config, {
    onRevocationPollError: warn('revocation feed unreadable'),
    onKeyReloadError: warn('signing keys unreadable'),
    onThrottlePruneError: warn('throttle prune failed'),
    onCodePruneError: warn('authorization code prune failed'),
    onBroadcastError: warn('change broadcast failed; other processes see the change at their next poll'),
    onRedisStateChange: (up, err) =>
      up
        ? deps.logger?.info('Redis is back: throttling counters and the change broadcast use it again')
        : deps.logger?.warn(
            { err },
            'Redis unavailable: throttling counters and the change broadcast fall back to the database',
          ),
    // A failed audit write never fails the request; the events it lost go to the log instead.
    onAuditError: (err, lost) => deps.logger?.warn({ err, audit: lost }, 'audit log write failed'),
    ...(deps.metrics ? { meter: deps.metrics.meter, onDatabaseError: deps.metrics.databaseError } : {}),
    onDatabaseRetry: ({ database, attempt, err, giveUpInMs }) =>
      deps.logger?.warn(
        { database, attempt, error: errorReason(err), giveUpInMs },
        'database not reachable yet: retrying',
      ),
    // A server takes JWT_ALGORITHM, JWT_ISSUER and PUBLIC_URL changes into the recorded settings.
    settingsMode: 'adopt',
    // Development without SMTP_URL: the mail, link and all, goes to the log, said loudly.
    onDevelopmentMail: (mail) =>
      deps.logger?.warn(
        { mail },
        'SMTP_URL is not set: this mail was NOT sent and is written here instead (development only; set SMTP_URL)',
      ),
    onMailError: warn('a mail could not be sent'),
    onSettingsNote: (message) => deps.logger?.warn(message),
    ...deps,
  })
  try {
    return await serveOn(services, config, deps)
  } catch (err) {
    // A start that fails half-way (a job's first read, a plugin) leaves nothing open behind it:
    // the background jobs stop, and Redis and the database close.
    await services.close().catch(() => {})
    throw err
  }
}

async function serveOn(services: Services, config: Config, deps: AppDeps): Promise<FastifyInstance> {
  const { db, tokens, account, auth, revocations, keys, issuers, csrf } = services
  const { clientAuth, clientTokens, introspection, tokenRevocation } = services
  await services.start()
  if (!config.throttle.enabled)
    deps.logger?.warn('RATE_LIMIT=off: logins and sign-ups are not throttled (benchmarks only)')
  if (config.deviceCookieSameSite === 'None' && !config.publicUrl.startsWith('https:'))
    deps.logger?.warn(
      'DEVICE_COOKIE_SAMESITE=none: the device cookie is Secure, so browsers keep it only over https (PUBLIC_URL)',
    )

  const app = Fastify({
    ...(deps.logger ? { loggerInstance: deps.logger } : { logger: false }),
    logController: new OneLinePerRequest(),
    requestIdHeader: 'x-request-id',
    // Fastify counts req-1, req-2... per process: with WORKERS or several instances, ids repeat
    // in a shared log. A random tag per process keeps them apart; a caller's X-Request-ID wins.
    genReqId: requestIds(),
    // Whether X-Forwarded-For is believed for request.ip (throttling, sessions, audit): TRUST_PROXY.
    trustProxy:
      typeof config.trustProxy === 'number'
        ? (_address: string, hop: number) => hop < (config.trustProxy as number)
        : config.trustProxy,
    routerOptions: { ignoreTrailingSlash: true },
    // Auth routes set 16 KiB; nothing here takes more than this.
    bodyLimit: 64 * 1024,
    // A client gets 30 s to send a whole request (slow bodies); headers are capped at Node's
    // 16 KiB (431) and must all arrive within 10 s (slowloris). Node counts those 10 s from the
    // connection, so a socket that never sends a byte is closed too (tested), but it checks only
    // every connectionsCheckingInterval (30 s by default): every second, the socket lives ~10 s.
    requestTimeout: 30_000,
    http: { connectionsCheckingInterval: 1_000, headersTimeout: 10_000 },
    // An idle kept-alive connection is closed after 72 s (Fastify's default, kept on purpose:
    // longer than a load balancer's usual 60 s, so the balancer closes first and never sends on
    // a connection we are closing). It counts against its address's cap meanwhile.
    keepAliveTimeout: 72_000,
    // A request that reaches us while we close is served (with Connection: close), not answered
    // with Fastify's bare 503 and its non-seed body: a rolling restart (SIGHUP) fails no request.
    // The database stays open until the last request is done (the onClose hook below).
    return503OnClosing: false,
    // What Node's parser and Fastify's router answer before any route runs (431, a malformed
    // request, a timed-out one, a bad URL encoding) leaves in our {detail, code} shape too.
    clientErrorHandler: answerClientError,
    frameworkErrors: answerFrameworkError,
    ajv: { customOptions: { coerceTypes: false, removeAdditional: true, allErrors: true } },
  }).withTypeProvider<TypeBoxTypeProvider>()
  // Issue 9: ~20,000 silent sockets from one host filled the descriptor table and new clients were
  // reset for 10-15 s. Over the cap a socket is destroyed as it is accepted; logged once a minute.
  limitConnectionsPerAddress(app.server, {
    perAddress: config.maxConnectionsPerIp,
    onRefused: (client, refused) =>
      deps.logger?.warn(
        { client, limit: config.maxConnectionsPerIp, refused },
        'connections refused: one client address holds MAX_CONNECTIONS_PER_IP open connections',
      ),
  })

  // Requests have finished: stop the background work, write the audit log, close connections.
  app.addHook('onClose', () => services.close())
  if (deps.metrics) await app.register(metricsPlugin, { metrics: deps.metrics })

  // Cross-cutting plugins first; each names what it needs, and Fastify refuses a wrong order.
  await app.register(errorsPlugin, { isDatabaseUnavailable })
  await app.register(securityPlugin, { corsOrigins: config.corsOrigins })
  await app.register(authenticatePlugin, { tokens, revocations })
  await app.register(formbody)
  await app.register(docsPlugin, { version: VERSION })
  // The device cookie is marked Secure when clients reach us over https (PUBLIC_URL).
  const secureCookies = config.publicUrl.startsWith('https:')
  const sameSite = config.deviceCookieSameSite
  await app.register(authRoutes, {
    auth,
    passkeys: services.passkeys,
    email: services.email,
    clients: {
      auth: clientAuth,
      tokens: clientTokens,
      revocation: tokenRevocation,
      codes: services.codeExchange,
    },
    secureCookies,
    sameSite,
  })
  await app.register(introspectionRoutes, { clients: { auth: clientAuth, introspection } })
  await app.register(accountRoutes, {
    account,
    consents: services.consents,
    mfa: services.mfa,
    passkeys: services.passkeys,
    secureCookies,
    sameSite,
  })
  await app.register(rootRoutes)
  await app.register(userinfoRoutes, { userinfo: services.userinfo })
  await app.register(pageRoutes, {
    auth,
    browserSessions: services.browserSessions,
    csrf,
    publicUrl: config.publicUrl,
    secureCookies,
    deviceSameSite: sameSite,
    // No setting closes sign-up yet: the pages are as open as POST /auth/.
    signUp: true,
    passkeys: services.passkeys.available(),
    email: services.email,
    accountPage: {
      account,
      sessions: services.sessions,
      consents: services.consents,
      mfa: services.mfa,
      passkeys: services.passkeys,
    },
    passwordMinLength: config.passwordMinLength,
    isDatabaseUnavailable,
  })
  await app.register(authorizeRoutes, {
    authorize: services.authorize,
    browserSessions: services.browserSessions,
    csrf,
    publicUrl: config.publicUrl,
    secureCookies,
    isDatabaseUnavailable,
  })
  await app.register(logoutRoutes, {
    logout: services.logout,
    browserSessions: services.browserSessions,
    csrf,
    publicUrl: config.publicUrl,
    secureCookies,
    isDatabaseUnavailable,
  })
  await app.register(wellKnownRoutes, {
    keys,
    issuer: () => issuers.current(),
    idTokenAlgorithms: () => services.idTokens.algorithms(),
    publicUrl: config.publicUrl,
    jwksMaxAgeSeconds: config.jwksMaxAgeSeconds,
  })
  await app.register(healthRoutes, { ready: () => pingDatabase(db) })
  await app.ready()
  servicesByApp.set(app, services)
  return app
}
