// Sessions and refresh tokens: rotation with reuse detection, a grace window for lost responses,
// and revocation that takes effect on the next request.
import type { Clock } from '../lib/clock.js'
import { openUnder, randomToken, sealUnder, sha256Hex } from '../lib/crypto.js'
import { randomId } from '../lib/random.js'
import { DomainError, ErrorCode } from './errors.js'
import type { RevocationView } from './revocations.js'
import type { TokenService } from './tokens.js'
import type { VerifiedUser } from './users.js'

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
}

export interface RefreshTokenRecord {
  id: string
  session_id: string
  token_hash: string
  created_at: number
  expires_at: number
  spent_at: number | null
  successor: string | null
}

export interface SessionsRepository {
  /** False, and nothing stored, unless the user's credential epoch is still `epoch`. */
  insertSessionWithToken(session: SessionRecord, token: RefreshTokenRecord, epoch: number): Promise<boolean>
  listLiveSessions(userId: number, now: number): Promise<SessionRecord[]>
  findRefreshToken(tokenHash: string): Promise<
    | (RefreshTokenRecord & {
        user_id: number
        username: string
        session_expires_at: number
        session_revoked_at: number | null
      })
    | undefined
  >
  rotateRefreshToken(
    spentId: string,
    spentAt: number,
    successor: string,
    next: RefreshTokenRecord,
  ): Promise<boolean>
  revokeSessions(
    userId: number,
    at: number,
    reason: string,
    feedExpiresAt: number,
    ids?: string[],
  ): Promise<string[]>
  insertUserCutoff(userId: number, at: number, feedExpiresAt: number): Promise<void>
}

/** storage/credentials.repository.ts: credential changes, one transaction each. */
export interface CredentialsRepository {
  commitCredentialChange(change: {
    userId: number
    epoch: number
    passwordHash: string | undefined
    keepSession: string | undefined
    at: number
    reason: string
    feedExpiresAt: number
  }): Promise<string[] | undefined>
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

export interface SessionView {
  id: string
  createdAt: string
  lastUsedAt: string
  userAgent: string | null
  ip: string | null
  current: boolean
}

/** Why a session ended, as recorded and as the audit trail will name it. */
export type EndReason = 'logout' | 'revoked' | 'refresh_reuse' | 'password_changed' | 'account_deleted'

export interface SessionEvents {
  /** A spent refresh token came back after the grace window: the session was revoked. */
  reuseDetected?(info: { userId: number; sessionId: string }): void
}

/** RFC 6749 §5.2 invalid_grant: the refresh token is unknown, expired, spent or revoked. */
export class InvalidGrant extends DomainError {
  constructor(detail = 'The refresh token is invalid, expired or revoked') {
    super(ErrorCode.invalidGrant, detail)
  }
}

const USER_AGENT_MAX = 512

export interface SessionService {
  /**
   * After a successful password login: a new session, an access token carrying its sid, a refresh
   * token. Undefined when the credential changed (or the user went) since it was verified.
   */
  start(user: VerifiedUser, client: ClientInfo): Promise<TokenPair | undefined>
  refresh(refreshToken: string): Promise<TokenPair & { userId: number; sessionId: string }>
  list(userId: number, currentSid: string | undefined): Promise<SessionView[]>
  /** Ends the given sessions of a user (all when `ids` is omitted); returns how many ended. */
  end(userId: number, reason: EndReason, ids?: string[]): Promise<number>
  /**
   * Stores `change` for the credential `user` was verified at, and ends every session made under
   * it (all but `keepSession`) and the user's sid-less (seed) tokens, in one transaction: no
   * session of the old credential survives it, on any instance (storage/credentials.repository.ts).
   * Returns the new epoch; undefined, and nothing changed, when another change came first.
   */
  replaceCredential(user: VerifiedUser, change: CredentialChange): Promise<number | undefined>
  /** Whether the database still has the token's session live (or, without a sid, its user). */
  isCurrent(token: { id: number; sid?: string | undefined }): Promise<boolean>
  /** Ends every session of a user but `keep`, and voids the user's sid-less (seed) tokens. */
  endAllBut(userId: number, keep: string | undefined, reason: EndReason): Promise<void>
  /** RFC 7009: ends the session a refresh token belongs to; undefined when the token is unknown. */
  revokeRefreshToken(
    refreshToken: string,
  ): Promise<{ userId: number; sessionId: string; count: number } | undefined>
}

export function createSessionService(deps: {
  sessions: SessionsRepository
  credentials: CredentialsRepository
  tokens: TokenService
  revocations: RevocationView
  clock: Clock
  policy: SessionPolicy
  accessTtlMs: number
  events?: SessionEvents
}): SessionService {
  const { sessions, credentials, tokens, revocations, clock, policy, accessTtlMs, events = {} } = deps

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

  async function end(userId: number, reason: EndReason, ids?: string[]): Promise<number> {
    const at = clock.now()
    const expiresAt = at + accessTtlMs
    const ended = await sessions.revokeSessions(userId, at, reason, expiresAt, ids)
    // This process honours it on the very next request; others within one poll of the feed.
    revocations.apply(ended.map((subject) => ({ kind: 'session', subject, at, expires_at: expiresAt })))
    return ended.length
  }

  return {
    async start(user, client) {
      const now = clock.now()
      const session: SessionRecord = {
        id: randomId(),
        user_id: user.id,
        created_at: now,
        last_used_at: now,
        expires_at: now + policy.sessionMaxMs,
        user_agent: client.userAgent?.slice(0, USER_AGENT_MAX) ?? null,
        ip: client.ip,
        revoked_at: null,
        revoked_reason: null,
      }
      const refreshToken = randomToken()
      const stored = await sessions.insertSessionWithToken(
        session,
        newRefreshRecord(session.id, refreshToken, now, session.expires_at),
        user.epoch,
      )
      if (!stored) return undefined
      const access = tokens.issue({ id: user.id, username: user.username, sid: session.id })
      return { accessToken: access.accessToken, refreshToken, expiresIn: access.expiresIn }
    },

    async refresh(refreshToken) {
      // Two tries: losing the rotation race means someone else spent it a moment ago, which the
      // second look treats as a grace-window retry and answers with the winner's pair.
      for (let attempt = 0; attempt < 2; attempt++) {
        const now = clock.now()
        const row = await sessions.findRefreshToken(sha256Hex(refreshToken))
        if (!row || row.session_revoked_at !== null || row.session_expires_at <= now) throw new InvalidGrant()
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
          await end(row.user_id, 'refresh_reuse', [row.session_id])
          events.reuseDetected?.({ userId: row.user_id, sessionId: row.session_id })
          throw new InvalidGrant('The refresh token was already used; the session has been ended')
        }
        if (row.expires_at <= now) throw new InvalidGrant()
        const nextToken = randomToken()
        const access = tokens.issue({ id: row.user_id, username: row.username, sid: row.session_id })
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

    async list(userId, currentSid) {
      const iso = (ms: number) => new Date(ms).toISOString()
      return (await sessions.listLiveSessions(userId, clock.now())).map((s) => ({
        id: s.id,
        createdAt: iso(s.created_at),
        lastUsedAt: iso(s.last_used_at),
        userAgent: s.user_agent,
        ip: s.ip,
        current: s.id === currentSid,
      }))
    },

    end,

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
      })
      if (ended === undefined) return undefined
      revocations.apply([
        ...ended.map((subject) => ({ kind: 'session' as const, subject, at, expires_at: expiresAt })),
        { kind: 'user', subject: String(user.id), at, expires_at: expiresAt },
      ])
      // commitCredentialChange moves the epoch on by one, from the one verified.
      return user.epoch + 1
    },

    isCurrent: (token) => credentials.tokenIsCurrent(token, clock.now()),

    async endAllBut(userId, keep, reason) {
      const live = await sessions.listLiveSessions(userId, clock.now())
      await end(
        userId,
        reason,
        live.map((s) => s.id).filter((id) => id !== keep),
      )
      // Tokens without a sid (issued by the seed app, or before sessions) end too.
      const at = clock.now()
      await sessions.insertUserCutoff(userId, at, at + accessTtlMs)
      revocations.apply([{ kind: 'user', subject: String(userId), at, expires_at: at + accessTtlMs }])
    },

    async revokeRefreshToken(refreshToken) {
      const row = await sessions.findRefreshToken(sha256Hex(refreshToken))
      if (!row) return undefined
      return {
        userId: row.user_id,
        sessionId: row.session_id,
        count: await end(row.user_id, 'revoked', [row.session_id]),
      }
    },
  }
}
