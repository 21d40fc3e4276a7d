// An in-memory view of revoked sessions, kept current from the database's revocation feed, so
// checking a bearer token costs two Map lookups instead of a query (GET / is the hot path).
import type { Clock } from '../lib/clock.js'
import { coalesced } from '../lib/coalesce.js'

export interface RevocationEntry {
  seq: number
  kind: 'session' | 'user'
  subject: string
  /** Epoch ms. For 'user': tokens without a sid issued before this are void. */
  at: number
  /** Epoch ms after which no token the entry affects can still be valid. */
  expires_at: number
}

export interface RevocationFeed {
  since(seq: number, now: number): Promise<RevocationEntry[]>
  prune(now: number): Promise<void>
}

export interface RevocationView {
  /** True when the token's session was revoked, or (tokens without a sid) its user's were. */
  isRevoked(claims: { sid?: string | undefined; id: number; iat?: number | undefined }): boolean
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
  const users = new Map<number, { at: number; expiresAt: number }>()
  let lastSeq = 0
  let timer: NodeJS.Timeout | undefined
  let polls = 0

  function remember(entries: Pick<RevocationEntry, 'kind' | 'subject' | 'at' | 'expires_at'>[]) {
    for (const e of entries) {
      if (e.kind === 'session') sessions.set(e.subject, e.expires_at)
      else {
        const id = Number(e.subject)
        const prev = users.get(id)
        if (!prev || prev.at < e.at) users.set(id, { at: e.at, expiresAt: e.expires_at })
      }
    }
  }

  const view: RevocationView = {
    isRevoked({ sid, id, iat }) {
      if (sid !== undefined) return sessions.has(sid)
      const cutoff = users.get(id)
      // Legacy tokens (issued by the seed app) carry no sid: a user-wide cutoff voids them.
      return cutoff !== undefined && (iat === undefined || iat * 1000 < cutoff.at)
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
