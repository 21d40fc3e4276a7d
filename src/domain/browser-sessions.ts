// The browser session at AuthGate itself: what single sign-on rests on (OpenID Connect Core 1.0
// §3.1.2.3: an end user who is already authenticated is not asked again unless the request says
// so). Its cookie is HttpOnly, Secure behind https and SameSite=Lax, and names a session row:
// ending it (logout, a password change, an admin) takes effect at once, on every instance.
// The contract only; the service is built beside the other sessions (issue 12).
import type { ClientInfo, EndReason } from './sessions.js'
import type { VerifiedUser } from './users.js'

/** Authentication method references (RFC 8176 §2): `pwd` for a password; `otp`, `hwk` later. */
export type AuthMethod = 'pwd' | 'otp' | 'hwk' | 'swk' | 'mfa'

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

/** The cookie's name. `__Host-` is used behind https (RFC 6265bis §4.1.3.2: Secure, Path=/, no Domain). */
export const BROWSER_SESSION_COOKIE = 'authgate_session'
export const SECURE_BROWSER_SESSION_COOKIE = '__Host-authgate_session'
