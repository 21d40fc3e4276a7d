import { defineConfig, type TestProjectInlineConfiguration } from 'vitest/config'
import { dropStaleDatabases, testServerUrl, unreachable } from './test/helpers/postgres-server.js'
import { requirePrerequisite } from './test/helpers/prerequisite.js'
import { redisUnreachable, testRedisUrl } from './test/helpers/redis-server.js'

// Three runs: everything on SQLite; the integration and security files, and the browser tests of
// the second factor, passkeys, the email pages and the account page, again on PostgreSQL (TEST_DATABASE_URL; under CI=true the machine's server
// by default); and the throttling suite
// again with its counters in Redis (TEST_REDIS_URL; under CI=true the machine's Redis). Each file
// gets fresh databases and a Redis key prefix of its own, so files of every run go in parallel.
const POSTGRES_FILES = [
  'test/integration/**/*.test.ts',
  'test/security/**/*.test.ts',
  // Issue 13's done-when: the second factor's page and passkeys in Chromium, on both dialects.
  'test/e2e/mfa-browser.test.ts',
  'test/e2e/passkeys-browser.test.ts',
  'test/e2e/email-browser.test.ts',
  'test/e2e/account-browser.test.ts',
]

async function postgresProject(): Promise<TestProjectInlineConfiguration[]> {
  const server = testServerUrl()
  const why = server === undefined ? 'TEST_DATABASE_URL is not set' : await unreachable(server)
  const ok = requirePrerequisite(
    why === undefined,
    `PostgreSQL for the suite's second run (${why}; e.g. TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test)`,
  )
  if (!ok || server === undefined) return []
  await dropStaleDatabases(server)
  return [
    {
      extends: true,
      test: {
        name: 'postgres',
        include: POSTGRES_FILES,
        env: { AUTHGATE_TEST_DIALECT: 'postgres', TEST_DATABASE_URL: server },
      },
    },
  ]
}

async function redisProject(): Promise<TestProjectInlineConfiguration[]> {
  const url = testRedisUrl()
  const why = url === undefined ? 'TEST_REDIS_URL is not set' : await redisUnreachable(url)
  const ok = requirePrerequisite(
    why === undefined,
    `Redis for the throttling suite's Redis run (${why}; e.g. TEST_REDIS_URL=redis://127.0.0.1:6379)`,
  )
  if (!ok || url === undefined) return []
  return [
    {
      extends: true,
      test: {
        name: 'redis',
        include: ['test/security/throttling.test.ts'],
        env: { AUTHGATE_TEST_DIALECT: 'sqlite', AUTHGATE_TEST_REDIS: url },
      },
    },
  ]
}

const memo = globalThis as {
  postgres?: Promise<TestProjectInlineConfiguration[]>
  redis?: Promise<TestProjectInlineConfiguration[]>
}

const sqliteProject: TestProjectInlineConfiguration = {
  extends: true,
  test: {
    name: 'sqlite',
    include: ['test/**/*.test.ts'],
    env: { AUTHGATE_TEST_DIALECT: 'sqlite' },
  },
}

export default defineConfig(async () => {
  // Vitest may load this file more than once per run: check (and warn) once.
  memo.postgres ??= postgresProject()
  memo.redis ??= redisProject()
  return {
    test: {
      pool: 'forks',
      testTimeout: 30_000,
      hookTimeout: 60_000,
      setupFiles: ['test/helpers/setup.ts'],
      projects: [sqliteProject, ...(await memo.postgres), ...(await memo.redis)],
    },
  }
})
