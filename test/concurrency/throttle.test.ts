// Throttle counts under concurrency (issue 9, item 8): a parallel burst of guesses split across two
// instances is evaluated exactly LOGIN_MAX_FAILURES times, and across a Redis outage that only one
// instance saw, both instances together evaluate no more than docs/security.md allows.
import { afterAll, describe, expect, it } from 'vitest'
import { logIn, signUp } from '../helpers/http.js'
import { redisInspector } from '../helpers/redis-server.js'
import type { ServerProcess } from '../helpers/server-process.js'
import { freePort } from '../helpers/server-process.js'
import { TcpProxy } from '../helpers/tcp-proxy.js'
import { topologies, trials, useDeployment } from './harness.js'

const LIMIT = 10 // LOGIN_MAX_FAILURES's default
const WRONG = 'not the password at all'
// Only the per-account counter is under test: every request comes from 127.0.0.1.
const ENV = { LOGIN_IP_MAX_FAILURES: '100000', REGISTRATIONS_PER_IP_PER_HOUR: '100000' }

/** The statuses of `n` wrong-password logins for `name`, sent one after another to `on`. */
async function guesses(on: ServerProcess, name: string, n: number): Promise<number[]> {
  const statuses: number[] = []
  for (let i = 0; i < n; i++) statuses.push((await logIn(on, name, WRONG)).status)
  return statuses
}

const tally = (statuses: number[]) => ({
  evaluated: statuses.filter((s) => s === 401).length,
  throttled: statuses.filter((s) => s === 429).length,
})

describe.each(topologies(['sqlite', 'postgres', 'postgres+redis', 'sqlite+redis']))(
  'guessing on two instances of $name',
  (topology) => {
    // With Redis, instance A reaches it through a proxy the test can cut; instance B directly, so
    // B never notices an outage and takes no attempt during one.
    let proxy: TcpProxy | undefined
    const deployment = useDeployment(topology, ENV, 2, {
      instanceEnv: async (i, env): Promise<Record<string, string>> => {
        if (i !== 0 || !env.REDIS_URL) return {}
        const target = new URL(env.REDIS_URL)
        proxy = new TcpProxy(await freePort(), { host: target.hostname, port: Number(target.port || 6379) })
        await proxy.set('open')
        target.port = String(proxy.port)
        // 'Redis is back' is logged at info.
        return { REDIS_URL: target.href, LOG_LEVEL: 'info' }
      },
    })
    afterAll(async () => {
      await proxy?.set('refuse')
    })

    it.runIf(topology.run)('a parallel burst: exactly LOGIN_MAX_FAILURES of 40 are evaluated', async () => {
      const [a, b] = deployment.instances as [ServerProcess, ServerProcess]
      await trials(`40 parallel guesses on two instances (${topology.name})`, 5, async (i) => {
        const name = `burst-${i}`
        expect((await signUp(a, name)).status).toBe(201)
        const statuses = await Promise.all(
          Array.from({ length: 40 }, async (_, k) => (await logIn(k % 2 ? b : a, name, WRONG)).status),
        )
        expect(tally(statuses), `trial ${i}`).toEqual({ evaluated: LIMIT, throttled: 40 - LIMIT })
      })
    })

    it.runIf(topology.run && topology.redis)(
      'a Redis outage only A saw: at most twice the limit per window (10 before, 10 during, 0 after)',
      async () => {
        const [a, b] = deployment.instances as [ServerProcess, ServerProcess]
        const redis = deployment.redis as { url: string; prefix: string }
        const cut = proxy as TcpProxy
        const peek = redisInspector(redis.url)
        try {
          await trials(`10/10/10 guesses across a Redis outage (${topology.name})`, 3, async (i) => {
            const name = `outage-${i}`
            expect((await signUp(a, name)).status).toBe(201)
            // Before: the limit's worth, counted in Redis; then refused.
            const before = tally(await guesses(a, name, LIMIT + 1))
            expect(before).toEqual({ evaluated: LIMIT, throttled: 1 })
            // The outage: A loses Redis, and Redis loses what it counted (a restart without
            // persistence, or a failover to a replica that never had the keys) behind B's
            // connection, which stays up (a proxy in front of Redis).
            const mark = a.output().length
            await cut.set('refuse')
            await peek.drop(`${redis.prefix}throttle:`)
            // During: A counts in the database: from zero in the first trial, the one window's
            // allowance again. From the second on, the last trial's outage is within the window,
            // so the database also holds what Redis counted before, and this outage forgets none.
            const during = tally(await guesses(a, name, LIMIT + 1))
            if (i === 0) expect(during).toEqual({ evaluated: LIMIT, throttled: 1 })
            else expect(during.throttled).toBeGreaterThanOrEqual(1)
            // Log lines are written in batches, up to 100 ms late.
            await expect.poll(() => a.output().slice(mark).includes('Redis unavailable')).toBe(true)
            await cut.set('open')
            await expect
              .poll(() => a.output().slice(mark).includes('Redis is back'), { timeout: 15_000 })
              .toBe(true)
            // After, on B, which never saw the outage: the database's count still holds.
            const after = tally(await guesses(b, name, LIMIT))
            const evaluated = before.evaluated + during.evaluated + after.evaluated
            expect(
              evaluated,
              `trial ${i}: 401s before/during/after: ${before.evaluated}/${during.evaluated}/${after.evaluated}`,
            ).toBeLessThanOrEqual(2 * LIMIT)
            expect(after).toEqual({ evaluated: 0, throttled: LIMIT })
          })
        } finally {
          await peek.close()
        }
      },
    )
  },
)
