// The audit log's real writer on real databases (SQLite files; PostgreSQL in the second run):
// batching and flush, failures that never reach the caller, several processes appending to one
// chain, retention that keeps verify green, export.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { sql } from 'kysely'
import { describe, expect, it } from 'vitest'
import type { AuditEvent } from '../../src/domain/audit.js'
import type { AuditFacts } from '../../src/domain/audit-chain.js'
import { createAuditService } from '../../src/domain/audit-writer.js'
import { type Clock, frozenClock } from '../../src/lib/clock.js'
import { createAuditStore } from '../../src/storage/audit.repository.js'
import { createDatabase, type Db } from '../../src/storage/database.js'
import { migrateToLatest } from '../../src/storage/migrate.js'
import { freshDatabase, inspect } from '../helpers/app.js'

const DAY = 86_400_000

/** A migrated database (dropped when the file ends), and the writer's own connection to it. */
async function freshDb(): Promise<{ db: Db; url: string }> {
  const { url } = await freshDatabase('audit.db')
  const db = createDatabase(url)
  await migrateToLatest(db)
  return { db, url }
}

function service(db: Db, opts: { clock?: Clock; retentionDays?: number } = {}) {
  const errors: { err: unknown; lost: readonly AuditFacts[] }[] = []
  const audit = createAuditService({
    store: createAuditStore(db),
    clock: opts.clock ?? frozenClock(Date.UTC(2026, 10, 28)),
    retentionDays: opts.retentionDays ?? 0,
    onError: (err, lost) => errors.push({ err, lost }),
  })
  return { audit, errors }
}

/** The stored rows, read through a connection of the test's own. */
function rows(url: string): Promise<Record<string, unknown>[]> {
  return inspect(url).selectFrom('authgate_audit_log').selectAll().orderBy('seq').execute()
}

const event = (i: number, over: Partial<AuditEvent> = {}): AuditEvent => ({
  type: 'login.succeeded',
  outcome: 'success',
  userId: i,
  username: `user${i}`,
  ip: '198.51.100.1',
  userAgent: 'vitest',
  detail: { sessionId: `s${i}` },
  ...over,
})

describe('the audit writer', () => {
  it('queues without waiting, writes in order on flush, and the chain verifies', async () => {
    const { db, url } = await freshDb()
    const { audit, errors } = service(db)
    // More than one batch (500) and more than one read page (1000).
    for (let i = 1; i <= 1234; i++) audit.record(event(i))
    expect(await rows(url)).toHaveLength(0)
    await audit.flush()
    const stored = await rows(url)
    expect(stored).toHaveLength(1234)
    expect(stored.map((r) => r.user_id)).toEqual(Array.from({ length: 1234 }, (_, i) => i + 1))
    expect(stored[0]).toEqual({
      seq: 1,
      at: Date.UTC(2026, 10, 28),
      type: 'login.succeeded',
      outcome: 'success',
      user_id: 1,
      username: 'user1',
      ip: '198.51.100.1',
      user_agent: 'vitest',
      detail: '{"sessionId":"s1"}',
      prev_hash: '0'.repeat(64),
      hash: expect.stringMatching(/^[0-9a-f]{64}$/),
    })
    expect(await audit.verify()).toMatchObject({
      ok: true,
      count: 1234,
      first: { seq: 1 },
      head: { seq: 1234 },
    })
    expect(errors).toEqual([])
    await db.destroy()
  })

  it('continues the chain across writers opened one after another on the same database', async () => {
    const { db, url } = await freshDb()
    const first = service(db)
    first.audit.record(event(1))
    await first.audit.flush()
    await db.destroy()
    const again = createDatabase(url)
    const second = service(again)
    second.audit.record(event(2))
    await second.audit.flush()
    expect(await second.audit.verify()).toMatchObject({ ok: true, count: 2 })
    await again.destroy()
  })

  it('never throws into the caller when a write fails, and reports the lost events', async () => {
    const { db } = await freshDb()
    const { audit, errors } = service(db)
    await sql`drop table authgate_audit_log`.execute(db)
    audit.record(event(1, { type: 'login.failed', outcome: 'failure' }))
    // record() only queues: the write, and its failure, come after the caller has moved on.
    expect(errors).toEqual([])
    await expect(audit.flush()).resolves.toBeUndefined()
    expect(errors).toHaveLength(1)
    // SQLite: no such table; PostgreSQL: relation ... does not exist.
    expect(String(errors[0]?.err)).toMatch(/no such table|does not exist/)
    expect(errors[0]?.lost).toMatchObject([{ type: 'login.failed', username: 'user1', userId: 1 }])

    // The database closed under it (a shutdown that forgot to flush first): same.
    await db.destroy()
    audit.record(event(2))
    expect(errors).toHaveLength(1)
    await audit.flush()
    expect(errors).toHaveLength(2)
    expect(errors[1]?.err).toBeInstanceOf(Error)
    expect(errors[1]?.lost).toMatchObject([{ username: 'user2' }])
  })

  it('never throws into the caller for an event it cannot store, and writes the next ones', async () => {
    const { db, url } = await freshDb()
    const { audit, errors } = service(db)
    // A caller's bug: a value JSON cannot hold. record() reports it instead of throwing at the
    // login or logout that recorded it (without its catch, this call would throw).
    audit.record(event(1, { detail: { n: 1n as unknown as number } }))
    expect(errors).toHaveLength(1)
    expect(String(errors[0]?.err)).toMatch(/BigInt/)
    audit.record(event(2))
    await audit.flush()
    expect((await rows(url)).map((r) => r.user_id)).toEqual([2])
    expect(errors).toHaveLength(1)
    await db.destroy()
  })

  it('survives a reporter that throws, and drops (and reports) events beyond its queue limit', async () => {
    const { db, url } = await freshDb()
    const lost: number[] = []
    const audit = createAuditService({
      store: createAuditStore(db),
      clock: frozenClock(),
      retentionDays: 0,
      maxPending: 3,
      onError: (_err, facts) => {
        lost.push(...facts.map((f) => f.userId ?? 0))
        throw new Error('reporter down')
      },
    })
    // The reporter throws for 4 and 5 (the queue is full); record() still returns to its caller.
    for (let i = 1; i <= 5; i++) audit.record(event(i))
    expect(lost).toEqual([4, 5])
    await audit.flush()
    expect((await rows(url)).map((r) => r.user_id)).toEqual([1, 2, 3])
    // And the writer goes on writing after it.
    audit.record(event(6))
    await audit.flush()
    expect((await rows(url)).map((r) => r.user_id)).toEqual([1, 2, 3, 6])
    expect(lost).toEqual([4, 5])
    await db.destroy()
  })

  it('keeps one unbroken chain when three processes append to one database at once', async () => {
    const { db, url } = await freshDb()
    const root = fileURLToPath(new URL('../..', import.meta.url))
    const children = ['a', 'b', 'c'].map((tag) =>
      spawn(process.execPath, ['--import', 'tsx', 'test/helpers/audit-append.ts', url, '150', tag], {
        cwd: root,
        env: { PATH: process.env.PATH ?? '' },
        stdio: ['pipe', 'pipe', 'pipe'],
      }),
    )
    const writers = children.map(
      (child) =>
        new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
          let stderr = ''
          child.stderr.on('data', (d) => {
            stderr += d
          })
          child.on('error', reject)
          child.on('close', (code) => resolve({ code, stderr }))
        }),
    )
    // Everyone starts together, once every process has loaded.
    await Promise.all(children.map((child) => once(child.stdout, 'data')))
    for (const child of children) child.stdin.end('go\n')
    // This process writes too, through its own connection.
    const { audit, errors } = service(db, { clock: { now: () => Date.now() } })
    for (let i = 0; i < 150; i++) {
      audit.record(event(i, { username: `d-${i}` }))
      await audit.flush()
    }
    expect(await Promise.all(writers)).toEqual([
      { code: 0, stderr: '' },
      { code: 0, stderr: '' },
      { code: 0, stderr: '' },
    ])
    expect(errors).toEqual([])
    const stored = await rows(url)
    expect(stored).toHaveLength(600)
    expect(new Set(stored.map((r) => r.prev_hash)).size).toBe(600)
    // The writers really did interleave (otherwise this test would prove nothing).
    const writerOf = stored.map((r) => String(r.username).split('-')[0])
    const switches = writerOf.filter((w, i) => i > 0 && w !== writerOf[i - 1]).length
    expect(switches).toBeGreaterThan(50)
    expect(await audit.verify()).toMatchObject({ ok: true, count: 600 })
    await db.destroy()
  }, 60_000)
})

describe('retention', () => {
  it('prunes old entries but keeps verify green, from the anchor it leaves', async () => {
    const { db, url } = await freshDb()
    const clock = frozenClock(Date.UTC(2026, 0, 1))
    const { audit, errors } = service(db, { clock, retentionDays: 30 })
    for (let i = 1; i <= 5; i++) audit.record(event(i))
    clock.advance(60 * DAY)
    for (let i = 6; i <= 8; i++) audit.record(event(i))
    await audit.flush()

    expect(await audit.prune()).toBe(5)
    expect((await rows(url)).map((r) => r.seq)).toEqual([6, 7, 8])
    expect(await audit.verify()).toMatchObject({ ok: true, count: 3, first: { seq: 6 }, head: { seq: 8 } })
    expect(await audit.prune()).toBe(0)

    // New entries link on; a later prune moves the anchor again.
    audit.record(event(9))
    await audit.flush()
    expect(await audit.verify()).toMatchObject({ ok: true, count: 4 })

    // Pruning by hand (not through retention) is noticed.
    await inspect(url).deleteFrom('authgate_audit_log').where('seq', '=', 6).execute()
    expect(await audit.verify()).toMatchObject({ ok: false, broken: { seq: 7, kind: 'missing' } })
    expect(errors).toEqual([])
    await db.destroy()
  })

  it('keeps the newest entry however old, so the chain has a head to continue from', async () => {
    const { db, url } = await freshDb()
    const clock = frozenClock(Date.UTC(2026, 0, 1))
    const { audit } = service(db, { clock, retentionDays: 1 })
    for (let i = 1; i <= 3; i++) audit.record(event(i))
    await audit.flush()
    clock.advance(10 * DAY)
    expect(await audit.prune()).toBe(2)
    expect((await rows(url)).map((r) => r.seq)).toEqual([3])
    audit.record(event(4))
    await audit.flush()
    expect(await audit.verify()).toMatchObject({ ok: true, count: 2, first: { seq: 3 } })
    await db.destroy()
  })

  it('keeps everything when the retention is 0', async () => {
    const { db, url } = await freshDb()
    const clock = frozenClock(Date.UTC(2026, 0, 1))
    const { audit } = service(db, { clock, retentionDays: 0 })
    for (let i = 1; i <= 3; i++) audit.record(event(i))
    await audit.flush()
    clock.advance(10_000 * DAY)
    expect(await audit.prune()).toBe(0)
    expect(await rows(url)).toHaveLength(3)
    await db.destroy()
  })

  it("prunes when retention starts (the server then repeats it on an unref'd timer)", async () => {
    const { db, url } = await freshDb()
    const clock = frozenClock(Date.UTC(2026, 0, 1))
    const { audit, errors } = service(db, { clock, retentionDays: 7 })
    for (let i = 1; i <= 4; i++) audit.record(event(i))
    clock.advance(8 * DAY)
    audit.record(event(5))
    audit.startRetention()
    audit.stopRetention()
    await audit.flush()
    expect((await rows(url)).map((r) => r.seq)).toEqual([5])
    expect(await audit.verify()).toMatchObject({ ok: true, count: 1 })
    expect(errors).toEqual([])
    await db.destroy()
  })
})

describe('export', () => {
  it('filters by time and by user id or name, in seq order', async () => {
    const { db } = await freshDb()
    const clock = frozenClock(Date.UTC(2026, 10, 1))
    const { audit } = service(db, { clock })
    audit.record(event(1)) // Nov 1
    clock.advance(DAY)
    audit.record({ type: 'login.failed', outcome: 'failure', username: 'user1' }) // Nov 2, no id
    audit.record(event(2)) // Nov 2
    clock.advance(DAY)
    audit.record(event(1, { type: 'session.logged_out' })) // Nov 3
    await audit.flush()
    const seqs = async (filter: Parameters<typeof audit.export>[0]) => {
      const out: number[] = []
      await audit.export(filter, (e) => out.push(e.seq))
      return out
    }
    expect(await seqs({})).toEqual([1, 2, 3, 4])
    expect(await seqs({ since: Date.UTC(2026, 10, 2) })).toEqual([2, 3, 4])
    expect(await seqs({ until: Date.UTC(2026, 10, 3) })).toEqual([1, 2, 3])
    expect(await seqs({ since: Date.UTC(2026, 10, 2), until: Date.UTC(2026, 10, 3) })).toEqual([2, 3])
    expect(await seqs({ userId: 1 })).toEqual([1, 4])
    expect(await seqs({ userId: 1, usernames: ['user1'] })).toEqual([1, 2, 4])
    expect(await seqs({ usernames: ['nobody'] })).toEqual([])
    await db.destroy()
  })
})
