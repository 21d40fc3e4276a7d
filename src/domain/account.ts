// What a signed-in user does to their own account and sessions, and what each change ends.
import { type AuditEventType, type AuditLog, failureReason, type Operator, operatorDetail } from './audit.js'
import { DomainError, ErrorCode } from './errors.js'
import type { SessionService } from './sessions.js'
import { accountKey, type Reservation, type Throttle, Throttled } from './throttle.js'
import { type User, type UserService, type VerifiedUser, WRONG_PASSWORD } from './users.js'

// A credential changed by someone else between the password check and the change: the password
// this request proved is no longer the current one.
const changedMeanwhile = () => new DomainError(ErrorCode.wrongPassword, WRONG_PASSWORD)
// An operator's change retries on a concurrent one: it does not depend on the old password.
const OPERATOR_TRIES = 3

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
  /** The device cookie the client sent, if any (see throttle.ts). */
  deviceCookie?: string | undefined
}

export function createAccountService(deps: {
  users: UserService
  sessions: SessionService
  throttle: Throttle
  audit: AuditLog
}) {
  const { users, sessions, throttle, audit } = deps
  /**
   * Runs an operator's action on a user and records it, success or failure (a failure names
   * only its reason, never a message that could echo input).
   */
  async function asOperator<T extends User>(
    operator: Operator,
    type: AuditEventType,
    username: string,
    act: () => Promise<T | undefined>,
  ): Promise<T | undefined> {
    let user: T | undefined
    try {
      user = await act()
    } catch (err) {
      audit.record({
        type,
        outcome: 'failure',
        username,
        detail: { ...operatorDetail(operator), reason: failureReason(err) },
      })
      throw err
    }
    if (!user) {
      audit.record({
        type,
        outcome: 'failure',
        username,
        detail: { ...operatorDetail(operator), reason: 'no_such_user' },
      })
      return undefined
    }
    audit.record({
      type,
      outcome: 'success',
      userId: user.id,
      username: user.username,
      detail: operatorDetail(operator),
    })
    return user
  }

  const who = (caller: Caller) => ({
    userId: caller.id,
    username: caller.username,
    ip: caller.ip,
    userAgent: caller.userAgent,
  })

  /**
   * The caller's password, checked as a login checks it (issue 9 item 4): a stolen access token
   * must not be a way around the login throttle (OWASP ASVS 5.0 6.3.1, NIST SP 800-63B 5.2.2).
   * Counted per address and per account (or device) before any hashing, the counts shared with
   * POST /auth/token; a right password takes its count back off.
   */
  async function reauthenticate(
    caller: Caller,
    password: string,
  ): Promise<{ user: VerifiedUser; reservation: Reservation }> {
    const account = accountKey(caller.username)
    let reservation: Reservation
    try {
      reservation = await throttle.beginLogin({ ip: caller.ip, account, deviceCookie: caller.deviceCookie })
    } catch (err) {
      if (err instanceof Throttled)
        // Counted, not written one by one: a stolen token must not grow the log (audit-summary.ts).
        audit.recordRepeated(
          { type: 'login.throttled', outcome: 'failure', ...who(caller), detail: { reauthentication: true } },
          { key: caller.ip, keepFirst: 0 },
        )
      throw err
    }
    const user = await users.checkPassword(caller.id, password)
    await throttle.passwordConfirmed(reservation)
    return { user, reservation }
  }

  return {
    reauthenticate,

    profile: (caller: Caller) => users.profile(caller.id),

    /**
     * OWASP ASVS 3.3.3: a password change ends every other session; this one stays. The new hash
     * and the end of the others are one transaction, so a login racing it gets a session that
     * ends with the rest, or a 401 (issue 9 item 2). Every device cookie ends too; returns the
     * caller's device a new one, bound to the new credential, so it keeps its own allowance.
     */
    async changePassword(caller: Caller, current: string, next: string): Promise<string> {
      const { user, reservation } = await reauthenticate(caller, current)
      const passwordHash = await users.hashNewPassword(user.username, next, 'new_password')
      const epoch = await sessions.replaceCredential(user, { passwordHash, keepSession: caller.sid })
      if (epoch === undefined) throw changedMeanwhile()
      audit.record({ type: 'password.changed', outcome: 'success', ...who(caller) })
      return throttle.trustDevice(reservation, { id: user.id, epoch })
    },

    /**
     * The revocation of every session and the removal of the row are one transaction (deleting
     * the user cascades to its sessions, which would leave nothing to revoke), so no token
     * outlives the account; then the name is free, and the id is never given out again.
     */
    async deleteAccount(caller: Caller, password: string): Promise<void> {
      const { user } = await reauthenticate(caller, password)
      if ((await sessions.replaceCredential(user, { deleted: true })) === undefined) throw changedMeanwhile()
      audit.record({ type: 'account.deleted', outcome: 'success', ...who(caller) })
    },

    /** An operator's new user (`authgate user create`); the policy and the unique name apply. */
    async createUser(operator: Operator, username: string, password: string): Promise<User> {
      const created = await asOperator(operator, 'user.created', username, () =>
        users.register(username, password),
      )
      // register() returns the user or throws; asOperator passes either on.
      if (!created) throw new Error(`no user was created for ${username}`)
      return created
    },

    /** An operator's password reset (`authgate user set-password`): every session ends. */
    async resetPassword(operator: Operator, username: string, password: string): Promise<boolean> {
      const done = await asOperator(operator, 'password.reset', username, async () => {
        for (let i = 0; i < OPERATOR_TRIES; i++) {
          const user = await users.find(username)
          if (!user) return undefined
          const passwordHash = await users.hashNewPassword(user.username, password, 'password')
          if ((await sessions.replaceCredential(user, { passwordHash })) !== undefined) return user
        }
        throw new Error(`the credential of ${username} kept changing; try again`)
      })
      return done !== undefined
    },

    /** An operator's deletion (`authgate user delete`), by exact, then canonical, name. */
    async removeUser(operator: Operator, username: string): Promise<boolean> {
      const done = await asOperator(operator, 'user.deleted', username, async () => {
        for (let i = 0; i < OPERATOR_TRIES; i++) {
          const user = await users.find(username)
          if (!user) return undefined
          if ((await sessions.replaceCredential(user, { deleted: true })) !== undefined) return user
        }
        throw new Error(`the credential of ${username} kept changing; try again`)
      })
      return done !== undefined
    },

    /**
     * An operator lifts the login throttle on an account (`authgate user unlock`): the failures
     * counted against its name and its devices are forgotten, so the right password logs in at
     * once. The per-address counts stay: they are not the account's.
     */
    async unlockUser(operator: Operator, username: string): Promise<boolean> {
      const done = await asOperator(operator, 'user.unlocked', username, async () => {
        const user = await users.find(username)
        if (user) await throttle.unlock(accountKey(user.username), user.id)
        return user
      })
      return done !== undefined
    },

    /** Whether the caller's token still speaks for a live session (asked of the database). */
    isCurrent: (caller: Pick<Caller, 'id' | 'sid'>) => sessions.isCurrent(caller),

    async logout(caller: Caller): Promise<void> {
      if (caller.sid === undefined) {
        // A seed token: it has no session to end, so the token itself is voided (sessions.ts).
        const { id, iat, jti } = caller
        if (
          caller.exp === undefined ||
          !(await sessions.endSidless({ id, iat, jti, exp: caller.exp }, 'logout'))
        )
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
