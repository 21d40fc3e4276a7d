// The audit log behind the AuditLog interface: record() queues, one background chain writes in
// batches, flush() waits for it; plus retention, verification and export over a store.
import type { Clock } from '../lib/clock.js'
import { every, type Periodic } from '../lib/periodic.js'
import type { AuditEvent, AuditLog } from './audit.js'
import {
  type AuditEntry,
  type AuditFacts,
  type ChainAnchor,
  type ChainReport,
  chainFacts,
  factsOf,
  verifyChain,
} from './audit-chain.js'
import { createSummaries, DEFAULT_SUMMARY_POLICY, type SummaryPolicy } from './audit-summary.js'

export interface AuditFilter {
  /** Epoch ms, inclusive. */
  since?: number | undefined
  /** Epoch ms, exclusive. */
  until?: number | undefined
  /** Entries about this user id, or naming one of these usernames (any matches). */
  userId?: number | undefined
  usernames?: readonly string[] | undefined
}

/** A consistent read of the log: what a concurrent append or prune does is not seen halfway. */
export interface AuditSnapshot {
  anchor(): Promise<ChainAnchor>
  /** In seq order. */
  entries(filter?: AuditFilter): AsyncIterable<AuditEntry>
}

export interface AuditStore {
  /**
   * Appends, in one transaction that excludes every other appender (any process), the entries
   * `link` returns when given the hash of the chain's current head.
   */
  append(link: (headHash: string) => (AuditFacts & { prevHash: string; hash: string })[]): Promise<void>
  /** Deletes entries before `before` (epoch ms) but never the newest; moves the anchor. Returns how many. */
  prune(before: number): Promise<number>
  read<T>(fn: (snapshot: AuditSnapshot) => Promise<T>): Promise<T>
}

export interface AuditService extends AuditLog {
  /** Resolves once every event recorded before the call is written (or reported as lost). */
  flush(): Promise<void>
  /** Applies retention now; resolves to the number of entries removed. Rejects on failure. */
  prune(): Promise<number>
  /** Checks the chain from the oldest remaining entry. */
  verify(): Promise<ChainReport>
  /** Calls `write` for each entry matching the filter, in seq order; resolves to the count. */
  export(filter: AuditFilter, write: (entry: AuditEntry) => void): Promise<number>
  /** Prunes now and then every `pruneEveryMs`, on an unref'd timer (the server does this). */
  startRetention(): void
  stopRetention(): void
}

export interface AuditServiceDeps {
  store: AuditStore
  clock: Clock
  /** AUDIT_RETENTION_DAYS; 0 keeps entries forever. */
  retentionDays: number
  /** A write or a prune failed. `lost` holds the events that were not stored (never a secret). */
  onError?: (err: unknown, lost: readonly AuditFacts[]) => void
  pruneEveryMs?: number
  /** Events waiting beyond this are dropped and reported, so a stuck database cannot eat memory. */
  maxPending?: number
  /** Events per transaction. */
  batchSize?: number
  /** How recordRepeated() summarises (audit-summary.ts). */
  summaries?: SummaryPolicy
}

const DAY_MS = 86_400_000
const HOUR_MS = 3_600_000

export class AuditQueueFull extends Error {
  override name = 'AuditQueueFull'
}

export function createAuditService({
  store,
  clock,
  retentionDays,
  onError = () => {},
  pruneEveryMs = HOUR_MS,
  maxPending = 10_000,
  batchSize = 500,
  summaries: summaryPolicy = DEFAULT_SUMMARY_POLICY,
}: AuditServiceDeps): AuditService {
  const pending: AuditFacts[] = []
  const summaries = createSummaries(summaryPolicy)
  let summaryTimer: NodeJS.Timeout | undefined
  let scheduled = false
  // Every write and prune runs on this chain, one after another. It never rejects.
  let tail: Promise<void> = Promise.resolve()
  let timer: Periodic | undefined

  const report = (err: unknown, lost: readonly AuditFacts[]) => {
    try {
      onError(err, lost)
    } catch {
      // A broken reporter must not break the chain, nor the caller.
    }
  }

  const enqueue = (task: () => Promise<void>) => {
    tail = tail.then(task).catch((err: unknown) => report(err, []))
  }

  const drain = async () => {
    scheduled = false
    const batch = pending.splice(0, batchSize)
    if (pending.length > 0) schedule()
    if (batch.length === 0) return
    try {
      await store.append((headHash) => chainFacts(headHash, batch))
    } catch (err) {
      report(err, batch)
    }
  }

  function schedule() {
    if (scheduled) return
    scheduled = true
    enqueue(drain)
  }

  const pruneNow = async (): Promise<number> => {
    if (retentionDays === 0) return 0
    return store.prune(clock.now() - retentionDays * DAY_MS)
  }

  const queue = (event: AuditEvent, at: number) => {
    const facts = factsOf(event, at)
    if (pending.length >= maxPending) {
      report(new AuditQueueFull(`audit queue full (${maxPending} events waiting)`), [facts])
      return
    }
    pending.push(facts)
    schedule()
  }

  const writeSummaries = (all: boolean) => {
    for (const { event, at } of summaries.take(clock.now(), all)) queue(event, at)
  }

  // One unref'd timer, armed for the end of the oldest open summary window.
  const armSummaryTimer = () => {
    if (summaryTimer) return
    const due = summaries.nextDue()
    if (due === undefined) return
    summaryTimer = setTimeout(
      () => {
        summaryTimer = undefined
        try {
          writeSummaries(false)
        } catch (err) {
          report(err, [])
        }
        armSummaryTimer()
      },
      Math.max(1_000, due - clock.now()),
    )
    summaryTimer.unref()
  }

  return {
    record(event) {
      try {
        queue(event, clock.now())
      } catch (err) {
        report(err, [])
      }
    },
    recordRepeated(event, group) {
      try {
        const now = clock.now()
        if (summaries.add(event, group, now)) queue(event, now)
        if (summaries.hasEnded()) writeSummaries(false)
        armSummaryTimer()
      } catch (err) {
        report(err, [])
      }
    },
    async flush() {
      // What is being summarised is written now, as it stands (the window ends early).
      writeSummaries(true)
      clearTimeout(summaryTimer)
      summaryTimer = undefined
      // A drain that finds more than a batch schedules the rest behind itself: wait for the chain
      // to go quiet, not just for the tail as it was at the call.
      for (;;) {
        const seen = tail
        await seen
        if (seen === tail) return
      }
    },
    prune() {
      const result = tail.then(pruneNow)
      tail = result.then(
        () => {},
        () => {},
      )
      return result
    },
    verify() {
      return store.read(async (snapshot) => verifyChain(snapshot.entries(), await snapshot.anchor()))
    },
    export(filter, write) {
      return store.read(async (snapshot) => {
        let count = 0
        for await (const entry of snapshot.entries(filter)) {
          write(entry)
          count++
        }
        return count
      })
    },
    startRetention() {
      if (timer || retentionDays === 0) return
      const tick = () =>
        enqueue(async () => {
          await pruneNow()
        })
      tick()
      // The prune runs on the chain, after the writes queued before it; the chain reports its errors.
      timer = every(pruneEveryMs, tick, (err) => report(err, []))
    },
    stopRetention() {
      timer?.stop()
      timer = undefined
    },
  }
}
