// The concurrency suite's harness: a deployment of real `authgate serve` processes sharing one
// database (a SQLite file, or a PostgreSQL database) and, where the topology says so, one Redis;
// plain HTTP helpers; and `trials`, which runs a race many times and prints how many it ran.
import { afterAll, beforeAll, expect } from 'vitest'
import { inspect, PASSWORD, requirePrerequisite, tempDir } from '../helpers/app.js'
import { bearer, logIn, pairOf, type TokenPair } from '../helpers/http.js'
import {
  CI_DATABASE_URL,
  createTestDatabase,
  testServerUrl,
  unreachable,
} from '../helpers/postgres-server.js'
import {
  CI_REDIS_URL,
  redisInspector,
  redisUnreachable,
  testPrefix,
  testRedisUrl,
} from '../helpers/redis-server.js'
import { type ServerProcess, startServerProcess } from '../helpers/server-process.js'

export { PASSWORD }

const pgServer = testServerUrl() ?? CI_DATABASE_URL
const pgWhy = await unreachable(pgServer)
const redisUrl = testRedisUrl() ?? CI_REDIS_URL
const redisWhy = await redisUnreachable(redisUrl)

export interface Topology {
  name: string
  database: 'sqlite' | 'postgres'
  redis: boolean
  /** False (after a loud skip) when what it needs is missing; under CI=true that throws instead. */
  run: boolean
}

const pgReady = () =>
  requirePrerequisite(pgWhy === undefined, `PostgreSQL at ${pgServer} for the concurrency suite (${pgWhy})`)
const redisReady = () =>
  requirePrerequisite(redisWhy === undefined, `Redis at ${redisUrl} for the concurrency suite (${redisWhy})`)

export type TopologyName = 'sqlite' | 'postgres' | 'postgres+redis' | 'sqlite+redis'

/** Every topology a shared-state guarantee must hold on (sqlite+redis only where asked for). */
export function topologies(which: TopologyName[] = ['sqlite', 'postgres', 'postgres+redis']): Topology[] {
  return which.map((t) => {
    if (t === 'sqlite') return { name: 'SQLite', database: 'sqlite', redis: false, run: true }
    if (t === 'postgres') return { name: 'PostgreSQL', database: 'postgres', redis: false, run: pgReady() }
    if (t === 'sqlite+redis')
      return { name: 'SQLite + Redis', database: 'sqlite', redis: true, run: redisReady() }
    return { name: 'PostgreSQL + Redis', database: 'postgres', redis: true, run: pgReady() && redisReady() }
  })
}

export interface Deployment {
  instances: ServerProcess[]
  /** The shared DATABASE_URL: give it to inspect() or the CLI. */
  databaseUrl: string
  /** The environment every instance got. */
  env: Record<string, string>
  redis: { url: string; prefix: string } | undefined
}

export interface DeploymentOptions {
  /**
   * Added to instance `i`'s environment only, after `env`: e.g. a REDIS_URL through a TcpProxy
   * for one instance (called once the deployment's own `env` is known, in beforeAll).
   */
  instanceEnv?: (
    i: number,
    env: Readonly<Record<string, string>>,
  ) => Record<string, string> | Promise<Record<string, string>>
}

/**
 * Registers beforeAll/afterAll for `count` server processes on one fresh database in `topology`,
 * and returns a handle filled in once they run. `env` is added to every instance's environment.
 */
export function useDeployment(
  topology: Topology,
  env: Record<string, string> = {},
  count = 2,
  options: DeploymentOptions = {},
): Deployment {
  const deployment: Deployment = { instances: [], databaseUrl: '', env: {}, redis: undefined }
  let drop: () => Promise<void> = async () => {}
  beforeAll(async () => {
    if (!topology.run) return
    if (topology.database === 'postgres') {
      const made = await createTestDatabase(pgServer)
      deployment.databaseUrl = made.url
      drop = made.drop
    } else {
      const dir = tempDir('authgate-race-')
      deployment.databaseUrl = `sqlite:///${dir.path}/authgate.db`
      drop = async () => dir.cleanup()
    }
    if (topology.redis) deployment.redis = { url: redisUrl, prefix: testPrefix() }
    deployment.env = {
      DATABASE_URL: deployment.databaseUrl,
      // One deployment: one issuer, one algorithm, behind one load balancer.
      JWT_ISSUER: 'https://auth.example.test',
      JWT_ALGORITHM: 'ES256',
      ...(deployment.redis
        ? { REDIS_URL: deployment.redis.url, REDIS_KEY_PREFIX: deployment.redis.prefix }
        : {}),
      ...env,
    }
    // One after the other: the first migrates and makes the signing key; then all run together.
    for (let i = 0; i < count; i++) {
      const own = (await options.instanceEnv?.(i, deployment.env)) ?? {}
      deployment.instances.push(await startServerProcess({ ...deployment.env, ...own }))
    }
  }, 120_000)
  afterAll(async () => {
    if (!topology.run) return
    await Promise.all(deployment.instances.map((s) => s.stop()))
    await inspect(deployment.databaseUrl).destroy()
    await drop()
    if (deployment.redis) {
      const peek = redisInspector(deployment.redis.url)
      await peek.drop(deployment.redis.prefix)
      await peek.close()
    }
  }, 60_000)
  return deployment
}

const JSON_TYPE = { 'content-type': 'application/json' }

/** A ServerProcess is a target of test/helpers/http.ts's requests (signUp, logIn, refresh, greet). */
export const http = {
  /** A bearer request; `body`, when given, is sent as JSON. */
  bearer: (on: ServerProcess, method: string, path: string, token: string, body?: unknown) =>
    fetch(`${on.url}${path}`, {
      method,
      headers: { ...bearer(token), ...(body === undefined ? {} : JSON_TYPE) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    }),
}

/**
 * Runs `trial` `count` times, one after the other, and prints how many ran (the suite's note:
 * "Keep the suite bounded, and print the trial counts"). Each trial asserts its own invariant.
 */
export async function trials(
  what: string,
  count: number,
  trial: (i: number) => Promise<void>,
): Promise<void> {
  const started = performance.now()
  for (let i = 0; i < count; i++) await trial(i)
  console.info(`[concurrency] ${what}: ${count} trials in ${Math.round(performance.now() - started)} ms`)
}

/**
 * `workers` loops of `attempt`, each starting the next as soon as the last one answered, until
 * `until` settles; then each makes one more, so attempts that start after it are covered too.
 * Returns every result, in the order they came back.
 */
export async function hammer<T>(
  workers: number,
  attempt: (worker: number) => Promise<T>,
  until: Promise<unknown>,
): Promise<T[]> {
  let stop = false
  const done = until.then(
    () => {
      stop = true
    },
    () => {
      stop = true
    },
  )
  const results: T[] = []
  await Promise.all(
    Array.from({ length: workers }, async (_, w) => {
      while (!stop) results.push(await attempt(w))
      results.push(await attempt(w))
    }),
  )
  await done
  return results
}

/** GET / with `token` on each instance; the tokens some instance still accepts (200). */
export async function stillAccepted(instances: ServerProcess[], tokens: string[]): Promise<string[]> {
  const accepted = await Promise.all(
    tokens.map(async (token) => {
      const statuses = await Promise.all(
        instances.map(async (on) => (await http.bearer(on, 'GET', '/', token)).status),
      )
      return statuses.some((s) => s === 200)
    }),
  )
  return tokens.filter((_, i) => accepted[i])
}

/**
 * Waits until no instance accepts any of `tokens`; after `withinMs` fails, saying how many some
 * instance still accepts.
 */
export async function expectRefusedEverywhere(
  instances: ServerProcess[],
  tokens: string[],
  withinMs: number,
): Promise<void> {
  let surviving = tokens
  await expect
    .poll(
      async () => {
        // A refused token stays refused: only the survivors need asking again.
        surviving = await stillAccepted(instances, surviving)
        return surviving.length
      },
      { timeout: withinMs, interval: 20 },
    )
    .toBe(0)
}

/**
 * `count` logins of `username`, spread over `instances` in turn, at most `parallel` at a time (each
 * costs an argon2 hash: the race is what comes after, not the logins).
 */
export async function logIns(
  instances: ServerProcess[],
  username: string,
  count: number,
  parallel = 8,
): Promise<TokenPair[]> {
  const pairs: TokenPair[] = []
  for (let i = 0; i < count; i += parallel) {
    const batch = Array.from({ length: Math.min(parallel, count - i) }, (_, j) =>
      logIn(instances[(i + j) % instances.length] as ServerProcess, username).then(pairOf),
    )
    pairs.push(...(await Promise.all(batch)))
  }
  return pairs
}
