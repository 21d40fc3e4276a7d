// buildApp(config, deps) -> a ready Fastify instance; used by the server, the CLI and every test.
import { readFileSync } from 'node:fs'
import formbody from '@fastify/formbody'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify'
import type { Config } from './config.js'
import { registerAuthenticate } from './http/plugins/authenticate.js'
import { registerDocs } from './http/plugins/docs.js'
import { registerErrorHandlers } from './http/plugins/errors.js'
import { OneLinePerRequest } from './http/plugins/request-log.js'
import { accountRoutes } from './http/routes/account.js'
import { authRoutes } from './http/routes/auth.js'
import { healthRoutes } from './http/routes/health.js'
import { rootRoutes } from './http/routes/root.js'
import { openServices, type ServiceDeps } from './services.js'
import { pingDatabase } from './storage/database.js'

export interface AppDeps extends ServiceDeps {
  /** A pino logger; omitted means silent (tests). */
  logger?: FastifyBaseLogger
}

export const VERSION: string = JSON.parse(
  readFileSync(new URL('../package.json', import.meta.url), 'utf8'),
).version

export async function buildApp(config: Config, deps: AppDeps = {}): Promise<FastifyInstance> {
  const { db, users, tokens, sessions, account, revocations } = await openServices(config, {
    ...deps,
    ...(deps.logger && !deps.onRevocationPollError
      ? { onRevocationPollError: (err: unknown) => deps.logger?.warn({ err }, 'revocation feed unreadable') }
      : {}),
  })
  await revocations.start()

  const app = Fastify({
    ...(deps.logger ? { loggerInstance: deps.logger } : { logger: false }),
    logController: new OneLinePerRequest(),
    requestIdHeader: 'x-request-id',
    routerOptions: { ignoreTrailingSlash: true },
    ajv: { customOptions: { coerceTypes: false, removeAdditional: true, allErrors: true } },
  }).withTypeProvider<TypeBoxTypeProvider>()

  app.addHook('onClose', async () => {
    revocations.stop()
    await db.destroy()
  })

  registerErrorHandlers(app)
  registerAuthenticate(app, tokens, revocations)
  await app.register(formbody)
  await registerDocs(app, VERSION)
  await app.register(authRoutes, { users, sessions, tokens })
  await app.register(accountRoutes, { account, sessions })
  await app.register(rootRoutes)
  await app.register(healthRoutes, { ready: () => pingDatabase(db) })
  await app.ready()
  return app
}
