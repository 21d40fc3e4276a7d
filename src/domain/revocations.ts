// An in-memory view of revoked sessions, kept current from the database's revocation feed, so
// checking a bearer token costs two Map lookups instead of a query (GET / is the hot path).
import type { Clock } from '../lib/clock.js'
import { coalesced } from '../lib/coalesce.js'
import { every, type Periodic } from '../lib/periodic.js'

// A transaction commits well within this after taking its seq (the pool's query timeout is 15 s);
// one slower still is brought by the settled mark instead.
const LATE_COMMIT_MS = 60_000
// At most this many seqs looked up again per read: a bound on each poll's cost.
const MAX_MISSING = 1_000

/** An entry of the revocation feed: a row of its table (storage/tables.ts wraps it). */
export interface RevocationEntry {
  seq: number
  /**
   * 'session': every token carrying this sid (subject). 'token': the sid-less token with this
   * jti of this user (subject `${userId}:${jti}`), or the client access token with this jti of
   * this client (subject clientTokenSubject(), RFC 7009). 'user' (subject: the user id): the user's
   * sid-less tokens issued before `at`; a token without iat (the seed's) is void when it expires
   * no later than `expires_at`, which its writer sets at least at + the longest lifetime of such
   * a token (sessions.ts SEED_TOKEN_LIFETIME_MS), and at least to the exp of the token logged out.
   * 'client' (subject: the client id): every access token of that client (client_credentials)
   * issued in or before the second of `at` (iat, in seconds, <= `at` / 1000); written when the
   * client is deleted, with `at` past the deletion and `expires_at` after its last such token
   * (clientCutoff).
   */
  kind: 'session' | 'token' | 'user' | 'client'
  subject: string
  /** Epoch ms: when it was revoked ('user', 'client': the cutoff). */
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

/**
 * Where a reader stands in the feed. Why three parts: on PostgreSQL a sequence number alone is not
 * a commit order (ARCHITECTURE.md). `seq` is handed out at INSERT, so a transaction that took 41
 * can commit after one that took 42 was read; `seq > 42` would skip 41 for good (issue 9).
 * Exactness comes from `settled`, a low-water mark below which every transaction has finished;
 * `after` and `missing` only make the common case fast. Chosen over a commit-time margin (not
 * exact: a transaction can stall past any margin) and over ids carried in the signal (a lost
 * signal would still need a read that cannot skip, which is this one).
 */
export interface FeedPosition {
  /** The highest seq read so far: anything above it is new. */
  after: number
  /** Seqs at or below `after` not read yet, looked up again for a while: the fast path for a late commit. */
  missing: number[]
  /**
   * The database's mark, opaque here: every entry whose transaction finished before it has been
   * read (PostgreSQL: a transaction id, see storage). Undefined before the first read, and where
   * writers are serialised (SQLite: seq order is commit order, so `after` alone is exact).
   */
  settled: string | undefined
}

export interface RevocationFeed {
  /**
   * One consistent read, as of one moment: entries with seq above `after`, entries whose seq is in
   * `missing`, and every entry whose transaction finished between `settled` and now; with the mark
   * to pass as `settled` next time. Entries may repeat: applying one twice changes nothing.
   */
  read(
    position: FeedPosition,
    now: number,
  ): Promise<{ entries: RevocationEntry[]; settled: string | undefined }>
  prune(now: number): Promise<void>
}

/** The feed's subject for one client access token: never a user's `${userId}:${jti}` (not a number). */
export const clientTokenSubject = (clientId: string, jti: string) => `client:${clientId}:${jti}`

/**
 * How far past the deletion's start a client's cutoff reaches. A grant that authenticated the
 * client just before the deletion committed (its read still saw the row) mints its token a moment
 * later, maybe after the commit, maybe on a host whose clock is ahead: its iat can fall after the
 * deletion's time, and comparing iat with that time alone would let it live (a seconds-rounded iat
 * and clocks of different processes make no time-only cutoff exact). No token of a deleted client
 * is legitimate after its deletion (ids are random, never chosen: none is ever registered again),
 * so the cutoff may reach past it at no cost but remembering the entry that much longer. This
 * covers the deletion's transaction (each of its statements is cut at the pool's query timeout,
 * 15 s), an event loop stalled for seconds, and a clock as far ahead as an iat may be (IAT_SKEW_MS, a minute).
 */
export const CLIENT_CUTOFF_MARGIN_MS = 5 * 60_000

/**
 * The feed entry that voids the access tokens of a client deleted at `now`: those issued up to the
 * cutoff second, kept until the last of them expires, `tokenLifetimeMs` (their lifetime) after it.
 * RFC 7592 §2.3: deleting a client SHOULD invalidate at once the access tokens issued to it; RFC
 * 7009 §2.1: a revoked token cannot be used again (here: by none of our processes, after one poll).
 */
export function clientCutoff(
  clientId: string,
  now: number,
  tokenLifetimeMs: number,
): Pick<RevocationEntry, 'kind' | 'subject' | 'at' | 'expires_at'> {
  const at = now + CLIENT_CUTOFF_MARGIN_MS
  return { kind: 'client', subject: clientId, at, expires_at: at + tokenLifetimeMs }
}

/**
 * The last iat a cutoff voids. iat is in whole seconds, rounded down (RFC 7519 §2 NumericDate,
 * client-tokens.ts grant), so a token minted later in the cutoff's own second carries that
 * second's iat too: the cutoff is in effect rounded up to its second's end, and `iat <=` this
 * (not `iat * 1000 <` the cutoff, which would spare the second a cutoff falls exactly on).
 */
const cutoffSecond = (at: number) => Math.floor(at / 1000)

export interface RevocationView {
  /** True when the token's session was revoked, or (tokens without a sid) the token or its user's were. */
  isRevoked(claims: RevocableClaims): boolean
  /** True when the session `sid` (of any kind) was ended. */
  isSessionRevoked(sid: string): boolean
  /**
   * True when this client access token (RFC 9068, client_credentials) was revoked, or its client
   * deleted: `iat` (epoch seconds) in or before the second of the client's cutoff.
   */
  isClientTokenRevoked(clientId: string, jti: string, iat: number): boolean
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
    lateCommitMs = LATE_COMMIT_MS,
  }: {
    pollMs?: number
    /** How long a missing seq is looked up again before only the settled mark is left to bring it. */
    lateCommitMs?: number
    onError?: (err: unknown) => void
    /** Tells the other processes that the feed grew (domain/broadcast.ts); never throws. */
    announce?: () => void
  } = {},
): RevocationView {
  const sessions = new Map<string, number>() // sid -> expires_at
  const tokens = new Map<string, number>() // `${userId}:${jti}` -> expires_at
  const users = new Map<number, { at: number; expiresAt: number }>()
  const clients = new Map<string, { at: number; expiresAt: number }>() // client id -> its cutoff
  let after = 0
  // seq -> when it was first found missing. Insertion order is ascending seq, so the first are the oldest.
  const missing = new Map<number, number>()
  let settled: string | undefined
  let started = false
  let timer: Periodic | undefined
  let polls = 0

  function remember(entries: Pick<RevocationEntry, 'kind' | 'subject' | 'at' | 'expires_at'>[]) {
    for (const e of entries) {
      if (e.kind === 'session') sessions.set(e.subject, e.expires_at)
      else if (e.kind === 'token') tokens.set(e.subject, e.expires_at)
      else if (e.kind === 'user') widen(users, Number(e.subject), e)
      else if (e.kind === 'client') widen(clients, e.subject, e)
      // A kind a later version writes is not read as a user cutoff: this version ignores it.
    }
  }

  /**
   * Notes which seqs were skipped over: each may belong to a transaction still open, and is looked
   * up again at every read until it shows up, for `lateCommitMs` at most and MAX_MISSING at once
   * (a rolled-back insert leaves a seq that never shows up). That bound costs no exactness: the
   * settled mark brings every committed entry however late; this only brings most of them sooner.
   */
  function track(entries: RevocationEntry[], now: number) {
    const read = new Set<number>()
    let high = after
    for (const e of entries) {
      read.add(e.seq)
      if (e.seq > high) high = e.seq
    }
    // The first read starts from nothing: what lies below it is pruned history, not a late commit.
    if (started) {
      for (let seq = Math.max(after + 1, high - MAX_MISSING); seq < high; seq++) {
        if (!read.has(seq)) missing.set(seq, now)
      }
    }
    after = high
    started = true
    for (const [seq, since] of missing) {
      if (read.has(seq) || now - since > lateCommitMs) missing.delete(seq)
    }
    for (const seq of missing.keys()) {
      if (missing.size <= MAX_MISSING) break
      missing.delete(seq)
    }
  }

  /** Two cutoffs void the union of what each voids: the later `at`, the later expiry. */
  function widen<K>(
    cutoffs: Map<K, { at: number; expiresAt: number }>,
    key: K,
    e: Pick<RevocationEntry, 'at' | 'expires_at'>,
  ) {
    const prev = cutoffs.get(key)
    cutoffs.set(key, {
      at: Math.max(prev?.at ?? 0, e.at),
      expiresAt: Math.max(prev?.expiresAt ?? 0, e.expires_at),
    })
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
    isSessionRevoked: (sid) => sessions.has(sid),
    isClientTokenRevoked(clientId, jti, iat) {
      if (tokens.has(clientTokenSubject(clientId, jti))) return true
      const cutoff = clients.get(clientId)
      return cutoff !== undefined && iat <= cutoffSecond(cutoff.at)
    },
    apply(entries) {
      remember(entries)
      announce()
    },
    refresh: coalesced(async () => {
      const now = clock.now()
      const read = await feed.read({ after, missing: [...missing.keys()], settled }, now)
      remember(read.entries)
      track(read.entries, now)
      settled = read.settled
      // Forget what can no longer matter, here and (now and then) in the database.
      for (const [sid, expiresAt] of sessions) if (expiresAt <= now) sessions.delete(sid)
      for (const [key, expiresAt] of tokens) if (expiresAt <= now) tokens.delete(key)
      for (const [id, cutoff] of users) if (cutoff.expiresAt <= now) users.delete(id)
      for (const [id, cutoff] of clients) if (cutoff.expiresAt <= now) clients.delete(id)
      if (++polls % 600 === 0) await feed.prune(now)
    }),
    async start() {
      await view.refresh()
      // The database is away: keep the current view, report, and try again at the next tick.
      timer = every(pollMs, () => view.refresh(), onError)
    },
    stop() {
      timer?.stop()
      timer = undefined
    },
  }
  return view
}
