// The Redis server the REDIS_URL tests use: TEST_REDIS_URL, or under CI=true the machine's own.
// Each test takes a key prefix of its own (REDIS_KEY_PREFIX), so files run in parallel, and
// deletes its keys when done.
import { randomBytes } from 'node:crypto'
import { Redis } from 'ioredis'
import { inspect } from './database.js'

/** Where CI (and the node-svc machine) has Redis. */
export const CI_REDIS_URL = 'redis://127.0.0.1:6379'

export function testRedisUrl(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const url = env.TEST_REDIS_URL?.trim()
  if (url) return url
  return env.CI === 'true' ? CI_REDIS_URL : undefined
}

/** The reason Redis at `url` cannot be used, or undefined when it answers PING. */
export async function redisUnreachable(url: string): Promise<string | undefined> {
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, connectTimeout: 2_000 })
  try {
    await client.connect()
    return (await client.ping()) === 'PONG' ? undefined : 'PING was not answered with PONG'
  } catch (err) {
    return err instanceof Error ? err.message : String(err)
  } finally {
    client.disconnect()
  }
}

/** A REDIS_KEY_PREFIX no other test uses. */
export function testPrefix(): string {
  return `authgate_t_${process.pid}_${randomBytes(4).toString('hex')}:`
}

/**
 * The redis run (vitest.config.ts) sets AUTHGATE_TEST_REDIS to a Redis URL: every app a test
 * builds then keeps its throttling counters there, under this file's own key prefix (deleted when
 * the file ends, test/helpers/setup.ts). Empty otherwise. A second app on the same database
 * must be given it too, to be the same deployment.
 */
export const TEST_REDIS_ENV: Readonly<Record<string, string>> = process.env.AUTHGATE_TEST_REDIS
  ? { REDIS_URL: process.env.AUTHGATE_TEST_REDIS, REDIS_KEY_PREFIX: testPrefix() }
  : {}

/** A connection of the test's own, to look at (and clean up) what the app stored. */
export function redisInspector(url: string) {
  const client = new Redis(url, { maxRetriesPerRequest: 1 })
  return {
    client,
    async drop(prefix: string) {
      const keys = await client.keys(`${prefix}*`)
      if (keys.length > 0) await client.del(...keys)
    },
    close: () => client.quit().then(() => {}),
  }
}

/**
 * Where a throttling counter stands: the counts of its database rows, and its count in Redis
 * (null without Redis). With Redis up, a counter lives in Redis only; without it, in one row.
 */
export async function throttleCounter(
  databaseUrl: string,
  key: string,
  redis?: { url: string; prefix: string },
): Promise<{ database: number[]; redis: string | null }> {
  const rows = await inspect(databaseUrl)
    .selectFrom('authgate_throttle')
    .select('count')
    .where('key', '=', key)
    .execute()
  const database = rows.map((r) => Number(r.count))
  if (!redis) return { database, redis: null }
  const peek = redisInspector(redis.url)
  try {
    return { database, redis: await peek.client.hget(`${redis.prefix}throttle:${key}`, 'c') }
  } finally {
    await peek.close()
  }
}
