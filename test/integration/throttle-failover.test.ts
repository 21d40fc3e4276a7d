// failoverThrottleStore on a real database and a real Redis, with two "instances" (two stores over
// the same database and Redis, each with its own link the test takes up and down): what is evaluated
// across an outage stays within docs/security.md's bound (twice the limit per window), whichever
// instance saw the outage, and a deployment that had no outage does no database work for it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  createThrottle,
  DEFAULT_THROTTLE,
  type FailoverLink,
  type FailoverTuning,
  failoverThrottleStore,
  Throttled,
} from '../../src/domain/throttle.js'
import { systemClock } from '../../src/lib/clock.js'
import { createDatabase, type Db } from '../../src/storage/database.js'
import { createDevicesRepository } from '../../src/storage/devices.repository.js'
import { migrateToLatest } from '../../src/storage/migrate.js'
import { createRedisThrottleStore, openRedis, type RedisLink } from '../../src/storage/redis.js'
import { createThrottleStore } from '../../src/storage/throttle.repository.js'
import { freshDatabase, inspect, requirePrerequisite } from '../helpers/app.js'
import { redisInspector, redisUnreachable, testPrefix, testRedisUrl } from '../helpers/redis-server.js'

const redisUrl = testRedisUrl()
const why = redisUrl === undefined ? 'TEST_REDIS_URL is not set' : await redisUnreachable(redisUrl)
const ready = requirePrerequisite(
  why === undefined,
  `Redis for the failover tests (${why}; e.g. TEST_REDIS_URL=redis://127.0.0.1:6379)`,
)

const LIMIT = DEFAULT_THROTTLE.accountFailures

/** A link the test takes down and up; Redis itself stays reachable. */
function switchable(): FailoverLink & { down(): void; up(): void } {
  let up = true
  let outages = 0
  return {
    available: () => up,
    failed() {},
    outages: () => outages,
    down() {
      up = false
      outages++
    },
    up() {
      up = true
    },
  }
}

describe.skipIf(!ready)('failoverThrottleStore across instances', () => {
  let redis: RedisLink
  const opened: Db[] = []
  const prefix = testPrefix()
  const peek = redisInspector(redisUrl ?? '')

  beforeAll(async () => {
    redis = await openRedis(redisUrl ?? '', prefix)
  })
  afterAll(async () => {
    await redis?.close()
    for (const db of opened) await db.destroy()
    await peek.drop(prefix)
    await peek.close()
  })

  /** A deployment's own database (an outage marker in one must not reach another test). */
  async function database(): Promise<{ db: Db; url: string }> {
    const { url } = await freshDatabase('failover.db')
    const db = createDatabase(url)
    opened.push(db)
    await migrateToLatest(db)
    return { db, url }
  }

  /** An instance: its own link and failover store over the deployment's database, and Redis. */
  function instance(db: Db, tuning: FailoverTuning = {}) {
    const link = switchable()
    const store = failoverThrottleStore(
      createRedisThrottleStore(redis),
      createThrottleStore(db),
      link,
      tuning,
    )
    const throttle = createThrottle({
      store,
      clock: systemClock,
      policy: { ...DEFAULT_THROTTLE, ipFailures: 1_000_000 },
      deviceSecret: 'test',
      devices: createDevicesRepository(db),
    })
    /** Wrong-password attempts on `account`: how many were evaluated (not throttled). */
    const guesses = async (account: string, n: number) => {
      let evaluated = 0
      for (let i = 0; i < n; i++) {
        try {
          await throttle.beginLogin({ ip: '192.0.2.1', account })
          evaluated++
        } catch (err) {
          if (!(err instanceof Throttled)) throw err
        }
      }
      return evaluated
    }
    return { link, guesses }
  }

  /** What a Redis restart without persistence loses. */
  const redisForgets = () => peek.drop(`${prefix}throttle:`)

  it('after a Redis restart, an instance back first and one still cut off share one allowance', async () => {
    const { db } = await database()
    const a = instance(db)
    const b = instance(db)
    expect(await a.guesses('mixed', LIMIT + 1)).toBe(LIMIT)
    // Redis restarts: both lose it, and it loses its counts. B is back first; A stays cut off.
    a.link.down()
    b.link.down()
    await redisForgets()
    b.link.up()
    const onB = await b.guesses('mixed', LIMIT)
    const onA = await a.guesses('mixed', LIMIT)
    // The limit before the restart (forgotten), and the limit once across both instances after it.
    expect({ onB, onA }).toEqual({ onB: LIMIT, onA: 0 })
  })

  it('a partition: an instance cut off from a Redis that keeps its counts adds one allowance at most', async () => {
    const { db } = await database()
    const a = instance(db)
    const b = instance(db)
    expect(await b.guesses('partition', LIMIT + 1)).toBe(LIMIT)
    a.link.down()
    expect(await a.guesses('partition', LIMIT + 1)).toBe(LIMIT)
    // B, on Redis throughout, now adds the database's count to Redis's: nothing more.
    expect(await b.guesses('partition', 3)).toBe(0)
    a.link.up()
    expect(await a.guesses('partition', 3)).toBe(0)
  })

  it('the instance that counted in the database while Redis restarted refuses afterwards too', async () => {
    const { db } = await database()
    const a = instance(db)
    const b = instance(db)
    expect(await b.guesses('restart', LIMIT)).toBe(LIMIT)
    // A restart drops every connection: B notices too, though it takes no attempt meanwhile.
    a.link.down()
    b.link.down()
    await redisForgets()
    b.link.up()
    expect(await a.guesses('restart', LIMIT + 1)).toBe(LIMIT)
    a.link.up()
    expect((await a.guesses('restart', 3)) + (await b.guesses('restart', 3))).toBe(0)
  })

  it('Redis forgets behind a connection that never dropped: the instance that saw no outage learns it from Redis', async () => {
    const { db } = await database()
    const a = instance(db)
    // B trusts the outage marker it last read for a minute: only Redis can tell it in time.
    const b = instance(db, { markerReadEveryMs: 60_000 })
    expect(await b.guesses('elsewhere', 1)).toBe(1)
    expect(await a.guesses('unseen', LIMIT + 1)).toBe(LIMIT)
    // Only A loses its link; Redis loses its counts (a restart behind a proxy that kept B's).
    a.link.down()
    await redisForgets()
    expect(await a.guesses('unseen', LIMIT + 1)).toBe(LIMIT)
    a.link.up()
    // Before: B evaluated LIMIT more, counting in a Redis that had forgotten (3 x LIMIT in all).
    expect(await b.guesses('unseen', LIMIT)).toBe(0)
    expect(await a.guesses('unseen', 3)).toBe(0)
  })

  it('without an outage, nothing of it reaches the database', async () => {
    // A database of its own: the tests above left an outage marker in theirs.
    const own = await freshDatabase('quiet.db')
    const quiet = createDatabase(own.url)
    await migrateToLatest(quiet)
    try {
      const store = failoverThrottleStore(
        createRedisThrottleStore(redis),
        createThrottleStore(quiet),
        switchable(),
      )
      for (let i = 0; i < 5; i++) await store.hit('login-account:quiet', Date.now(), 60_000)
      expect(await inspect(own.url).selectFrom('authgate_throttle').selectAll().execute()).toEqual([])
      expect(
        await inspect(own.url)
          .selectFrom('authgate_settings')
          .select('key')
          .where('key', '=', 'throttle_fallback_at')
          .execute(),
      ).toEqual([])
    } finally {
      await quiet.destroy()
    }
  })
})
