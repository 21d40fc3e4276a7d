// What a signed-in user does to their own account and sessions, and what each change ends.
import type { AuditLog } from './audit.js'
import type { SessionService } from './sessions.js'
import type { UserService } from './users.js'

export interface Caller {
  id: number
  username: string
  sid?: string | undefined
  /** Of the caller's access token, epoch seconds; a seed token's logout needs it (sessions.ts). */
  exp?: number | undefined
  iat?: number | undefined
  jti?: string | undefined
  ip: string
  userAgent: string | null
}

export function createAccountService(deps: {
  users: UserService
  sessions: SessionService
  audit: AuditLog
}) {
  const { users, sessions, audit } = deps
  const who = (caller: Caller) => ({
    userId: caller.id,
    username: caller.username,
    ip: caller.ip,
    userAgent: caller.userAgent,
  })

  return {
    profile: (caller: Caller) => users.profile(caller.id),

    /** OWASP ASVS 3.3.3: a password change ends every other session; this one stays. */
    async changePassword(caller: Caller, current: string, next: string): Promise<void> {
      await users.changePassword(caller.id, current, next)
      await sessions.endAllBut(caller.id, caller.sid, 'password_changed')
      audit.record({ type: 'password.changed', outcome: 'success', ...who(caller) })
    },

    /**
     * Every session ends before the row goes (deleting the user cascades to its sessions, which
     * would leave nothing to revoke), so no token outlives the account; then the name is free.
     */
    async deleteAccount(caller: Caller, password: string): Promise<void> {
      await users.checkPassword(caller.id, password)
      await sessions.endAllBut(caller.id, undefined, 'account_deleted')
      await users.removeById(caller.id)
      audit.record({ type: 'account.deleted', outcome: 'success', ...who(caller) })
    },

    async logout(caller: Caller): Promise<void> {
      if (caller.sid === undefined) {
        // A seed token: it has no session to end, so the token itself is voided (sessions.ts).
        const { id, iat, jti } = caller
        if (caller.exp === undefined || !(await sessions.endSidless({ id, iat, jti, exp: caller.exp })))
          return
        audit.record({
          type: 'session.logged_out',
          outcome: 'success',
          ...who(caller),
          // Without a jti, every sid-less token of the user issued before now ended.
          detail: { sidless: true, jti: jti ?? null },
        })
        return
      }
      await sessions.end(caller.id, 'logout', [caller.sid])
      audit.record({
        type: 'session.logged_out',
        outcome: 'success',
        ...who(caller),
        detail: { sessionId: caller.sid },
      })
    },

    /** Ends one of the caller's own sessions; false when there is no such live session. */
    async endSession(caller: Caller, sessionId: string): Promise<boolean> {
      const ended = (await sessions.end(caller.id, 'revoked', [sessionId])) > 0
      if (ended)
        audit.record({ type: 'session.revoked', outcome: 'success', ...who(caller), detail: { sessionId } })
      return ended
    },

    listSessions: (caller: Caller, page: { limit: number; cursor?: string | undefined }) =>
      sessions.list(caller.id, caller.sid, page),
  }
}

export type AccountService = ReturnType<typeof createAccountService>
