// The optional Redis connection (REDIS_URL): throttling counters and the change broadcast. Redis
// is never the only place anything lives: while it is away the database takes over, so a command
// here fails fast (no offline queue, a short command timeout) instead of holding a request.
import { once } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import { Redis, ReplyError } from 'ioredis'
import type { Channel } from '../domain/broadcast.js'
import type { ThrottleStore } from '../domain/throttle.js'
import { every, type Periodic } from '../lib/periodic.js'
import { randomId } from '../lib/random.js'

// A Redis that answers takes well under a millisecond; one that does not is treated as away.
const COMMAND_TIMEOUT_MS = 500
const CONNECT_TIMEOUT_MS = 2_000
// The subscriber's connection is probed this often, and dropped when a probe goes unanswered.
const PROBE_EVERY_MS = 5_000
const PROBE_TIMEOUT_MS = 2_000
// How long startup waits for the first connection before serving on the database alone.
const STARTUP_WAIT_MS = 2_000

export interface RedisLink {
  readonly client: Redis
  /** REDIS_KEY_PREFIX: starts every key and channel name. */
  readonly prefix: string
  /** Connected, and no command has failed since it connected. */
  available(): boolean
  /** A command failed: use the database until Redis is back (a timed-out link is reconnected). */
  failed(err: unknown): void
  /** How many times Redis has gone away since the link opened (serving without it at start counts). */
  outages(): number
  close(): Promise<void>
}

export interface RedisEvents {
  /** Redis went away (`err` says why) or came back; each is reported once per change. */
  onStateChange?: (up: boolean, err?: unknown) => void
}

export async function openRedis(url: string, prefix: string, events: RedisEvents = {}): Promise<RedisLink> {
  const client = new Redis(url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: COMMAND_TIMEOUT_MS,
    connectTimeout: CONNECT_TIMEOUT_MS,
    // A connection dropped for not answering is not owed a polite goodbye.
    disconnectTimeout: COMMAND_TIMEOUT_MS,
    // Keep trying for as long as the process runs, at most every 2 s.
    retryStrategy: (attempt) => Math.min(attempt * 200, 2_000),
  })
  let up = false
  let closing = false
  let lastError: unknown
  let outages = 0
  const setUp = (next: boolean, err?: unknown) => {
    if (next === up) return
    up = next
    if (!next) outages++
    if (!closing) events.onStateChange?.(next, err)
  }
  client.on('ready', () => setUp(true))
  client.on('error', (err) => {
    lastError = err
    setUp(false, err)
  })
  client.on('close', () => setUp(false, new Error('connection to Redis closed')))
  await Promise.race([
    once(client, 'ready').catch(() => {}),
    sleep(STARTUP_WAIT_MS, undefined, { ref: false }),
  ])
  // Serving starts on the database alone: say so once, as for an outage later on.
  if (!up) {
    outages++
    events.onStateChange?.(false, lastError ?? new Error(`no answer from Redis in ${STARTUP_WAIT_MS} ms`))
  }

  return {
    client,
    prefix,
    available: () => up && client.status === 'ready',
    outages: () => outages,
    failed(err) {
      // A reply error (a bad command) is ours to fix, not an outage.
      if (err instanceof ReplyError) return
      setUp(false, err)
      // A timeout means the connection may be a black hole: drop it and connect afresh.
      if (client.status === 'ready') client.disconnect(true)
    },
    async close() {
      closing = true
      client.disconnect()
    },
  }
}

// ---- throttling counters -----------------------------------------------------------------------

// The database's fixed window (storage/throttle.repository.ts), as one atomic script: count, and
// start a new window when there is none or it is over. The key expires with its window. It also
// returns the counters' generation (KEYS[2], which never expires; ARGV[3] when there is none): a
// Redis that lost its keys (a restart without persistence, a failover to a replica that never had
// them) may do so behind a connection that never dropped (a proxy in front of it), and the new
// generation is how a process that saw no outage learns that Redis forgot (domain/throttle.ts).
const HIT = `
local g = redis.call('GET', KEYS[2])
if not g then
  g = ARGV[3]
  redis.call('SET', KEYS[2], g)
end
local c = redis.call('HINCRBY', KEYS[1], 'c', 1)
local s = tonumber(redis.call('HGET', KEYS[1], 's'))
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
if c == 1 or s == nil or s <= now - window then
  redis.call('HSET', KEYS[1], 'c', 1, 's', ARGV[1])
  redis.call('PEXPIRE', KEYS[1], window + 1000)
  return {1, ARGV[1], g}
end
return {c, tostring(s), g}
`
const UNDO = `
local c = tonumber(redis.call('HGET', KEYS[1], 'c'))
if c ~= nil and c > 0 then redis.call('HINCRBY', KEYS[1], 'c', -1) end
return 0
`

interface ThrottleCommands {
  authgateHit(
    key: string,
    generationKey: string,
    now: number,
    windowMs: number,
    candidate: string,
  ): Promise<[number, string, string]>
  authgateUndo(key: string): Promise<number>
}

/** Throttling counters in Redis; they expire with their window, so there is nothing to prune. */
export function createRedisThrottleStore(link: RedisLink): ThrottleStore {
  link.client.defineCommand('authgateHit', { numberOfKeys: 2, lua: HIT })
  link.client.defineCommand('authgateUndo', { numberOfKeys: 1, lua: UNDO })
  const commands = link.client as unknown as ThrottleCommands
  const keyOf = (key: string) => `${link.prefix}throttle:${key}`
  // Beside the counters, so whatever takes them takes it too; no counter's key is a bare word.
  const generationKey = keyOf('generation')
  return {
    async hit(key, now, windowMs) {
      const [count, windowStart, generation] = await commands.authgateHit(
        keyOf(key),
        generationKey,
        now,
        windowMs,
        randomId(),
      )
      return { count: Number(count), windowStart: Number(windowStart), generation }
    },
    async undo(key) {
      await commands.authgateUndo(keyOf(key))
    },
    async reset(key) {
      await link.client.del(keyOf(key))
    },
    async prune() {},
  }
}

// ---- the change broadcast ----------------------------------------------------------------------

/** Redis pub/sub as a broadcast channel, on a connection of its own (a subscriber can do nothing else). */
export function createRedisChannel(link: RedisLink): Channel {
  const name = `${link.prefix}changes`
  let subscriber: Redis | undefined
  let probe: Periodic | undefined
  return {
    name: 'redis',
    async publish(message) {
      if (!link.available()) throw new Error('Redis is unavailable')
      try {
        await link.client.publish(name, message)
      } catch (err) {
        link.failed(err)
        throw err
      }
    },
    async listen(onMessage, onResync) {
      subscriber = link.client.duplicate({
        enableOfflineQueue: true,
        maxRetriesPerRequest: null,
        commandTimeout: PROBE_TIMEOUT_MS,
        autoResubscribe: false,
      })
      const sub = subscriber
      sub.on('error', () => {}) // reported through the main connection's state
      sub.on('message', (channel: string, message: string) => {
        if (channel === name) onMessage(message)
      })
      // Subscribed on every (re)connection; after the first, what was published meanwhile is lost.
      let subscribedBefore = false
      let firstSubscribed = () => {}
      sub.on('ready', () => {
        sub.subscribe(name).then(
          () => {
            if (subscribedBefore) onResync()
            subscribedBefore = true
            firstSubscribed()
          },
          () => sub.disconnect(true),
        )
      })
      // A subscriber only listens, so it would never notice a connection gone silent: probe it,
      // and connect afresh (then re-read everything) when the probe goes unanswered.
      probe = every(
        PROBE_EVERY_MS,
        () => (sub.status === 'ready' ? sub.ping() : undefined),
        () => sub.disconnect(true),
      )
      // Serving starts subscribed, unless Redis is away (then the database carries the signals).
      await Promise.race([
        new Promise<void>((resolve) => {
          firstSubscribed = resolve
        }),
        sleep(STARTUP_WAIT_MS, undefined, { ref: false }),
      ])
    },
    async close() {
      probe?.stop()
      subscriber?.disconnect()
    },
  }
}
