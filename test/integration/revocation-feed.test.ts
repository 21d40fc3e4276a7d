// The revocation feed on a real database (SQLite, then PostgreSQL), with writers of the test's own
// that hold their transactions open: no entry is skipped whatever order commits land in (issue 9).
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { createRevocationView, type FeedPosition, type RevocationView } from '../../src/domain/revocations.js'
import { frozenClock } from '../../src/lib/clock.js'
import { createDatabase, type Db } from '../../src/storage/database.js'
import { migrateToLatest } from '../../src/storage/migrate.js'
import { createRevocationFeed, insertClientCutoff } from '../../src/storage/sessions.repository.js'
import { freshDatabase, onPostgres, type TestDatabase } from '../helpers/app.js'

const DAY = 86_400_000
let subjects = 0

/** A transaction that has inserted one session revocation and waits to be told to end. */
interface Held {
  subject: string
  commit(): Promise<void>
  rollback(): Promise<void>
}

/** Begins a transaction on `db`, appends `count` revocations as revokeSessions does, and holds it. */
async function hold(db: Db, now: number, count = 1): Promise<Held> {
  const subject = `held-${++subjects}`
  let end!: (commit: boolean) => void
  const ended = new Promise<boolean>((resolve) => {
    end = resolve
  })
  let inserted!: () => void
  const ready = new Promise<void>((resolve) => {
    inserted = resolve
  })
  const done = db
    .transaction()
    .execute(async (trx) => {
      await trx
        .insertInto('authgate_revocations')
        .values(
          Array.from({ length: count }, (_, i) => ({
            kind: 'session' as const,
            subject: i === 0 ? subject : `${subject}-${i}`,
            at: now,
            expires_at: now + DAY,
          })),
        )
        .execute()
      inserted()
      if (!(await ended)) throw new Error('rolled back on purpose')
    })
    .catch((err: unknown) => {
      if (!(err instanceof Error && err.message === 'rolled back on purpose')) throw err
    })
  await Promise.race([ready, done])
  return {
    subject,
    commit: async () => {
      end(true)
      await done
    },
    rollback: async () => {
      end(false)
      await done
    },
  }
}

async function committed(db: Db, now: number): Promise<string> {
  const held = await hold(db, now)
  await held.commit()
  return held.subject
}

const revoked = (view: RevocationView, sid: string) => view.isRevoked({ sid, id: 1 })

describe('the revocation feed', () => {
  let database: TestDatabase
  // Three connections of their own: the reader's, and two writers that interleave.
  let reader: Db
  let first: Db
  let second: Db
  beforeAll(async () => {
    database = await freshDatabase()
    reader = createDatabase(database.url)
    await migrateToLatest(reader)
    first = createDatabase(database.url)
    second = createDatabase(onPostgres ? database.url : `${database.url}?timeout=0`)
  })
  afterAll(async () => {
    await Promise.all([reader?.destroy(), first?.destroy(), second?.destroy()])
    await database?.drop()
  })

  /** A view on the reader's connection, and the positions it reads from. */
  async function view(lateCommitMs?: number) {
    const clock = frozenClock()
    const feed = createRevocationFeed(reader)
    const positions: FeedPosition[] = []
    const v = createRevocationView(
      {
        read: (position, now) => {
          positions.push(position)
          return feed.read(position, now)
        },
        prune: feed.prune,
      },
      clock,
      lateCommitMs === undefined ? {} : { lateCommitMs },
    )
    await v.refresh()
    return { v, clock, positions }
  }

  it("a deleted client's cutoff: its tokens of the cutoff's second and before, no other, until it expires", async () => {
    const { v, clock } = await view()
    // A cutoff in the middle of a second, as clientCutoff writes it; kept for a token lifetime.
    const second = Math.floor(clock.now() / 1000)
    const at = second * 1000 + 400
    await insertClientCutoff(first, 'deleted-client', at, at + 60_000)
    const revokedClientToken = (clientId: string, iat: number) => v.isClientTokenRevoked(clientId, 'jti', iat)
    expect(revokedClientToken('deleted-client', second)).toBe(false) // not read yet
    await v.refresh()
    expect(revokedClientToken('deleted-client', second - 30)).toBe(true)
    // Its iat is rounded down: a token with the cutoff's own second may be minted after `at`.
    expect(revokedClientToken('deleted-client', second)).toBe(true)
    expect(revokedClientToken('deleted-client', second + 1)).toBe(false)
    expect(revokedClientToken('another-client', second)).toBe(false)
    // Nor is it a user cutoff: user tokens without a sid are not touched.
    expect(v.isRevoked({ id: 1, iat: second - 30, exp: second + 60 })).toBe(false)
    clock.set(at + 60_000)
    await v.refresh()
    expect(revokedClientToken('deleted-client', second - 30)).toBe(false)
  })

  it.runIf(onPostgres)('sees a revocation that commits after a later one was read', async () => {
    // The view as the server builds it.
    const clock = frozenClock()
    const v = createRevocationView(createRevocationFeed(reader), clock)
    await v.refresh()
    const late = await hold(first, clock.now())
    const early = await committed(second, clock.now())
    await v.refresh()
    expect(revoked(v, early)).toBe(true)
    expect(revoked(v, late.subject)).toBe(false)
    await late.commit()
    // `seq > highest seen` alone never reads it again: this is the session issue 9 left alive.
    await v.refresh()
    expect(revoked(v, late.subject)).toBe(true)
  })

  it.runIf(onPostgres)('sees it however late it commits: the settled mark, not a time window', async () => {
    // The view stops looking up the skipped seq after 1 s (of its clock); the transaction stays
    // open across reads ten seconds apart.
    const { v, clock, positions } = await view(1_000)
    const late = await hold(first, clock.now())
    const early = await committed(second, clock.now())
    for (let i = 0; i < 3; i++) {
      await v.refresh()
      clock.advance(10_000)
    }
    expect(revoked(v, early)).toBe(true)
    expect(revoked(v, late.subject)).toBe(false)
    await late.commit()
    // Once every transaction older than it has ended too: on a server shared with other work
    // (the rest of the suite), that may take a few reads.
    await vi.waitFor(
      async () => {
        await v.refresh()
        expect(revoked(v, late.subject)).toBe(true)
      },
      { timeout: 10_000, interval: 50 },
    )
    // It came through the settled mark alone: the reads no longer asked for its seq.
    expect(positions.at(-1)?.missing).toEqual([])
  })

  it.runIf(onPostgres)(
    'sees new and late ones at once while another transaction holds the mark back',
    async () => {
      const { v, clock } = await view()
      // A writer elsewhere on the server that stays open: nothing below its id can settle.
      const elsewhere = await hold(first, clock.now())
      try {
        await v.refresh()
        const late = await hold(second, clock.now())
        const fresh = await committed(reader, clock.now())
        await v.refresh()
        expect(revoked(v, fresh)).toBe(true)
        await late.commit()
        await v.refresh()
        expect(revoked(v, late.subject)).toBe(true)
      } finally {
        await elsewhere.commit()
      }
      await v.refresh()
      expect(revoked(v, elsewhere.subject)).toBe(true)
    },
  )

  it.runIf(onPostgres)('bounds what each read asks for when seqs are never filled', async () => {
    const { v, clock, positions } = await view(60_000)
    // 1,500 seqs taken by a transaction that rolls back: they never show up.
    await (await hold(first, clock.now(), 1_500)).rollback()
    const after = await committed(second, clock.now())
    await v.refresh()
    await v.refresh()
    expect(revoked(v, after)).toBe(true)
    expect(positions.at(-1)?.missing.length).toBe(1_000)
    clock.advance(60_001)
    await v.refresh()
    await v.refresh()
    expect(positions.at(-1)?.missing).toEqual([])
  })

  it.skipIf(onPostgres)('SQLite: a second writer cannot take a seq while the first is open', async () => {
    const { v, clock } = await view()
    const open = await hold(first, clock.now())
    try {
      // busy_timeout 0: the write lock is held, so the insert fails at once instead of waiting.
      await expect(committed(second, clock.now())).rejects.toThrow(/database is locked/)
    } finally {
      await open.commit()
    }
    const next = await committed(second, clock.now())
    await v.refresh()
    expect(revoked(v, open.subject)).toBe(true)
    expect(revoked(v, next)).toBe(true)
  })
})
