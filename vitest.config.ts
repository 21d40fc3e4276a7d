import { defineConfig, type TestProjectInlineConfiguration } from 'vitest/config'
import { dropStaleDatabases, testServerUrl, unreachable } from './test/helpers/postgres-server.js'
import { requirePrerequisite } from './test/helpers/prerequisite.js'

// Two runs of the suite: everything on SQLite, and the integration and security files again on
// PostgreSQL (TEST_DATABASE_URL; under CI=true the machine's server by default). Each file gets
// fresh databases of its own (test/helpers/database.ts), so files of both runs go in parallel.
const POSTGRES_FILES = ['test/integration/**/*.test.ts', 'test/security/**/*.test.ts']

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

const memo = globalThis as { postgres?: Promise<TestProjectInlineConfiguration[]> }

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
  return {
    test: {
      pool: 'forks',
      testTimeout: 30_000,
      hookTimeout: 60_000,
      setupFiles: ['test/helpers/setup.ts'],
      projects: [sqliteProject, ...(await memo.postgres)],
    },
  }
})
