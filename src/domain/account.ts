// What a signed-in user does to their own account, and the sessions each change ends.
import type { SessionService } from './sessions.js'
import type { UserService } from './users.js'

export interface Caller {
  id: number
  sid?: string | undefined
}

export function createAccountService({ users, sessions }: { users: UserService; sessions: SessionService }) {
  return {
    profile: (caller: Caller) => users.profile(caller.id),

    /** OWASP ASVS 3.3.3: a password change ends every other session; this one stays. */
    async changePassword(caller: Caller, current: string, next: string): Promise<void> {
      await users.changePassword(caller.id, current, next)
      await sessions.endAllBut(caller.id, caller.sid, 'password_changed')
    },

    /**
     * Every session ends before the row goes (deleting the user cascades to its sessions, which
     * would leave nothing to revoke), so no token outlives the account; then the name is free.
     */
    async deleteAccount(caller: Caller, password: string): Promise<void> {
      await users.checkPassword(caller.id, password)
      await sessions.endAllBut(caller.id, undefined, 'account_deleted')
      await users.removeById(caller.id)
    },

    logout: (caller: Caller) =>
      caller.sid === undefined ? Promise.resolve(0) : sessions.end(caller.id, 'logout', [caller.sid]),
  }
}

export type AccountService = ReturnType<typeof createAccountService>
