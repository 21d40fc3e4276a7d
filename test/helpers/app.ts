// buildTestApp(): a fresh database (a SQLite file, or a PostgreSQL database in the PostgreSQL run),
// migrated, the app built on it, closed after the test file.
import type { FastifyInstance } from 'fastify'
import { type AppDeps, buildApp } from '../../src/app.js'
import { type Config, loadConfig } from '../../src/config.js'
import { createPasswordHasher } from '../../src/domain/passwords.js'
import { freshDatabase, type TestDatabase } from './database.js'
import { TEST_REDIS_ENV } from './redis-server.js'

export type { TestDatabase } from './database.js'
export { freshDatabase, inspect, onPostgres, sqliteOnly, TEST_DIALECT, tempDir } from './database.js'
export { requirePrerequisite } from './prerequisite.js'
export { TEST_REDIS_ENV } from './redis-server.js'

/** Real argon2id with tiny parameters, for tests that are not about hashing. */
export const fastHasher = createPasswordHasher({ memoryCost: 1024, timeCost: 1, parallelism: 1 })

export const PASSWORD = 'correct horse battery staple'

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

export async function register(app: FastifyInstance, username: string, password = PASSWORD) {
  return app.inject({ method: 'POST', url: '/auth/', payload: { username, password } })
}

/** A password login; `remoteAddress` is the client's (light-my-request's 127.0.0.1 by default). */
export async function login(
  app: FastifyInstance,
  username: string,
  password = PASSWORD,
  remoteAddress?: string,
) {
  return app.inject({
    method: 'POST',
    url: '/auth/token',
    ...(remoteAddress ? { remoteAddress } : {}),
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    payload: new URLSearchParams({ username, password }).toString(),
  })
}

/** Registers and logs in; returns the access token. */
export async function tokenFor(app: FastifyInstance, username: string, password = PASSWORD): Promise<string> {
  await register(app, username, password)
  const res = await login(app, username, password)
  if (res.statusCode !== 200) throw new Error(`login failed: ${res.statusCode} ${res.body}`)
  return res.json().access_token
}
