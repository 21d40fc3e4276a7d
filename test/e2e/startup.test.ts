// `authgate serve` started as a real process, as an operator would: a database it cannot open, a
// PostgreSQL that is not there (or not yet), a PORT in use and a HOST that is not this machine's
// each end the start within seconds, non-zero, with a message naming the variable (and never the
// password); a PostgreSQL that comes up while AuthGate waits is used, after logged retries; and a
// start that works says so in one JSON line with what it is serving and how.
import type { ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import SQLite from 'better-sqlite3'
import { afterAll, describe, expect, it } from 'vitest'
import { tempDir } from '../helpers/app.js'
import {
  CI_DATABASE_URL,
  createTestDatabase,
  testServerUrl,
  unreachable,
} from '../helpers/postgres-server.js'
import { requirePrerequisite } from '../helpers/prerequisite.js'
import { freePort, type Spawned, STARTED_LINE, spawnProcess } from '../helpers/server-process.js'
import { TcpProxy } from '../helpers/tcp-proxy.js'

// A failed start must end within this (tsx's own start-up is about a second of it).
const FAIL_WITHIN_MS = 10_000
const PASSWORD = 'hunter2-redact-me'

interface Run extends Spawned {
  /** Resolves when the process exits, or with `timedOut` once `limitMs` pass (then it is killed). */
  ended: (limitMs: number) => Promise<{ code: number | null; timedOut: boolean; ms: number }>
}

/** `authgate serve` from source, with only `env` (and PATH) in its environment. */
function serve(env: Record<string, string>): Run {
  const startedAt = Date.now()
  const full: Record<string, string> = { HOST: '127.0.0.1', LOG_LEVEL: 'info', ...env }
  const run = spawnProcess({
    args: ['src/cli/index.ts', 'serve'],
    url: `http://${full.HOST}:${full.PORT}`,
    env: full,
  })
  running.add(run.child)
  return {
    ...run,
    async ended(limitMs) {
      const timer = sleep(limitMs).then(() => 'timeout' as const)
      const first = await Promise.race([run.exited, timer])
      const ms = Date.now() - startedAt
      if (first === 'timeout') {
        run.child.kill('SIGKILL')
        await run.exited
        return { code: null, timedOut: true, ms }
      }
      return { code: first.code, timedOut: false, ms }
    },
  }
}

const running = new Set<ChildProcess>()
const dirs: Array<{ cleanup: () => void }> = []
afterAll(() => {
  for (const child of running) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  for (const dir of dirs) dir.cleanup()
})

function dir(): string {
  const d = tempDir('authgate-startup-')
  dirs.push(d)
  return d.path
}

/** The start-up line, once the server logs it, and then /healthz answers (it does once listening). */
async function serving(run: Run, limitMs: number): Promise<void> {
  await run.line(STARTED_LINE, limitMs)
  expect((await fetch(`${run.url}/healthz`)).status).toBe(200)
}

function records(stdout: string): Record<string, unknown>[] {
  return stdout
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as Record<string, unknown>)
}

/** A failed start: non-zero within FAIL_WITHIN_MS; returns what it said on stderr. */
async function failsFast(run: Run): Promise<string> {
  const end = await run.ended(FAIL_WITHIN_MS)
  expect(end.timedOut, `still running after ${end.ms} ms; stdout: ${run.stdout()}`).toBe(false)
  expect(end.code).not.toBe(0)
  expect(end.code).not.toBeNull()
  expect(run.stdout() + run.stderr()).not.toContain(PASSWORD)
  return run.stderr()
}

describe('a database that cannot be opened', () => {
  it('a folder that cannot be made (/proc/nope/x.db) ends the start in seconds, naming DATABASE_URL', async () => {
    const port = await freePort()
    const stderr = await failsFast(serve({ DATABASE_URL: '/proc/nope/x.db', PORT: String(port) }))
    expect(stderr).toContain('DATABASE_URL')
    expect(stderr).toContain('/proc/nope')
  })

  it('a file that cannot be created (/proc/self/x.db) names DATABASE_URL and the path', async () => {
    const port = await freePort()
    const stderr = await failsFast(serve({ DATABASE_URL: 'sqlite:////proc/self/x.db', PORT: String(port) }))
    expect(stderr).toContain('DATABASE_URL')
    expect(stderr).toContain('/proc/self/x.db')
  })

  it('an unreachable PostgreSQL names DATABASE_URL and the host, never the password', async () => {
    const port = await freePort()
    const dbPort = await freePort() // nothing listens there
    const stderr = await failsFast(
      serve({
        DATABASE_URL: `postgres://authgate:${PASSWORD}@127.0.0.1:${dbPort}/authgate`,
        DATABASE_WAIT_SECONDS: '0',
        PORT: String(port),
      }),
    )
    expect(stderr).toContain('DATABASE_URL')
    expect(stderr).toContain(`127.0.0.1:${dbPort}`)
    expect(stderr).toContain('ECONNREFUSED')
  })

  it('waits DATABASE_WAIT_SECONDS for an unreachable PostgreSQL, logging each retry, then gives up', async () => {
    const port = await freePort()
    const dbPort = await freePort()
    const run = serve({
      DATABASE_URL: `postgres://authgate:${PASSWORD}@127.0.0.1:${dbPort}/authgate`,
      DATABASE_WAIT_SECONDS: '2',
      PORT: String(port),
    })
    const stderr = await failsFast(run)
    const end = await run.ended(0)
    expect(end.ms).toBeGreaterThanOrEqual(2_000)
    expect(stderr).toContain('DATABASE_URL')
    const retries = records(run.stdout()).filter((r) => r.msg === 'database not reachable yet: retrying')
    expect(retries.length).toBeGreaterThanOrEqual(2)
    expect(retries[0]).toMatchObject({
      level: 40,
      database: `postgres://authgate@127.0.0.1:${dbPort}/authgate`,
    })
  })
})

const pgServer = testServerUrl() ?? CI_DATABASE_URL
const pgWhy = await unreachable(pgServer)
const pgReady = requirePrerequisite(
  pgWhy === undefined,
  `PostgreSQL at ${pgServer} for the start-up wait (${pgWhy})`,
)

describe.skipIf(!pgReady)('a PostgreSQL that answers with a refusal', () => {
  it('no such database: no waiting, the start ends at once naming DATABASE_URL', async () => {
    const url = new URL(pgServer)
    url.pathname = '/authgate_no_such_database'
    const port = await freePort()
    const run = serve({ DATABASE_URL: url.href, DATABASE_WAIT_SECONDS: '60', PORT: String(port) })
    const stderr = await failsFast(run)
    expect(stderr).toContain('DATABASE_URL')
    expect(stderr).toContain('authgate_no_such_database')
    expect(run.stdout()).not.toContain('retrying')
  })
})

describe.skipIf(!pgReady)('a PostgreSQL that comes up late', () => {
  it('is waited for, with logged retries, and then served', { timeout: 40_000 }, async () => {
    const database = await createTestDatabase(pgServer)
    const target = new URL(pgServer)
    const proxy = new TcpProxy(await freePort(), { host: target.hostname, port: Number(target.port || 5432) })
    await proxy.set('refuse')
    const url = new URL(database.url)
    url.host = `127.0.0.1:${proxy.port}`
    const port = await freePort()
    const run = serve({ DATABASE_URL: url.href, DATABASE_WAIT_SECONDS: '30', PORT: String(port) })
    try {
      await run.line(/database not reachable yet: retrying/, FAIL_WITHIN_MS)
      expect(run.child.exitCode).toBeNull()
      await proxy.set('open')
      await serving(run, 15_000)
      const started = records(run.stdout()).filter((r) => r.msg === 'AuthGate started')
      expect(started).toHaveLength(1)
      expect(started[0]?.database).toBe(
        `postgres://${target.username}@127.0.0.1:${proxy.port}/${database.name}`,
      )
    } finally {
      await run.stop()
      await proxy.set('refuse')
      await database.drop()
    }
  })
})

describe('HOST and PORT', () => {
  it('a PORT in use names PORT', async () => {
    const holder = createServer()
    holder.listen(0, '127.0.0.1')
    await once(holder, 'listening')
    const port = (holder.address() as { port: number }).port
    try {
      const stderr = await failsFast(serve({ DATABASE_URL: join(dir(), 'a.db'), PORT: String(port) }))
      expect(stderr).toContain(`PORT ${port} is in use`)
    } finally {
      holder.close()
    }
  })

  it('a HOST that is not an address of this machine names HOST', async () => {
    // 192.0.2.0/24 is TEST-NET-1 (RFC 5737): never an address of this machine.
    const stderr = await failsFast(serve({ DATABASE_URL: join(dir(), 'a.db'), HOST: '192.0.2.1', PORT: '0' }))
    expect(stderr).toContain('HOST 192.0.2.1')
  })

  it('a HOST that does not resolve names HOST', async () => {
    const stderr = await failsFast(
      serve({ DATABASE_URL: join(dir(), 'a.db'), HOST: 'nosuch.invalid', PORT: '0' }),
    )
    expect(stderr).toContain('HOST nosuch.invalid')
  })
})

/** The SQLAlchemy DDL of the seed's models.User, and two of its users: a todosapp.db to adopt. */
function seedDatabase(path: string): void {
  const db = new SQLite(path)
  db.exec(`CREATE TABLE users (
    id INTEGER NOT NULL,
    username VARCHAR,
    password VARCHAR,
    PRIMARY KEY (id),
    UNIQUE (username)
  )`)
  db.exec('CREATE INDEX ix_users_id ON users (id)')
  const insert = db.prepare('INSERT INTO users (username, password) VALUES (?, ?)')
  insert.run('seeduser1', '$2b$12$abcdefghijklmnopqrstuu5Qq3dYbYqGxJt7uZ0a1b2c3d4e5f6g7')
  insert.run('seeduser2', '$2b$12$abcdefghijklmnopqrstuu5Qq3dYbYqGxJt7uZ0a1b2c3d4e5f6g7')
  db.close()
}

describe('the start-up line', () => {
  it('one JSON line: version, URLs, database, algorithm and kid, issuer, migrations, workers', async () => {
    const path = join(dir(), 'todosapp.db')
    seedDatabase(path)
    const port = await freePort()
    const run = serve({ DATABASE_URL: `sqlite:///${path}`, PORT: String(port) })
    try {
      await serving(run, 20_000)
      const lines = records(run.stdout())
      expect(lines.filter((r) => /listening/i.test(String(r.msg)))).toEqual([])
      const started = lines.filter((r) => r.msg === 'AuthGate started')
      expect(started).toHaveLength(1)
      const url = `http://127.0.0.1:${port}`
      const { version } = (await import('../../package.json', { with: { type: 'json' } })).default
      const jwks = (await (await fetch(`${url}/.well-known/jwks.json`)).json()) as { keys: { kid: string }[] }
      expect(started[0]).toMatchObject({
        level: 30,
        version,
        url,
        docs: `${url}/docs`,
        database: `sqlite:///${path}`,
        algorithm: 'ES256',
        kid: jwks.keys[0]?.kid,
        issuer: url,
        adoptedSeedUsers: 2,
        workers: 1,
      })
      const migrations = started[0]?.migrations as string[]
      expect(migrations[0]).toBe('2026_11_28_001_adopt_seed_users')
      expect(migrations.length).toBeGreaterThan(1)
      await run.stop()

      // Started again on the same file: nothing left to migrate, nothing adopted.
      const again = serve({ DATABASE_URL: `sqlite:///${path}`, PORT: String(port) })
      await serving(again, 20_000)
      const second = records(again.stdout()).filter((r) => r.msg === 'AuthGate started')
      expect(second).toHaveLength(1)
      expect(second[0]).toMatchObject({ migrations: [], kid: jwks.keys[0]?.kid })
      expect(second[0]).not.toHaveProperty('adoptedSeedUsers')
      await again.stop()
    } finally {
      await run.stop()
    }
  })

  it('with WORKERS=2, exactly one start-up line, from the primary, with workers: 2', async () => {
    const port = await freePort()
    const metricsPort = await freePort()
    const run = serve({
      DATABASE_URL: join(dir(), 'w.db'),
      PORT: String(port),
      WORKERS: '2',
      METRICS_PORT: String(metricsPort),
    })
    try {
      // The primary logs it once both workers listen.
      await serving(run, 30_000)
      const lines = records(run.stdout())
      expect(lines.filter((r) => /listening/i.test(String(r.msg)))).toEqual([])
      const started = lines.filter((r) => r.msg === 'AuthGate started')
      expect(started).toHaveLength(1)
      expect(started[0]).toMatchObject({
        pid: run.child.pid,
        url: `http://127.0.0.1:${port}`,
        workers: 2,
        algorithm: 'ES256',
        metrics: `http://127.0.0.1:${metricsPort}/metrics`,
      })
      expect(started[0]?.migrations).not.toEqual([])
    } finally {
      await run.stop()
    }
  })
})
