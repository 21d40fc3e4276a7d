// Remembered consents (issue 12 items 3 and 6): a user's "allow" on the consent page for a client
// that is not first-party, kept per user and client with the scopes it covers, so that the next
// authorization request within them is not asked again (OpenID Connect Core 1.0 §3.1.2.4: the
// server may rely on a consent given before, unless the request says prompt=consent). A user
// lists and withdraws them (GET and DELETE /auth/consents); withdrawing also ends the sessions the
// client holds for the user, so the client loses what the consent gave it, not only the next one.
import type { AuditLog } from './audit.js'
import type { SessionService } from './sessions.js'

export interface StoredConsent {
  userId: number
  clientId: string
  /** Every scope the user has allowed the client, in the order first allowed. */
  scopes: string[]
  /** Epoch ms of the last allow. */
  grantedAt: number
}

export interface ListedConsent extends StoredConsent {
  clientName: string
}

/** storage/consents.repository.ts. */
export interface ConsentsRepository {
  find(userId: number, clientId: string): Promise<StoredConsent | undefined>
  /** Inserts the consent, or replaces the user's consent for that client. */
  save(consent: StoredConsent): Promise<void>
  /** The user's consents with each client's name, the earliest last allow first. */
  list(userId: number): Promise<ListedConsent[]>
  /** False when there was none. */
  delete(userId: number, clientId: string): Promise<boolean>
}

/** Where a change came from, for the audit trail. */
export interface ConsentFrom {
  ip: string | null
  userAgent: string | null
}

export interface ConsentService {
  /** Whether the user has allowed the client every one of `scopes`. */
  covers(userId: number, clientId: string, scopes: readonly string[]): Promise<boolean>
  /** Remembers an allow on the consent page: `scopes` join those allowed before. */
  grant(userId: number, clientId: string, scopes: readonly string[], from: ConsentFrom): Promise<void>
  list(userId: number): Promise<ListedConsent[]>
  /** Forgets the consent and ends the user's sessions of that client; false when there was none. */
  withdraw(userId: number, clientId: string, from: ConsentFrom): Promise<boolean>
}

export interface ConsentServiceDeps {
  consents: ConsentsRepository
  audit: AuditLog
  clock: { now(): number }
  /** Ends the user's live sessions issued to the client; how many (endClientSessionsOf). */
  endSessions(userId: number, clientId: string): Promise<number>
}

export function createConsentService({
  consents,
  audit,
  clock,
  endSessions,
}: ConsentServiceDeps): ConsentService {
  return {
    async covers(userId, clientId, scopes) {
      const stored = await consents.find(userId, clientId)
      return stored !== undefined && scopes.every((s) => stored.scopes.includes(s))
    },

    async grant(userId, clientId, scopes, from) {
      const before = await consents.find(userId, clientId)
      // Read, then written: of two allows racing for one user and client the last one's scopes
      // win, and a scope the other added is asked for again next time (never granted unasked).
      const all = [...new Set([...(before?.scopes ?? []), ...scopes])]
      await consents.save({ userId, clientId, scopes: all, grantedAt: clock.now() })
      audit.record({
        type: 'consent.granted',
        outcome: 'success',
        userId,
        ip: from.ip,
        userAgent: from.userAgent,
        detail: { clientId, scope: scopes.join(' ') },
      })
    },

    list: (userId) => consents.list(userId),

    async withdraw(userId, clientId, from) {
      // The consent goes first: an authorization request after this point asks again.
      if (!(await consents.delete(userId, clientId))) return false
      const endedSessions = await endSessions(userId, clientId)
      audit.record({
        type: 'consent.withdrawn',
        outcome: 'success',
        userId,
        ip: from.ip,
        userAgent: from.userAgent,
        detail: { clientId, endedSessions },
      })
      return true
    },
  }
}

/**
 * ConsentServiceDeps.endSessions on the session service: the user's live sessions, read a page at
 * a time (at most MAX_SESSIONS_PER_USER are alive), those of the client ended in one call.
 */
export function endClientSessionsOf(
  sessions: Pick<SessionService, 'list' | 'end'>,
): (userId: number, clientId: string) => Promise<number> {
  return async (userId, clientId) => {
    const ids: string[] = []
    let cursor: string | undefined
    do {
      const page = await sessions.list(userId, undefined, { limit: 100, cursor })
      for (const s of page.sessions) if (s.clientId === clientId) ids.push(s.id)
      cursor = page.next
    } while (cursor !== undefined)
    return ids.length === 0 ? 0 : sessions.end(userId, 'revoked', ids)
  }
}
