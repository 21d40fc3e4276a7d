// The browser session at AuthGate itself: what single sign-on rests on (OpenID Connect Core 1.0
// §3.1.2.3: an end user who is already authenticated is not asked again unless the request says
// so). Its cookie is HttpOnly, Secure behind https and SameSite=Lax, and names a session row:
// ending it (logout, a password change, an admin) takes effect at once, on every instance.
//
// A browser session is a row of the sessions table (kind 'browser') with no refresh token: its
// cookie's SHA-256 is stored instead. So it is admitted, capped and ended by the same lifecycle
// as a token session (sessions.ts createSessionLifecycle): the credential epoch at its start, the
// per-user cap, and every end (logout, a password change, account deletion, an operator) going
// through the revocation feed, where its id is a sid like any other.
//
// Lifetime (OWASP ASVS 5.0 7.1.1, 7.3.1, 7.3.2): at most SESSION_MAX_DAYS from the login however
// often it is used (absolute), and BROWSER_SESSION_IDLE_MS without use (sliding). A password
// alone is AAL1, for which NIST SP 800-63B §4.1.3 asks for reauthentication at least every 30
// days (SESSION_MAX_DAYS' default) and sets no idle limit; a day idle is ours, so a browser left
// signed in on a shared machine does not stay so for a month.
import type { Clock } from '../lib/clock.js'
import { randomToken, sha256Hex } from '../lib/crypto.js'
import type { RevocationView } from './revocations.js'
import {
  type ClientInfo,
  createSessionLifecycle,
  type EndReason,
  newSessionRecord,
  type SessionEvents,
  type SessionPolicy,
  type SessionRecord,
  type SessionsRepository,
} from './sessions.js'
import type { VerifiedUser } from './users.js'

/** A browser session unused this long has ended (sliding: each use moves it on). */
export const BROWSER_SESSION_IDLE_MS = 24 * 60 * 60_000

/**
 * A use is written to the database at most this often (last_used_at, and the idle expiry moved
 * on): resolving a cookie is a read, not a write, on every request but one a minute. The idle
 * limit is therefore kept to within this much.
 */
export const BROWSER_SESSION_TOUCH_MS = 60_000

/**
 * Authentication method references (RFC 8176 §2): `pwd` a password, `otp` a TOTP code, `mfa` a
 * recovery code after the password, `hwk`/`swk` a device-bound or synced passkey, `user` its
 * user verification.
 */
export type AuthMethod = 'pwd' | 'otp' | 'hwk' | 'swk' | 'mfa' | 'user'

export interface BrowserSession {
  /** The session row's id: the `sid` of the ID tokens it leads to. */
  id: string
  userId: number
  username: string
  /** When the user last proved who they are (epoch ms): the ID token's auth_time, max_age's base. */
  authTime: number
  amr: AuthMethod[]
}

export interface BrowserSessionService {
  /**
   * After the login page verified `user`: a new browser session, and the cookie value that names
   * it, returned this once (only its hash is stored). Undefined when the credential changed since
   * it was verified, as for a token session.
   */
  start(
    user: VerifiedUser,
    facts: { amr: AuthMethod[]; client: ClientInfo },
  ): Promise<{ session: BrowserSession; cookie: string } | undefined>
  /** The live browser session a cookie names; undefined when unknown, expired or ended. */
  resolve(cookie: string | undefined): Promise<BrowserSession | undefined>
  /**
   * Ends the browser session a cookie names and every session started from it (the token
   * sessions its authorization codes led to): RP-initiated logout. Returns how many ended.
   */
  end(cookie: string, reason: EndReason): Promise<number>
}

export interface BrowserSessionDeps {
  sessions: SessionsRepository
  /** The view every token check reads: an ended browser session is refused by it at once. */
  revocations: RevocationView
  clock: Clock
  /** SESSION_MAX_DAYS (the absolute limit) and MAX_SESSIONS_PER_USER, as for token sessions. */
  policy: Pick<SessionPolicy, 'sessionMaxMs' | 'maxPerUser'>
  accessTtlMs: number
  events?: SessionEvents
}

const amrOf = (row: SessionRecord): AuthMethod[] =>
  row.amr === null ? [] : (JSON.parse(row.amr) as AuthMethod[])

export function createBrowserSessionService(deps: BrowserSessionDeps): BrowserSessionService {
  const { sessions, revocations, clock, policy } = deps
  const lifecycle = createSessionLifecycle(deps)

  /** Idle expiry, never past the absolute one. */
  const expiryAt = (row: Pick<SessionRecord, 'created_at'>, now: number) =>
    Math.min(now + BROWSER_SESSION_IDLE_MS, row.created_at + policy.sessionMaxMs)

  return {
    async start(user, { amr, client }) {
      const now = clock.now()
      // OWASP ASVS 5.0 7.2.3 and 7.2.4: a new value at each authentication, 256 bits from the
      // CSPRNG; only its hash is stored, so a copy of the database names no live session.
      const cookie = randomToken()
      const session = newSessionRecord(user.id, client, now, {
        kind: 'browser',
        expires_at: expiryAt({ created_at: now }, now),
        secret_hash: sha256Hex(cookie),
        auth_time: now,
        amr: JSON.stringify(amr),
      })
      if (!(await lifecycle.admit(session, user.epoch))) return undefined
      return {
        session: { id: session.id, userId: user.id, username: user.username, authTime: now, amr: [...amr] },
        cookie,
      }
    },

    async resolve(cookie) {
      if (cookie === undefined) return undefined
      const now = clock.now()
      // One hash and one indexed lookup whatever the cookie holds: nothing about a live
      // session's value is learnt from how long a wrong one takes.
      const row = await sessions.findBrowserSession(sha256Hex(cookie))
      if (!row || row.revoked_at !== null || row.expires_at <= now) return undefined
      // An end this process applied, or read from the feed, counts even before its row is read
      // back here.
      if (revocations.isRevoked({ sid: row.id, id: row.user_id })) return undefined
      // The conditional UPDATE refuses a session that ended since it was read.
      if (
        now - row.last_used_at >= BROWSER_SESSION_TOUCH_MS &&
        !(await sessions.touchSession(row.id, now, expiryAt(row, now)))
      )
        return undefined
      return {
        id: row.id,
        userId: row.user_id,
        username: row.username,
        authTime: row.auth_time ?? row.created_at,
        amr: amrOf(row),
      }
    },

    async end(cookie, reason) {
      const row = await sessions.findBrowserSession(sha256Hex(cookie))
      if (!row) return 0
      // One transaction: the browser session and every session it started, into the feed.
      return lifecycle.end(row.user_id, reason, [row.id], { andStarted: true })
    },
  }
}

/** The cookie's name. `__Host-` is used behind https (RFC 6265bis §4.1.3.2: Secure, Path=/, no Domain). */
export const BROWSER_SESSION_COOKIE = 'authgate_session'
export const SECURE_BROWSER_SESSION_COOKIE = '__Host-authgate_session'
