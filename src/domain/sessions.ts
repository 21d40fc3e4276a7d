// Sessions and refresh tokens: rotation with reuse detection, a grace window for lost responses,
// and revocation that takes effect on the next request.
import type { Clock } from '../lib/clock.js'
import { openUnder, randomToken, sealUnder, sha256Hex } from '../lib/crypto.js'
import { randomId } from '../lib/random.js'
import { DomainError, ErrorCode, ValidationError } from './errors.js'
import type { RevocableClaims, RevocationView } from './revocations.js'
import type { TokenService } from './tokens.js'
import type { VerifiedUser } from './users.js'

/**
 * 'token': refresh and access tokens (the password grant's, or a client's from a code exchange).
 * 'browser': AuthGate's own browser session, named by a cookie (domain/browser-sessions.ts).
 */
export type SessionKind = 'token' | 'browser'

/** A row of the sessions table (storage/tables.ts takes it as is). */
export interface SessionRecord {
  id: string
  user_id: number
  created_at: number
  last_used_at: number
  expires_at: number
  user_agent: string | null
  ip: string | null
  revoked_at: number | null
  revoked_reason: string | null
  kind: SessionKind
  /** The OAuth client it was issued to; null for the first-party password grant and browser sessions. */
  client_id: string | null
  /** The browser session whose authorization code led to it; ending that one ends this one. */
  browser_session_id: string | null
  /** Browser sessions: SHA-256 of the cookie value, hex; null for token sessions. */
  secret_hash: string | null
  /** Epoch ms of the authentication it rests on (OIDC Core §2 auth_time); null before 2026_12_03_003. */
  auth_time: number | null
  /** RFC 8176 amr values, as a JSON array; null as auth_time. */
  amr: string | null
  /** The scope granted to the client, space-separated; null for the password grant and browser sessions. */
  scope: string | null
}

/** A row of the refresh tokens table (storage/tables.ts takes it as is). */
export interface RefreshTokenRecord {
  id: string
  session_id: string
  /** SHA-256 of the token, hex; the token itself is never stored. */
  token_hash: string
  created_at: number
  expires_at: number
  spent_at: number | null
  successor: string | null
}

/** storage/sessions.repository.ts. */
export interface SessionsRepository {
  /**
   * Stores a session (a token session with its first refresh token) in one transaction. False,
   * and nothing stored, unless, as that transaction reads them: the user's credential epoch is
   * still `epoch`; the session's client, when it names one, is registered; its browser session,
   * when it names one, is live and the same user's. Each is read row-locked, so a credential
   * change, a client's deletion or a browser session's end either comes first (and this stores
   * nothing) or waits for this and then ends it (credentials.repository.ts says why).
   */
  insertSession(session: SessionRecord, epoch: number, token?: RefreshTokenRecord): Promise<boolean>
  /** One page of the user's live sessions, newest first: those after `after` in (created_at, id) order. */
  listLiveSessionsPage(
    userId: number,
    now: number,
    limit: number,
    after?: { createdAt: number; id: string },
  ): Promise<SessionRecord[]>
  /** Ids of the user's live sessions beyond the `keep` most recently used (the ones a cap ends). */
  /**
   * The live sessions beyond the `keep` most recently used; `inUse`, when live, counts as used
   * `now` (a browser session whose code a new session came from).
   */
  listSessionsBeyond(userId: number, keep: number, now: number, inUse: string | null): Promise<string[]>
  findRefreshToken(tokenHash: string): Promise<
    | (RefreshTokenRecord & {
        user_id: number
        username: string
        session_expires_at: number
        session_revoked_at: number | null
        /** The session's client, scope, and its user's subject: what a client's access token says. */
        client_id: string | null
        scope: string | null
        subject: string
      })
    | undefined
  >
  /** The user a session (of any kind, live or not) belongs to; undefined when there is none. */
  sessionOwner(sessionId: string): Promise<number | undefined>
  /** Spends `spentId` and stores its successor `next`, in one transaction; false when already spent. */
  rotateRefreshToken(
    spentId: string,
    spentAt: number,
    successor: string,
    next: RefreshTokenRecord,
  ): Promise<boolean>
  /**
   * Revokes the given live sessions (all of the user's when `ids` is omitted) and appends them to
   * the revocation feed in the same transaction. With `andStarted`, the live sessions that any
   * browser session among `ids` started (live or not) end with them. Returns the revoked ids.
   */
  revokeSessions(
    userId: number,
    at: number,
    reason: string,
    feedExpiresAt: number,
    ids?: string[],
    options?: { andStarted?: boolean },
  ): Promise<string[]>
  /** Revokes every live session issued to the client, of every user, into the feed, in one transaction. */
  revokeClientSessions(clientId: string, at: number, reason: string, feedExpiresAt: number): Promise<string[]>
  /** The browser session whose cookie hashes to `secretHash`, live or not. */
  findBrowserSession(secretHash: string): Promise<(SessionRecord & { username: string }) | undefined>
  /** Sets a live session's last use and expiry; false when it is no longer live. */
  touchSession(id: string, at: number, expiresAt: number): Promise<boolean>
  /** Voids the user's tokens that carry no sid and were issued before `at` (seed-issued tokens). */
  insertUserCutoff(userId: number, at: number, feedExpiresAt: number): Promise<void>
  /** Voids one sid-less token, named `${userId}:${jti}`, until its exp. */
  insertTokenRevocation(subject: string, at: number, feedExpiresAt: number): Promise<void>
}

/**
 * The longest lifetime of a token the seed app issues: its POST /auth/token calls
 * create_access_token(..., timedelta(minutes=30)). Its tokens carry no iat, so a cutoff that must
 * void those issued before it stays in force this long (and longer if AuthGate's own are longer).
 */
export const SEED_TOKEN_LIFETIME_MS = 30 * 60_000

/** A credential change as storage commits it (storage/credentials.repository.ts). */
export interface CredentialChangeRecord {
  userId: number
  /** The epoch the caller verified the current password against. */
  epoch: number
  /** The new password's hash; undefined deletes the account. */
  passwordHash: string | undefined
  /** A session that stays (the one changing its own password). */
  keepSession: string | undefined
  at: number
  reason: string
  /** When the revocation feed may forget the entries (every access token they affect has expired). */
  feedExpiresAt: number
  /** The same for the user cutoff voiding sid-less (seed) tokens, which may live longer. */
  cutoffExpiresAt: number
}

/** storage/credentials.repository.ts: credential changes, one transaction each. */
export interface CredentialsRepository {
  /**
   * Replaces or removes the credential verified at `change.epoch`, and revokes (into the
   * revocation feed) every session of the user but `keepSession`, in one transaction. Undefined
   * when the epoch moved meanwhile or the user is gone; else the revoked ids.
   */
  commitCredentialChange(change: CredentialChangeRecord): Promise<string[] | undefined>
  /**
   * Whether a token still speaks for a live account: its session (when it names one) is live and
   * is this user's, else the user exists.
   */
  tokenIsCurrent(token: { id: number; sid?: string | undefined }, now: number): Promise<boolean>
}

/** What replaces the credential: a new password (the caller's own session may stay), or nothing. */
export type CredentialChange = { passwordHash: string; keepSession?: string | undefined } | { deleted: true }

export interface SessionPolicy {
  /** A refresh token unused this long expires (REFRESH_TOKEN_EXPIRE_DAYS). */
  refreshIdleMs: number
  /** No session outlives this, however often it refreshes (SESSION_MAX_DAYS). */
  sessionMaxMs: number
  /** A just-spent token presented again within this window gets the same new pair back. */
  reuseGraceMs: number
  /** Live sessions per user (MAX_SESSIONS_PER_USER); a login beyond it ends the least recently used. */
  maxPerUser: number
}

export interface ClientInfo {
  userAgent: string | null
  ip: string | null
}

export interface TokenPair {
  accessToken: string
  refreshToken: string
  expiresIn: number
}

/** What starting a session hands out: a refresh token unless the origin says none (SessionOrigin.refresh). */
export type StartedSession = Omit<TokenPair, 'refreshToken'> & { refreshToken?: string; sessionId: string }

export interface SessionView {
  id: string
  createdAt: string
  lastUsedAt: string
  userAgent: string | null
  ip: string | null
  current: boolean
  kind: SessionKind
  /** The client it was issued to; null for the first-party password grant and browser sessions. */
  clientId: string | null
}

/** Where a client's token session comes from: the authorization code its client exchanged. */
export interface SessionOrigin {
  clientId: string
  /** The browser session that authenticated the user for the code, if one did. */
  browserSessionId: string | null
  scope: string
  /** Epoch ms of the user's authentication (the code's auth_time). */
  authTime: number
  amr: readonly string[]
  /** The user's subject: the `sub` of the client's access tokens (never the username). */
  subject: string
  /**
   * Whether the client gets a refresh token (offline_access, or a first-party client). Without
   * one the session lasts as long as its access token, and no longer.
   */
  refresh: boolean
}

/** Why a session ended, as recorded and as the audit trail will name it. */
export type EndReason =
  | 'logout'
  | 'revoked'
  | 'refresh_reuse'
  | 'password_changed'
  | 'account_deleted'
  | 'session_limit'
  | 'client_deleted'

export interface SessionEvents {
  /** A spent refresh token came back after the grace window: the session was revoked. */
  reuseDetected?(info: { userId: number; sessionId: string }): void
  /** A login went beyond the per-user cap: these least recently used sessions were ended. */
  capReached?(info: { userId: number; sessionIds: string[] }): void
  /** `count` sessions (or sid-less tokens) were ended, for `reason`; for the metrics. */
  ended?(reason: EndReason, count: number): void
}

/** RFC 6749 §5.2 invalid_grant: the refresh token is unknown, expired, spent or revoked. */
export class InvalidGrant extends DomainError {
  constructor(
    detail = 'The refresh token is invalid, expired or revoked',
    /** A spent token came back: its session was ended (counted apart in the metrics). */
    readonly reuseDetected = false,
  ) {
    super(ErrorCode.invalidGrant, detail)
  }
}

const USER_AGENT_MAX = 512

/** A page of GET /auth/sessions, and where the next one starts (undefined on the last page). */
export interface SessionPage {
  sessions: SessionView[]
  next: string | undefined
}

// A cursor is `<created_at>.<id>` of the last session on the page: opaque to clients, cheap to
// check, and it carries nothing another user could not see on their own list.
const CURSOR = /^([0-9]{1,16})\.([A-Za-z0-9_-]{1,64})$/

function parseCursor(text: string): { createdAt: number; id: string } {
  const match = CURSOR.exec(text)
  if (!match) {
    throw new ValidationError([{ loc: ['query', 'cursor'], msg: 'Invalid cursor', type: 'value_error' }])
  }
  return { createdAt: Number(match[1]), id: match[2] as string }
}

export interface SessionService {
  /**
   * After a successful password login, or a client's code exchange (`origin`): a new session, an
   * access token carrying its sid, a refresh token. Undefined when the credential changed (or the
   * user went) since it was verified, or the origin's client or browser session is gone.
   */
  start(
    user: VerifiedUser,
    client: ClientInfo,
    origin?: SessionOrigin,
    /** The password grant's methods (RFC 8176): `pwd`, and `otp` or `mfa` after a second step. */
    amr?: readonly string[],
  ): Promise<StartedSession | undefined>
  /**
   * Rotates a refresh token. `clientId`: the client the request authenticated, if any; a token a
   * client's session holds is refused unless it is that client's (RFC 6749 §6), one of the
   * first-party password grant's whatever is sent (the seed's clients send none).
   */
  refresh(
    refreshToken: string,
    clientId?: string | undefined,
  ): Promise<TokenPair & { userId: number; sessionId: string }>
  /** One page of the user's live sessions, newest first; `cursor` is a previous page's `next`. */
  list(
    userId: number,
    currentSid: string | undefined,
    page: { limit: number; cursor?: string | undefined },
  ): Promise<SessionPage>
  /**
   * Ends the given sessions of a user (all when `ids` is omitted): a browser session among them
   * ends with every session it started. Returns how many ended.
   */
  end(userId: number, reason: EndReason, ids?: string[]): Promise<number>
  /** Ends every session issued to the client (its deletion); returns how many ended. */
  endClient(clientId: string): Promise<number>
  /**
   * Ends one session, whoever's it is (with what it started, if a browser session); the user it
   * belonged to, or undefined when there is no such session. Idempotent.
   */
  endSession(sessionId: string, reason: EndReason): Promise<{ userId: number; count: number } | undefined>
  /**
   * Stores `change` for the credential `user` was verified at, and ends every session made under
   * it (all but `keepSession`) and the user's sid-less (seed) tokens, in one transaction: no
   * session of the old credential survives it, on any instance (storage/credentials.repository.ts).
   * Returns the new epoch; undefined, and nothing changed, when another change came first.
   */
  replaceCredential(user: VerifiedUser, change: CredentialChange): Promise<number | undefined>
  /** Whether the database still has the token's session live (or, without a sid, its user). */
  isCurrent(token: { id: number; sid?: string | undefined }): Promise<boolean>
  /**
   * Ends a token without a sid (the seed app's): by its jti when it has one, else by voiding
   * every sid-less token of its user issued before now (they cannot be told apart). False when
   * this process already holds it revoked, so a repeat writes nothing.
   */
  endSidless(token: RevocableClaims & { exp: number }, reason?: EndReason): Promise<boolean>
  /**
   * RFC 7009: ends the session a refresh token belongs to; undefined when the token is unknown, or
   * is not `clientId`'s (RFC 7009 §2.1: only the client it was issued to may revoke it; null: the
   * first-party password grant's, which name no client).
   */
  revokeRefreshToken(
    refreshToken: string,
    clientId: string | null,
  ): Promise<{ userId: number; sessionId: string; count: number } | undefined>
}

export interface SessionServiceDeps {
  sessions: SessionsRepository
  credentials: CredentialsRepository
  tokens: TokenService
  revocations: RevocationView
  clock: Clock
  policy: SessionPolicy
  accessTtlMs: number
  events?: SessionEvents
  /**
   * Mints the access token of a client's session (RFC 9068, domain/client-tokens.ts); sessions
   * without a client get the first-party token of `tokens`. Needed once a code exchange starts one.
   */
  clientAccess?: (grant: { clientId: string; subject: string; scope: string; sid: string }) => {
    accessToken: string
    expiresIn: number
  }
}

/** What every kind of session shares: how one is admitted, and how sessions end. */
export interface SessionLifecycle {
  /**
   * Stores a new session (SessionsRepository.insertSession: under the credential epoch, its
   * client and its browser session), then holds its user to the cap. False: nothing stored.
   */
  admit(session: SessionRecord, epoch: number, token?: RefreshTokenRecord): Promise<boolean>
  /** Ends sessions of a user through the revocation feed; `andStarted`: see revokeSessions. */
  end(userId: number, reason: EndReason, ids?: string[], options?: { andStarted?: boolean }): Promise<number>
  /** Ends every session issued to the client, through the revocation feed. */
  endClient(clientId: string): Promise<number>
}

/**
 * The lifecycle on `deps`. Every end goes into the revocation feed in the transaction that
 * revokes, and into this process's view at once (which tells the other processes to read the
 * feed now): a session of any kind, once ended, is refused by every instance.
 */
export function createSessionLifecycle(
  deps: Pick<SessionServiceDeps, 'sessions' | 'clock' | 'accessTtlMs' | 'events'> & {
    revocations: Pick<RevocationView, 'apply'>
    policy: Pick<SessionPolicy, 'maxPerUser'>
  },
): SessionLifecycle {
  const { sessions, revocations, clock, policy, accessTtlMs, events = {} } = deps

  /** Ends `run`'s sessions: it revokes them (into the feed) as of `at`, until `expiresAt`. */
  async function ending(
    reason: EndReason,
    run: (at: number, expiresAt: number) => Promise<string[]>,
  ): Promise<number> {
    const at = clock.now()
    const expiresAt = at + accessTtlMs
    const ended = await run(at, expiresAt)
    // This process honours it on the very next request; others within one poll of the feed.
    revocations.apply(ended.map((subject) => ({ kind: 'session', subject, at, expires_at: expiresAt })))
    if (ended.length > 0) events.ended?.(reason, ended.length)
    return ended.length
  }

  const end: SessionLifecycle['end'] = (userId, reason, ids, options) =>
    ending(reason, (at, expiresAt) => sessions.revokeSessions(userId, at, reason, expiresAt, ids, options))

  /**
   * OWASP ASVS 5.0 7.1.2 (a documented limit on concurrent sessions per account): a user has at most `maxPerUser` live sessions. Run after
   * the new session is stored, so of logins racing on any number of instances, the last to get
   * here sees every session committed before it and trims to the cap: once they have all
   * answered, at most the cap is alive. The least recently used end first; the new one is the
   * most recent, so it stays unless more logins than the cap race at once. Browser sessions
   * count like any other; one trimmed leaves the sessions it started alone (they count themselves).
   * The browser session a new one was started from is in use at this very moment, though its
   * last_used_at is written at most once a minute (BROWSER_SESSION_TOUCH_MS): it counts as the
   * most recent, or a browser signing in to many clients in a minute would be signed out by them.
   */
  async function endBeyondCap(userId: number, now: number, inUse: string | null): Promise<void> {
    const beyond = await sessions.listSessionsBeyond(userId, policy.maxPerUser, now, inUse)
    if (beyond.length === 0) return
    await end(userId, 'session_limit', beyond)
    events.capReached?.({ userId, sessionIds: beyond })
  }

  return {
    async admit(session, epoch, token) {
      if (!(await sessions.insertSession(session, epoch, token))) return false
      await endBeyondCap(session.user_id, session.created_at, session.browser_session_id)
      return true
    },
    end,
    endClient: (clientId) =>
      ending('client_deleted', (at, expiresAt) =>
        sessions.revokeClientSessions(clientId, at, 'client_deleted', expiresAt),
      ),
  }
}

/** A new session's row: who, from where, as of `now`; `facts` says which kind and its own columns. */
export function newSessionRecord(
  userId: number,
  client: ClientInfo,
  now: number,
  facts: Pick<SessionRecord, 'kind' | 'expires_at'> & Partial<SessionRecord>,
): SessionRecord {
  return {
    id: randomId(),
    user_id: userId,
    created_at: now,
    last_used_at: now,
    user_agent: client.userAgent?.slice(0, USER_AGENT_MAX) ?? null,
    ip: client.ip,
    revoked_at: null,
    revoked_reason: null,
    client_id: null,
    browser_session_id: null,
    secret_hash: null,
    auth_time: now,
    amr: null,
    scope: null,
    ...facts,
  }
}

export function createSessionService(deps: SessionServiceDeps): SessionService {
  const { sessions, credentials, tokens, revocations, clock, policy, accessTtlMs, events = {} } = deps
  const lifecycle = createSessionLifecycle(deps)

  /** The access token of a session: a client's (RFC 9068) when it has one, else the first-party one. */
  function accessFor(session: {
    id: string
    userId: number
    username: string
    clientId: string | null
    scope: string | null
    subject: string
  }) {
    if (session.clientId === null) {
      return tokens.issue({ id: session.userId, username: session.username, sid: session.id })
    }
    if (!deps.clientAccess) throw new Error('no clientAccess to mint a client session its access token')
    return deps.clientAccess({
      clientId: session.clientId,
      subject: session.subject,
      scope: session.scope ?? '',
      sid: session.id,
    })
  }

  function newRefreshRecord(sessionId: string, token: string, now: number, sessionExpiresAt: number) {
    return {
      id: randomId(),
      session_id: sessionId,
      token_hash: sha256Hex(token),
      created_at: now,
      // Idle expiry, but never past the session's absolute end.
      expires_at: Math.min(now + policy.refreshIdleMs, sessionExpiresAt),
      spent_at: null,
      successor: null,
    }
  }

  // A user cutoff must outlive every token it voids: AuthGate's, and the seed's (no iat, see
  // revocations.ts), whichever lives longer.
  const cutoffTtlMs = Math.max(accessTtlMs, SEED_TOKEN_LIFETIME_MS)

  return {
    async start(user, client, origin, amr) {
      const now = clock.now()
      const withRefresh = origin?.refresh ?? true
      const session = newSessionRecord(user.id, client, now, {
        kind: 'token',
        // Without a refresh token nothing outlives the access token, so neither does the session.
        expires_at: now + (withRefresh ? policy.sessionMaxMs : accessTtlMs),
        // The password grant is a password, now (RFC 8176 §2 `pwd`); a code carries its own.
        auth_time: origin?.authTime ?? now,
        amr: JSON.stringify(origin?.amr ?? amr ?? ['pwd']),
        client_id: origin?.clientId ?? null,
        browser_session_id: origin?.browserSessionId ?? null,
        scope: origin?.scope ?? null,
      })
      const refreshToken = withRefresh ? randomToken() : undefined
      const token =
        refreshToken === undefined
          ? undefined
          : newRefreshRecord(session.id, refreshToken, now, session.expires_at)
      if (!(await lifecycle.admit(session, user.epoch, token))) return undefined
      const access = accessFor({
        id: session.id,
        userId: user.id,
        username: user.username,
        clientId: session.client_id,
        scope: session.scope,
        subject: origin?.subject ?? '',
      })
      return {
        accessToken: access.accessToken,
        ...(refreshToken === undefined ? {} : { refreshToken }),
        expiresIn: access.expiresIn,
        sessionId: session.id,
      }
    },

    async refresh(refreshToken, clientId) {
      // Two tries: losing the rotation race means someone else spent it a moment ago, which the
      // second look treats as a grace-window retry and answers with the winner's pair.
      for (let attempt = 0; attempt < 2; attempt++) {
        const now = clock.now()
        const row = await sessions.findRefreshToken(sha256Hex(refreshToken))
        if (!row || row.session_revoked_at !== null || row.session_expires_at <= now) throw new InvalidGrant()
        // RFC 6749 §6: a client's refresh token works only for the client it was issued to (which
        // authenticated, §6 and RFC 9700 §4.14); the same invalid_grant as an unknown one. The
        // token is not spent: presenting it is no sign it was stolen from the client.
        if (row.client_id !== null && row.client_id !== clientId) throw new InvalidGrant()
        if (row.spent_at !== null) {
          const sealed = now - row.spent_at <= policy.reuseGraceMs && row.successor
          const opened = sealed ? openUnder(refreshToken, sealed) : undefined
          if (opened) {
            const pair = JSON.parse(opened) as TokenPair
            // A client that lost the response has not used the new token yet; once it has, an
            // old token coming back is a copy, whatever the clock says.
            const successor = await sessions.findRefreshToken(sha256Hex(pair.refreshToken))
            if (successor && successor.spent_at === null) {
              return { ...pair, userId: row.user_id, sessionId: row.session_id }
            }
          }
          // RFC 6749 §10.4 / OAuth 2.0 Security BCP §4.14: a spent refresh token coming back
          // means it was stolen or copied; end the whole session.
          await lifecycle.end(row.user_id, 'refresh_reuse', [row.session_id])
          events.reuseDetected?.({ userId: row.user_id, sessionId: row.session_id })
          throw new InvalidGrant('The refresh token was already used; the session has been ended', true)
        }
        if (row.expires_at <= now) throw new InvalidGrant()
        const nextToken = randomToken()
        const access = accessFor({
          id: row.session_id,
          userId: row.user_id,
          username: row.username,
          clientId: row.client_id,
          scope: row.scope,
          subject: row.subject,
        })
        const pair: TokenPair = {
          accessToken: access.accessToken,
          refreshToken: nextToken,
          expiresIn: access.expiresIn,
        }
        const next = newRefreshRecord(row.session_id, nextToken, now, row.session_expires_at)
        if (
          await sessions.rotateRefreshToken(row.id, now, sealUnder(refreshToken, JSON.stringify(pair)), next)
        ) {
          return { ...pair, userId: row.user_id, sessionId: row.session_id }
        }
      }
      throw new InvalidGrant()
    },

    async list(userId, currentSid, { limit, cursor }) {
      const after = cursor === undefined ? undefined : parseCursor(cursor)
      const iso = (ms: number) => new Date(ms).toISOString()
      // One more than asked says whether another page follows, without a count query.
      const rows = await sessions.listLiveSessionsPage(userId, clock.now(), limit + 1, after)
      const page = rows.slice(0, limit)
      const last = page[page.length - 1]
      return {
        sessions: page.map((s) => ({
          id: s.id,
          createdAt: iso(s.created_at),
          lastUsedAt: iso(s.last_used_at),
          userAgent: s.user_agent,
          ip: s.ip,
          current: s.id === currentSid,
          kind: s.kind,
          clientId: s.client_id,
        })),
        next: rows.length > limit && last ? `${last.created_at}.${last.id}` : undefined,
      }
    },

    end: (userId, reason, ids) => lifecycle.end(userId, reason, ids, { andStarted: ids !== undefined }),

    endClient: (clientId) => lifecycle.endClient(clientId),

    async endSession(sessionId, reason) {
      const userId = await sessions.sessionOwner(sessionId)
      if (userId === undefined) return undefined
      return { userId, count: await lifecycle.end(userId, reason, [sessionId], { andStarted: true }) }
    },

    async replaceCredential(user, change) {
      const at = clock.now()
      const expiresAt = at + accessTtlMs
      const deleted = 'deleted' in change
      const ended = await credentials.commitCredentialChange({
        userId: user.id,
        epoch: user.epoch,
        passwordHash: deleted ? undefined : change.passwordHash,
        keepSession: deleted ? undefined : change.keepSession,
        at,
        reason: deleted ? 'account_deleted' : 'password_changed',
        feedExpiresAt: expiresAt,
        cutoffExpiresAt: at + cutoffTtlMs,
      })
      if (ended === undefined) return undefined
      revocations.apply([
        ...ended.map((subject) => ({ kind: 'session' as const, subject, at, expires_at: expiresAt })),
        { kind: 'user', subject: String(user.id), at, expires_at: at + cutoffTtlMs },
      ])
      if (ended.length > 0) events.ended?.(deleted ? 'account_deleted' : 'password_changed', ended.length)
      // commitCredentialChange moves the epoch on by one, from the one verified.
      return user.epoch + 1
    },

    isCurrent: (token) => credentials.tokenIsCurrent(token, clock.now()),

    async endSidless(token, reason = 'revoked') {
      if (revocations.isRevoked(token)) return false
      const at = clock.now()
      const expMs = token.exp * 1000
      if (token.jti !== undefined) {
        // RFC 7519 §4.1.7: a jti names one token (here, one of this user's), void until its exp.
        const subject = `${token.id}:${token.jti}`
        await sessions.insertTokenRevocation(subject, at, expMs)
        revocations.apply([{ kind: 'token', subject, at, expires_at: expMs }])
        events.ended?.(reason, 1)
        return true
      }
      // No jti, no iat: this token is indistinguishable from the user's other seed tokens. The
      // cutoff lives until the presented token has expired, however long the seed made it live.
      const expiresAt = Math.max(at + cutoffTtlMs, expMs)
      await sessions.insertUserCutoff(token.id, at, expiresAt)
      revocations.apply([{ kind: 'user', subject: String(token.id), at, expires_at: expiresAt }])
      events.ended?.(reason, 1)
      return true
    },

    async revokeRefreshToken(refreshToken, clientId) {
      const row = await sessions.findRefreshToken(sha256Hex(refreshToken))
      if (!row || row.client_id !== clientId) return undefined
      return {
        userId: row.user_id,
        sessionId: row.session_id,
        count: await lifecycle.end(row.user_id, 'revoked', [row.session_id]),
      }
    },
  }
}
