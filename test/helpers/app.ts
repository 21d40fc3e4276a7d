// buildTestApp(): a fresh SQLite file, migrated, the app built on it, closed after the test file.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { type AppDeps, buildApp } from '../../src/app.js'
import { type Config, loadConfig } from '../../src/config.js'
import { createPasswordHasher } from '../../src/domain/passwords.js'

/** Real argon2id with tiny parameters, for tests that are not about hashing. */
export const fastHasher = createPasswordHasher({ memoryCost: 1024, timeCost: 1, parallelism: 1 })

export const PASSWORD = 'correct horse battery staple'

export function tempDir(prefix = 'authgate-test-'): { path: string; cleanup: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix))
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) }
}

export interface TestApp {
  app: FastifyInstance
  config: Config
  dbPath: string
  close(): Promise<void>
}

/**
 * env overrides are raw environment strings, so they go through loadConfig like production.
 * Throttling is off unless a test turns it on (RATE_LIMIT: 'on'): most tests sign up many users
 * from one address, which is what throttling exists to stop.
 */
export async function buildTestApp(env: Record<string, string> = {}, deps: AppDeps = {}): Promise<TestApp> {
  const dir = tempDir()
  const dbPath = join(dir.path, 'authgate.db')
  const config = loadConfig({ DATABASE_URL: `sqlite:///${dbPath}`, RATE_LIMIT: 'off', ...env })
  const app = await buildApp(config, { hasher: fastHasher, ...deps })
  return {
    app,
    config,
    dbPath,
    async close() {
      await app.close()
      dir.cleanup()
    },
  }
}

export async function register(app: FastifyInstance, username: string, password = PASSWORD) {
  return app.inject({ method: 'POST', url: '/auth/', payload: { username, password } })
}

export async function login(app: FastifyInstance, username: string, password = PASSWORD) {
  return app.inject({
    method: 'POST',
    url: '/auth/token',
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

/** Whether a prerequisite is present; when not, skip loudly, or fail under CI=true. */
export function requirePrerequisite(ok: boolean, what: string): boolean {
  if (ok) return true
  if (process.env.CI === 'true') throw new Error(`CI=true but ${what} is missing`)
  console.warn(`\n*** SKIPPED: ${what} is missing; install it (see .ci/run) to run these tests ***\n`)
  return false
}
