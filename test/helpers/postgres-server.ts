// The PostgreSQL server the suite's second run uses (TEST_DATABASE_URL), and the per-file databases
// made on it. Imported by vitest.config.ts too, so it loads nothing but pg.
import { randomBytes } from 'node:crypto'
import pg from 'pg'

/** Where CI (and the node-svc machine) has PostgreSQL: trust auth, database `test`. */
export const CI_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/test'

/** TEST_DATABASE_URL, or under CI=true the machine's server; undefined means no PostgreSQL run. */
export function testServerUrl(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const url = env.TEST_DATABASE_URL?.trim()
  if (url) return url
  return env.CI === 'true' ? CI_DATABASE_URL : undefined
}

/** Runs one statement on the server's own database over a short-lived connection. */
export async function adminQuery(serverUrl: string, text: string): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: serverUrl, connectionTimeoutMillis: 5_000 })
  await client.connect()
  try {
    return await client.query(text)
  } finally {
    await client.end()
  }
}

/** The reason the server cannot be used, or undefined when it answers. */
export async function unreachable(serverUrl: string): Promise<string | undefined> {
  try {
    await adminQuery(serverUrl, 'select 1')
    return undefined
  } catch (err) {
    return err instanceof Error ? err.message : String(err)
  }
}

/** Test databases are named authgate_t_<pid>_<random>: the pid of the worker that made them. */
export const TEST_DATABASE_PREFIX = 'authgate_t_'

export interface ServerTestDatabase {
  name: string
  /** The server's URL with this database's name. */
  url: string
  drop(): Promise<void>
}

/** CREATE DATABASE authgate_t_<pid>_<random> on the server; the caller drops it. */
export async function createTestDatabase(serverUrl: string): Promise<ServerTestDatabase> {
  const name = `${TEST_DATABASE_PREFIX}${process.pid}_${randomBytes(5).toString('hex')}`
  await adminQuery(serverUrl, `create database "${name}"`)
  const target = new URL(serverUrl)
  target.pathname = `/${name}`
  return {
    name,
    url: target.href,
    async drop() {
      await adminQuery(serverUrl, `drop database if exists "${name}" with (force)`)
    },
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** Drops test databases left by runs that were killed before their clean-up (their pid is gone). */
export async function dropStaleDatabases(serverUrl: string): Promise<number> {
  const { rows } = await adminQuery(
    serverUrl,
    `select datname from pg_database where datname like '${TEST_DATABASE_PREFIX}%'`,
  )
  let dropped = 0
  for (const { datname } of rows as { datname: string }[]) {
    const pid = Number(/^authgate_t_(\d+)_/.exec(datname)?.[1])
    if (!Number.isInteger(pid) || alive(pid)) continue
    await adminQuery(serverUrl, `drop database if exists "${datname}" with (force)`)
    dropped++
  }
  return dropped
}
