// Throttling that stops guessing without locking real users out.
//
// - Every login attempt is counted before any hashing, per client IP and per account name, and
//   a successful one is taken back off: what accumulates is failures. The name is counted
//   whether or not such a user exists, so a 429 says nothing about existence.
// - A client that has logged in to an account before holds a signed device cookie for it
//   (OWASP "Slow Down Online Guessing Attacks with Device Cookies") and is counted on its own
//   allowance, so an attack on the account from elsewhere does not lock its owner out. The cookie
//   names the account by id and credential epoch, so a password change or a deletion voids every
//   cookie issued before it, and only the account's few most recent devices hold an allowance
//   (issue 9 item 5: otherwise each cookie an attacker collects is ten more guesses).
// - Defaults stay inside OWASP ASVS 2.2.1 (at most 100 failed attempts per account per hour):
//   10 per 15 minutes is at most 40 an hour.
import { createHmac, timingSafeEqual } from 'node:crypto'
import type { Clock } from '../lib/clock.js'
import { randomId } from '../lib/random.js'
import { DomainError, ErrorCode } from './errors.js'
import type { ThrottleScope } from './meter.js'
import { canonicalUsername } from './usernames.js'

/** The account a login attempt is counted against: its canonical name, whether or not it exists. */
export function accountKey(username: string): string {
  const name = canonicalUsername(username)
  return name.ok ? name.canonical : `raw:${username}`
}

/** The devices that logged in to an account (storage/devices.repository.ts). */
export interface DeviceRegistry {
  /** The name of user `userId` if `nonce` is one of its devices and its epoch is still `epoch`. */
  find(nonce: string, userId: number, epoch: number): Promise<string | undefined>
  /** Remembers the device unless the epoch moved (true when it did); keeps the user's `keep` most recent. */
  remember(device: {
    nonce: string
    userId: number
    epoch: number
    at: number
    keep: number
  }): Promise<boolean>
  /** The nonces of the devices remembered for user `userId`. */
  nonces(userId: number): Promise<string[]>
}

export interface ThrottleStore {
  /**
   * Adds one to `key` in the window that started at most `windowMs` ago (or starts a new one).
   * A store that can lose every count at once (Redis restarted without persistence) also names
   * what it holds: a new `generation` once it lost them, even behind a connection that never dropped.
   */
  hit(
    key: string,
    now: number,
    windowMs: number,
  ): Promise<{ count: number; windowStart: number; generation?: string }>
  /** Takes back one count (an attempt that turned out to be a success). */
  undo(key: string): Promise<void>
  /** Forgets `key`'s counter altogether (an operator's `user unlock`). */
  reset(key: string): Promise<void>
  prune(olderThan: number): Promise<void>
}

/** The database's counters, which can also be read without counting. */
export interface FallbackThrottleStore extends ThrottleStore {
  /** The count in `key`'s window that started at most `windowMs` ago; 0 without one. */
  peek(key: string, now: number, windowMs: number): Promise<number>
  /** The latest time any process recorded with markFallback (shared by every process), if any. */
  lastFallback(): Promise<number | undefined>
  /** Records that this process counted here at `at`; the stored time only ever moves forward. */
  markFallback(at: number): Promise<void>
}

export interface FailoverLink {
  /** Whether the primary store can be used now. */
  available(): boolean
  /** The primary failed: stop using it until it is back. */
  failed(err: unknown): void
  /** How many times the primary has gone away since the link opened (startup without it counts). */
  outages(): number
}

export interface FailoverTuning {
  /** How long the shared outage marker is trusted before it is read again (real time, ms). */
  markerReadEveryMs?: number
  /** A process counting in the fallback records the outage again at most this often. */
  markEveryMs?: number
}

// Counts of attempts taken in the primary while the fallback's counts still matter, kept in the
// fallback so that a process still cut off from the primary sees them. No real key starts so.
const primaryShare = (key: string) => `primary:${key}`

/**
 * Counters in `primary` (Redis) while it is available, else in `fallback` (the database). A Redis
 * outage must not open a way around throttling (issue: "never bypass"): attempts go on being
 * counted, in the database, and for one window after any process last counted there those counts
 * are added to Redis's, by every process. The outage is known to all of them through a marker in
 * the database (issue 9: kept in one process's memory, an instance that took no attempt during the
 * outage never added the database's count, and 30 guesses were evaluated in a window of 10):
 * written once when a process falls back or notices its link went down, and again at most every
 * `markEveryMs` while it counts there; read at most every `markerReadEveryMs`, so a login with no
 * outage behind it costs no extra query. In that window a process on Redis also counts its
 * attempts in the database (`primary:` keys), which processes still on the database add to theirs.
 *
 * The bound, per key and window, with L its limit: the attempts Redis held before it went away
 * are what an outage can make forgotten (a restart without persistence), at most L; every attempt
 * after it is counted where all processes look, at most L more. A process whose own link never
 * went down may not have read the marker yet (for up to `markerReadEveryMs`): its attempts are
 * counted in Redis only, which is within Redis's L as long as Redis kept its counts. When Redis
 * lost them (restarted behind a proxy that kept the connection, or flushed), the process learns
 * it from the primary's `generation` on its first hit after, and counts as one that saw the outage
 * (before, trusting the marker it had read just before the outage, an instance that never noticed
 * evaluated 10 more: 30 in a window of 10). At worst 2L, once.
 */
export function failoverThrottleStore(
  primary: ThrottleStore,
  fallback: FallbackThrottleStore,
  link: FailoverLink,
  tuning: FailoverTuning = {},
): ThrottleStore {
  const readEveryMs = tuning.markerReadEveryMs ?? 1_000
  const markEveryMs = tuning.markEveryMs ?? 5_000
  // This process's own knowledge of an outage, and what it last recorded for the others.
  let ownOutage = Number.NEGATIVE_INFINITY
  let marked = Number.NEGATIVE_INFINITY
  let outagesSeen = 0
  let generation: string | undefined
  // The shared marker as last read, and when (real time: the throttle's clock may be a test's).
  let shared = Number.NEGATIVE_INFINITY
  let sharedReadAt = Number.NEGATIVE_INFINITY
  let reading: Promise<void> | undefined
  // undo() gets no time: the one of the latest hit, and the widest window seen, stand in.
  let lastNow = 0
  let widestWindowMs = 0

  /**
   * Whether the link went down, or the primary lost its counts (its generation changed), since
   * last asked; then this process records the outage.
   */
  const noticedOutage = (now: number, seen: string | undefined): boolean => {
    const outages = link.outages()
    const forgot = seen !== undefined && generation !== undefined && seen !== generation
    generation = seen ?? generation
    if (outages === outagesSeen && !forgot) return false
    outagesSeen = outages
    ownOutage = Math.max(ownOutage, now)
    return true
  }

  const mark = async (now: number, force: boolean) => {
    if (!force && now - marked < markEveryMs && now >= marked) return
    marked = now
    await fallback.markFallback(now)
  }

  const readShared = async () => {
    if (performance.now() - sharedReadAt < readEveryMs) return
    reading ??= fallback
      .lastFallback()
      .then((at) => {
        shared = at ?? Number.NEGATIVE_INFINITY
        sharedReadAt = performance.now()
      })
      .finally(() => {
        reading = undefined
      })
    await reading
  }

  /** Whether the fallback's counts for a `windowMs` window still matter at `now`. */
  const merging = (now: number, windowMs: number) =>
    now - Math.max(ownOutage, shared) < windowMs + markEveryMs

  const viaFallback = async (key: string, now: number, windowMs: number) => {
    outagesSeen = link.outages()
    ownOutage = now
    const [counted, fromPrimary] = await Promise.all([
      fallback.hit(key, now, windowMs),
      fallback.peek(primaryShare(key), now, windowMs),
      mark(now, false),
    ])
    return { ...counted, count: counted.count + fromPrimary }
  }

  return {
    async hit(key, now, windowMs) {
      lastNow = now
      widestWindowMs = Math.max(widestWindowMs, windowMs)
      if (!link.available()) return viaFallback(key, now, windowMs)
      let counted: { count: number; windowStart: number; generation?: string }
      try {
        counted = await primary.hit(key, now, windowMs)
      } catch (err) {
        link.failed(err)
        return viaFallback(key, now, windowMs)
      }
      if (noticedOutage(now, counted.generation)) await mark(now, true)
      await readShared()
      // Counts older than the key's window no longer matter: after that, Redis alone.
      if (!merging(now, windowMs)) return counted
      const [fromFallback, share] = await Promise.all([
        fallback.peek(key, now, windowMs),
        fallback.hit(primaryShare(key), now, windowMs),
      ])
      // Redis's count includes its share unless Redis lost it (a restart): the larger is true.
      return { ...counted, count: Math.max(counted.count, share.count) + fromFallback }
    },
    async undo(key) {
      if (link.available()) {
        let undone = false
        try {
          await primary.undo(key)
          undone = true
        } catch (err) {
          link.failed(err)
        }
        if (undone) {
          if (merging(lastNow, widestWindowMs)) await fallback.undo(primaryShare(key))
          return
        }
      }
      await fallback.undo(key)
    },
    async reset(key) {
      // Both places, whatever the link's state: counts taken during an outage live in the
      // database (with Redis's share of them), the rest in Redis. A Redis that cannot be reached
      // fails the reset, so an operator is not told an account is unlocked while Redis holds it.
      await Promise.all([fallback.reset(key), fallback.reset(primaryShare(key))])
      try {
        await primary.reset(key)
      } catch (err) {
        link.failed(err)
        const why = err instanceof Error ? err.message : String(err)
        throw new Error(`Redis could not be reached (${why}): its counters are not reset; try again`, {
          cause: err,
        })
      }
    },
    async prune(olderThan) {
      // Redis's counters expire by themselves; the database keeps those of past outages.
      await fallback.prune(olderThan)
    },
  }
}

export interface ThrottlePolicy {
  enabled: boolean
  windowMs: number
  /** Failed logins per account name per window, from clients without its device cookie. */
  accountFailures: number
  /** Failed logins per device cookie per window. */
  deviceFailures: number
  /** Failed logins (any account) and failed refreshes per client IP per window. */
  ipFailures: number
  /** Wrong second-factor codes per account per window (domain/mfa.ts). */
  secondFactorFailures: number
  /** Registrations per client IP per `registrationWindowMs`. */
  registrations: number
  registrationWindowMs: number
  /** Devices per account whose cookies hold their own allowance: the most recent to log in. */
  trustedDevices: number
}

export const DEFAULT_THROTTLE: ThrottlePolicy = Object.freeze({
  enabled: true,
  windowMs: 15 * 60_000,
  accountFailures: 10,
  deviceFailures: 10,
  ipFailures: 100,
  secondFactorFailures: 10,
  registrations: 30,
  registrationWindowMs: 60 * 60_000,
  trustedDevices: 5,
})

export class Throttled extends DomainError {
  constructor(readonly retryAfterSeconds: number) {
    super(ErrorCode.tooManyRequests, 'Too many attempts; try again later')
  }
}

export interface LoginAttempt {
  ip: string
  /** The canonical account name (or the name as typed when it has none). */
  account: string
  /** A device cookie presented with the request, if any. */
  deviceCookie?: string | undefined
}

/** Counters an attempt took, to give back if it succeeds. */
export interface Reservation {
  keys: string[]
  trustedDevice: boolean
  /** The nonce of the trusted device cookie presented, kept when the device logs in again. */
  device?: string | undefined
}

/** Whom a device cookie is issued to: the account and the credential epoch it logged in with. */
export interface DeviceOwner {
  id: number
  epoch: number
}

export interface Throttle {
  /** Counts a login attempt; throws Throttled (before any hashing) when a limit is reached. */
  beginLogin(attempt: LoginAttempt): Promise<Reservation>
  /** The attempt succeeded: it does not count as a failure. Returns a device cookie for the account. */
  loginSucceeded(reservation: Reservation, user: DeviceOwner): Promise<string>
  /** The password was right (re-authentication): the attempt does not count as a failure. */
  passwordConfirmed(reservation: Reservation): Promise<void>
  /** Remembers the attempt's device for `user` and returns its cookie (a new one without a device). */
  trustDevice(reservation: Reservation, user: DeviceOwner): Promise<string>
  beginRegistration(ip: string): Promise<void>
  /**
   * Counts a second-factor code for account `userId` before it is checked; throws Throttled past
   * the limit. Six digits are few (NIST SP 800-63B §5.2.2): per account, whatever the device.
   */
  beginSecondFactor(userId: number): Promise<Reservation>
  /** The code was right (or the attempt lost a race): it does not count as a failure. */
  secondFactorPassed(reservation: Reservation): Promise<void>
  /** Counts a mail against `key` (an account, an address); false once `limit` per `windowMs` is past. */
  allowMail(key: string, limit: number, windowMs: number): Promise<boolean>
  /** Counts a failed refresh against the client IP; throws Throttled past the limit. */
  refreshFailed(ip: string): Promise<void>
  /**
   * Lifts the login throttle on an account: its failures counted by name, and those of each of
   * its remembered devices. Counts per client address stay (they are not the account's).
   */
  unlock(account: string, userId: number): Promise<void>
  prune(): Promise<void>
}

export function createThrottle(deps: {
  store: ThrottleStore
  clock: Clock
  policy: ThrottlePolicy
  /** Signs device cookies; from the database's settings, shared by every process. */
  deviceSecret: string
  devices: DeviceRegistry
  /** A limit refused an attempt; for the metrics. */
  onRefused?: (scope: ThrottleScope) => void
}): Throttle {
  const { store, clock, policy, deviceSecret, devices, onRefused } = deps

  // `v2`: cookies of the first format (signed over the username) no longer verify at all.
  const sign = ({ id, epoch }: DeviceOwner, nonce: string) =>
    createHmac('sha256', deviceSecret).update(`v2\n${id}\n${epoch}\n${nonce}`).digest('base64url')
  const cookieOf = (owner: DeviceOwner, nonce: string) =>
    `${owner.id}-${owner.epoch}-${nonce}.${sign(owner, nonce)}`
  const COOKIE = /^([0-9]{1,15})-([0-9]{1,15})-([A-Za-z0-9_-]{1,64})\.([A-Za-z0-9_-]{1,64})$/

  /**
   * The nonce of a device cookie issued for `account` at its current credential epoch, and still
   * one of its most recent devices; else undefined. The signature is checked first, so only a
   * cookie we issued costs a (primary-key) lookup.
   */
  async function deviceOf(cookie: string | undefined, account: string): Promise<string | undefined> {
    const match = cookie === undefined ? null : COOKIE.exec(cookie)
    if (!match) return undefined
    const owner = { id: Number(match[1]), epoch: Number(match[2]) }
    const nonce = match[3] as string
    const given = Buffer.from(match[4] as string)
    const expected = Buffer.from(sign(owner, nonce))
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined
    const username = await devices.find(nonce, owner.id, owner.epoch)
    return username !== undefined && accountKey(username) === account ? nonce : undefined
  }

  async function trustDevice(reservation: Reservation, user: DeviceOwner): Promise<string> {
    const nonce = reservation.device ?? randomId()
    // Throttling off (benchmarks only): nothing reads the devices, so nothing is written.
    if (policy.enabled) {
      await devices.remember({
        nonce,
        userId: user.id,
        epoch: user.epoch,
        at: clock.now(),
        keep: policy.trustedDevices,
      })
    }
    return cookieOf(user, nonce)
  }

  async function count(
    key: string,
    limit: number,
    windowMs: number,
    now: number,
  ): Promise<number | undefined> {
    const { count, windowStart } = await store.hit(key, now, windowMs)
    if (count <= limit) return undefined
    // The key's prefix names the limit that refused (login-ip:..., register-ip:...).
    onRefused?.(key.slice(0, key.indexOf(':')) as ThrottleScope)
    return Math.max(1, Math.ceil((windowStart + windowMs - now) / 1000))
  }

  return {
    async beginLogin({ ip, account, deviceCookie }) {
      if (!policy.enabled) return { keys: [], trustedDevice: false }
      const now = clock.now()
      const device = await deviceOf(deviceCookie, account)
      const accountKey = device ? `login-device:${device}` : `login-account:${account}`
      const keys = [`login-ip:${ip}`, accountKey]
      const waits = [
        await count(keys[0] as string, policy.ipFailures, policy.windowMs, now),
        await count(
          accountKey,
          device ? policy.deviceFailures : policy.accountFailures,
          policy.windowMs,
          now,
        ),
      ].filter((w): w is number => w !== undefined)
      if (waits.length > 0) {
        // A refused attempt is no guess: take it back, or concurrent good logins would pile up
        // counts that no success ever removes and lock the account for the rest of the window.
        for (const key of keys) await store.undo(key)
        throw new Throttled(Math.max(...waits))
      }
      return { keys, trustedDevice: device !== undefined, device }
    },

    async loginSucceeded(reservation, user) {
      for (const key of reservation.keys) await store.undo(key)
      return trustDevice(reservation, user)
    },

    async passwordConfirmed(reservation) {
      for (const key of reservation.keys) await store.undo(key)
    },

    trustDevice,

    async beginRegistration(ip) {
      if (!policy.enabled) return
      const key = `register-ip:${ip}`
      const wait = await count(key, policy.registrations, policy.registrationWindowMs, clock.now())
      if (wait !== undefined) {
        await store.undo(key)
        throw new Throttled(wait)
      }
    },

    async beginSecondFactor(userId) {
      if (!policy.enabled) return { keys: [], trustedDevice: false }
      const key = `mfa-account:${userId}`
      const wait = await count(key, policy.secondFactorFailures, policy.windowMs, clock.now())
      if (wait !== undefined) {
        await store.undo(key)
        throw new Throttled(wait)
      }
      return { keys: [key], trustedDevice: false }
    },

    async secondFactorPassed(reservation) {
      for (const key of reservation.keys) await store.undo(key)
    },

    async allowMail(key, limit, windowMs) {
      if (!policy.enabled) return true
      return (await store.hit(key, clock.now(), windowMs)).count <= limit
    },

    async refreshFailed(ip) {
      if (!policy.enabled) return
      const wait = await count(`refresh-ip:${ip}`, policy.ipFailures, policy.windowMs, clock.now())
      if (wait !== undefined) throw new Throttled(wait)
    },

    async unlock(account, userId) {
      const devicesOf = await devices.nonces(userId)
      for (const key of [
        `login-account:${account}`,
        `mfa-account:${userId}`,
        ...devicesOf.map((n) => `login-device:${n}`),
      ])
        await store.reset(key)
    },

    async prune() {
      await store.prune(clock.now() - Math.max(policy.windowMs, policy.registrationWindowMs))
    },
  }
}
