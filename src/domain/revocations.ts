// An in-memory view of revoked sessions, kept current from the database's revocation feed, so
// checking a bearer token costs two Map lookups instead of a query (GET / is the hot path).
import type { Clock } from '../lib/clock.js'
import { coalesced } from '../lib/coalesce.js'

export interface RevocationEntry {
  seq: number
  /**
   * 'session': every token carrying this sid (subject). 'token': the sid-less token with this
   * jti of this user (subject `${userId}:${jti}`). 'user' (subject: the user id): the user's
   * sid-less tokens issued before `at`; a token without iat (the seed's) is void when it expires
   * no later than `expires_at`, which its writer sets at least at + the longest lifetime of such
   * a token (sessions.ts SEED_TOKEN_LIFETIME_MS), and at least to the exp of the token logged out.
   */
  kind: 'session' | 'token' | 'user'
  subject: string
  /** Epoch ms: when it was revoked. */
  at: number
  /** Epoch ms after which no token the entry affects can still be valid. */
  expires_at: number
}

/** What a revocation check reads of a verified token. */
export interface RevocableClaims {
  sid?: string | undefined
  id: number
  /** Epoch seconds. */
  iat?: number | undefined
  /** Epoch seconds. */
  exp?: number | undefined
  jti?: string | undefined
}

export interface RevocationFeed {
  since(seq: number, now: number): Promise<RevocationEntry[]>
  prune(now: number): Promise<void>
}

export interface RevocationView {
  /** True when the token's session was revoked, or (tokens without a sid) the token or its user's were. */
  isRevoked(claims: RevocableClaims): boolean
  /** Applies entries this process just wrote, and tells the other processes to read the feed now. */
  apply(entries: Pick<RevocationEntry, 'kind' | 'subject' | 'at' | 'expires_at'>[]): void
  /**
   * Reads the feed: the poller calls this, and so does a signal from another process. Calls made
   * during a read share one more read after it, which sees everything committed before the call.
   */
  refresh(): Promise<void>
  start(): Promise<void>
  stop(): void
}

export function createRevocationView(
  feed: RevocationFeed,
  clock: Clock,
  {
    pollMs = 1000,
    onError = () => {},
    announce = () => {},
  }: {
    pollMs?: number
    onError?: (err: unknown) => void
    /** Tells the other processes that the feed grew (domain/broadcast.ts); never throws. */
    announce?: () => void
  } = {},
): RevocationView {
  const sessions = new Map<string, number>() // sid -> expires_at
  const tokens = new Map<string, number>() // `${userId}:${jti}` -> expires_at
  const users = new Map<number, { at: number; expiresAt: number }>()
  let lastSeq = 0
  let timer: NodeJS.Timeout | undefined
  let polls = 0

  function remember(entries: Pick<RevocationEntry, 'kind' | 'subject' | 'at' | 'expires_at'>[]) {
    for (const e of entries) {
      if (e.kind === 'session') sessions.set(e.subject, e.expires_at)
      else if (e.kind === 'token') tokens.set(e.subject, e.expires_at)
      else {
        const id = Number(e.subject)
        const prev = users.get(id)
        // Two cutoffs void the union of what each voids: the later `at`, the later expiry.
        users.set(id, {
          at: Math.max(prev?.at ?? 0, e.at),
          expiresAt: Math.max(prev?.expiresAt ?? 0, e.expires_at),
        })
      }
    }
  }

  const view: RevocationView = {
    isRevoked({ sid, id, iat, exp, jti }) {
      if (sid !== undefined) return sessions.has(sid)
      // Tokens without a sid (the seed app's, during a migration) are voided one by one when they
      // carry a jti, and otherwise by their user's cutoff.
      if (jti !== undefined && tokens.has(`${id}:${jti}`)) return true
      const cutoff = users.get(id)
      if (cutoff === undefined) return false
      if (iat !== undefined) return iat * 1000 < cutoff.at
      // No iat: it may predate the cutoff unless it outlives every token the cutoff must cover.
      return exp === undefined || exp * 1000 <= cutoff.expiresAt
    },
    apply(entries) {
      remember(entries)
      announce()
    },
    refresh: coalesced(async () => {
      const now = clock.now()
      const entries = await feed.since(lastSeq, now)
      remember(entries)
      for (const e of entries) lastSeq = Math.max(lastSeq, e.seq)
      // Forget what can no longer matter, here and (now and then) in the database.
      for (const [sid, expiresAt] of sessions) if (expiresAt <= now) sessions.delete(sid)
      for (const [key, expiresAt] of tokens) if (expiresAt <= now) tokens.delete(key)
      for (const [id, cutoff] of users) if (cutoff.expiresAt <= now) users.delete(id)
      if (++polls % 600 === 0) await feed.prune(now)
    }),
    async start() {
      await view.refresh()
      timer = setInterval(() => {
        // The database is away: keep the current view, report, and try again at the next tick.
        view.refresh().catch(onError)
      }, pollMs)
      timer.unref()
    },
    stop() {
      if (timer) clearInterval(timer)
      timer = undefined
    },
  }
  return view
}
