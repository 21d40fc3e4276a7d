// buildTestApp(): a fresh database (a SQLite file, or a PostgreSQL database in the PostgreSQL run),
// migrated, the app built on it, closed after the test file.
import type { FastifyInstance } from 'fastify'
import { type AppDeps, buildApp, servicesOf } from '../../src/app.js'
import { type Config, loadConfig } from '../../src/config.js'
import { createPasswordHasher } from '../../src/domain/passwords.js'
import { freshDatabase, type TestDatabase } from './database.js'
import { TEST_REDIS_ENV } from './redis-server.js'

export type { TestDatabase } from './database.js'
export { freshDatabase, inspect, onPostgres, sqliteOnly, TEST_DIALECT, tempDir } from './database.js'
export { PASSWORD } from './http.js'
export { requirePrerequisite } from './prerequisite.js'
export { TEST_REDIS_ENV } from './redis-server.js'

/** Real argon2id with tiny parameters, for tests that are not about hashing. */
export const fastHasher = createPasswordHasher({ memoryCost: 1024, timeCost: 1, parallelism: 1 })

export interface TestApp {
  app: FastifyInstance
  config: Config
  /** The app's DATABASE_URL: give it to inspect(), a second app or the CLI. */
  dbUrl: string
  db: TestDatabase
  close(): Promise<void>
}

/**
 * env overrides are raw environment strings, so they go through loadConfig like production.
 * Throttling is off unless a test turns it on (RATE_LIMIT: 'on'): most tests sign up many users
 * from one address, which is what throttling exists to stop.
 */
export async function buildTestApp(env: Record<string, string> = {}, deps: AppDeps = {}): Promise<TestApp> {
  const db = await freshDatabase()
  const config = loadConfig({ DATABASE_URL: db.url, RATE_LIMIT: 'off', ...TEST_REDIS_ENV, ...env })
  let app: FastifyInstance
  try {
    app = await buildApp(config, { hasher: fastHasher, ...deps })
  } catch (err) {
    await db.drop()
    throw err
  }
  return {
    app,
    config,
    dbUrl: db.url,
    db,
    async close() {
      await app.close()
      await db.drop()
    },
  }
}

/**
 * Resolves once every audit event `app` has recorded so far is written (the audit writer's
 * flush()): requests record in the background, so a test awaits this, not a poll of the table.
 */
export async function auditWritten(app: FastifyInstance): Promise<void> {
  const services = servicesOf(app)
  if (!services) throw new Error('auditWritten: not an app that buildApp made')
  await services.audit.flush()
}
