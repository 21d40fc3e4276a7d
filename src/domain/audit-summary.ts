// Bounded recording of events a client can repeat at will (throttled and failed attempts): per
// type, client address and window, the first few are kept whole and the rest become one summary.
import type { AuditEvent, AuditEventType, RepeatedEventGroup } from './audit.js'

export interface SummaryPolicy {
  /** How long a summary collects events before it is written. */
  windowMs: number
  /** Addresses tracked at once; events from any further address share one overflow summary. */
  maxGroups: number
}

// Issue 9: one client wrote 10,000 rows of about 1 KB in 10.6 s as login.throttled. A window of a
// minute keeps the log close to live for monitoring while an address adds at most one summary
// (plus `keepFirst` whole entries) per event type and minute.
export const DEFAULT_SUMMARY_POLICY: SummaryPolicy = Object.freeze({ windowMs: 60_000, maxGroups: 2_000 })

// A summary names a sample client; its user agent need not be kept whole. Cut as it is kept, so
// what a group holds is bounded whatever a client sends (a username can be a 16 KiB body).
const SAMPLE_USER_AGENT = 128
const SAMPLE_USERNAME = 256

function cut<T extends string | null | undefined>(text: T, max: number): T {
  return (text && text.length > max ? `${text.slice(0, max)}…` : text) as T
}

interface Group {
  type: AuditEventType
  overflow: boolean
  openedAt: number
  /** Events recorded whole in this window. */
  kept: number
  keepFirst: number
  /** Events only counted, and the first of them as the sample. */
  count: number
  sample: AuditEvent | undefined
  firstAt: number
  lastAt: number
  sameUsername: boolean
}

export interface Summaries {
  /** Counts `event`; true when it is one of the first `keepFirst` and is to be recorded whole. */
  add(event: AuditEvent, group: RepeatedEventGroup, now: number): boolean
  /** Summaries of the windows over at `now` (every one with `all`), as events and their times. */
  take(now: number, all?: boolean): { event: AuditEvent; at: number }[]
  /** When the oldest open window ends, if any is open. */
  nextDue(): number | undefined
  /** Whether add() closed a window that take() has not returned yet. */
  hasEnded(): boolean
}

export function createSummaries(policy: SummaryPolicy = DEFAULT_SUMMARY_POLICY): Summaries {
  const groups = new Map<string, Group>()
  // Windows closed by add() (the key came back after its window ended), waiting for take().
  let ended: { event: AuditEvent; at: number }[] = []

  const summaryOf = (g: Group, sample: AuditEvent): { event: AuditEvent; at: number } => {
    return {
      at: g.firstAt,
      event: {
        type: g.type,
        outcome: sample.outcome,
        userId: sample.userId,
        username: sample.username,
        ip: g.overflow ? null : sample.ip,
        userAgent: sample.userAgent,
        detail: {
          summary: true,
          count: g.count,
          firstAt: g.firstAt,
          lastAt: g.lastAt,
          // Whether every counted event named the sample's username (one account, or many).
          sameUsername: g.sameUsername,
          ...(g.overflow ? { overflow: true } : {}),
        },
      },
    }
  }

  return {
    add(event, group, now) {
      /** The open group `id`, after closing it if its window is over. */
      const live = (id: string) => {
        const g = groups.get(id)
        if (!g || now < g.openedAt + policy.windowMs) return g
        groups.delete(id)
        if (g.sample !== undefined) ended.push(summaryOf(g, g.sample))
        return undefined
      }
      let id = `${event.type}\n${group.key}`
      let g = live(id)
      let keepFirst = group.keepFirst ?? 0
      let overflow = false
      if (!g && groups.size >= policy.maxGroups) {
        // Past the cap, every further address shares one summary per type (a NUL is in no key).
        id = `${event.type}\n\u0000overflow`
        g = live(id)
        keepFirst = 0
        overflow = true
      }
      if (!g) {
        g = newGroup(event.type, now, keepFirst, overflow)
        groups.set(id, g)
      }
      if (g.kept < g.keepFirst) {
        g.kept++
        return true
      }
      if (g.sample === undefined) {
        g.sample = {
          ...event,
          username: cut(event.username, SAMPLE_USERNAME),
          userAgent: cut(event.userAgent, SAMPLE_USER_AGENT),
          detail: undefined,
        }
        g.firstAt = now
      } else if (g.sameUsername && cut(event.username, SAMPLE_USERNAME) !== g.sample.username) {
        g.sameUsername = false
      }
      g.count++
      g.lastAt = now
      return false
    },
    take(now, all = false) {
      const out = ended
      ended = []
      for (const [id, g] of groups) {
        if (!all && now < g.openedAt + policy.windowMs) continue
        groups.delete(id)
        if (g.sample !== undefined) out.push(summaryOf(g, g.sample))
      }
      return out
    },
    nextDue() {
      let due: number | undefined
      for (const g of groups.values()) {
        const end = g.openedAt + policy.windowMs
        if (due === undefined || end < due) due = end
      }
      return due
    },
    hasEnded: () => ended.length > 0,
  }
}

function newGroup(type: AuditEventType, now: number, keepFirst: number, overflow: boolean): Group {
  return {
    type,
    overflow,
    openedAt: now,
    kept: 0,
    keepFirst,
    count: 0,
    sample: undefined,
    firstAt: now,
    lastAt: now,
    sameUsername: true,
  }
}
