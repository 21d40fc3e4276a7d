// The audit hash chain as pure functions: hashing, linking, and each kind of tampering verify names.
import { describe, expect, it } from 'vitest'
import {
  type AuditEntry,
  type AuditFacts,
  canonicalDetail,
  canonicalFacts,
  chainFacts,
  entryHash,
  factsOf,
  GENESIS_HASH,
  verifyChain,
} from '../../src/domain/audit-chain.js'

const T0 = Date.UTC(2026, 10, 28, 12)

function facts(i: number, over: Partial<AuditFacts> = {}): AuditFacts {
  return {
    at: T0 + i * 1000,
    type: i % 2 ? 'login.failed' : 'login.succeeded',
    outcome: i % 2 ? 'failure' : 'success',
    userId: i % 3 ? 7 : null,
    username: `user${i}`,
    ip: '203.0.113.7',
    userAgent: 'curl/8',
    detail: canonicalDetail({ sessionId: `s${i}` }),
    ...over,
  }
}

/** A good chain of n entries, seq 1..n (or from `firstSeq`), after `prevHash`. */
function chain(n: number, prevHash = GENESIS_HASH, firstSeq = 1): AuditEntry[] {
  return chainFacts(
    prevHash,
    Array.from({ length: n }, (_, i) => facts(firstSeq + i)),
  ).map((e, i) => ({ ...e, seq: firstSeq + i }))
}

const copy = (entries: AuditEntry[]) => entries.map((e) => ({ ...e }))

describe('audit entry hashing', () => {
  it('is deterministic, fixed-order, hex SHA-256, and covers every field and the predecessor', () => {
    const f = facts(1)
    const h = entryHash(GENESIS_HASH, f)
    expect(h).toMatch(/^[0-9a-f]{64}$/)
    // Same facts built in another key order: same hash.
    const reordered = Object.fromEntries(Object.entries(f).reverse()) as unknown as AuditFacts
    expect(entryHash(GENESIS_HASH, reordered)).toBe(h)
    expect(canonicalFacts(f)).toBe(
      JSON.stringify([f.at, f.type, f.outcome, f.userId, f.username, f.ip, f.userAgent, f.detail]),
    )
    for (const [key, value] of Object.entries({
      at: f.at + 1,
      type: 'login.succeeded',
      outcome: 'success',
      userId: 8,
      username: 'someone',
      ip: '203.0.113.8',
      userAgent: 'curl/9',
      detail: null,
    })) {
      expect(entryHash(GENESIS_HASH, { ...f, [key]: value }), key).not.toBe(h)
    }
    expect(entryHash('1'.repeat(64), f)).not.toBe(h)
  })

  it('tells null from the string "null" and from a missing username', () => {
    expect(entryHash(GENESIS_HASH, facts(1, { username: null }))).not.toBe(
      entryHash(GENESIS_HASH, facts(1, { username: 'null' })),
    )
  })

  it('links each entry to the one before, the first to the given head', () => {
    const entries = chain(3)
    expect(entries[0]?.prevHash).toBe(GENESIS_HASH)
    expect(entries[1]?.prevHash).toBe(entries[0]?.hash)
    expect(entries[2]?.prevHash).toBe(entries[1]?.hash)
  })
})

describe('what an entry keeps', () => {
  it('sorts detail keys, withholds secret-looking values, keeps ids and flags', () => {
    const detail = canonicalDetail({
      sessionId: 'abc',
      refresh_token: 'r3fr3sh',
      password: 'hunter2hunter2',
      reason: 'reuse',
      tokenId: 'tid-1',
      key_id: 'kid-1',
      passwordRehashed: true,
      note: 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln',
    })
    expect(detail).toBe(
      JSON.stringify({
        key_id: 'kid-1',
        note: '[withheld]',
        password: '[withheld]',
        passwordRehashed: true,
        reason: 'reuse',
        refresh_token: '[withheld]',
        sessionId: 'abc',
        tokenId: 'tid-1',
      }),
    )
    expect(detail).not.toMatch(/hunter2|r3fr3sh|eyJhbGci/)
    expect(canonicalDetail({})).toBeNull()
    expect(canonicalDetail(undefined)).toBeNull()
  })

  it('bounds attacker-sized strings', () => {
    const f = factsOf(
      {
        type: 'login.failed',
        outcome: 'failure',
        username: 'x'.repeat(100_000),
        userAgent: 'y'.repeat(100_000),
      },
      T0,
    )
    expect(f.username?.length).toBeLessThan(300)
    expect(f.userAgent?.length).toBeLessThan(600)
    expect(f).toMatchObject({ at: T0, userId: null, ip: null, detail: null })
  })

  it('keeps only text a database stores as given: U+0000 and a cut surrogate pair become U+FFFD', () => {
    const f = factsOf(
      { type: 'login.failed', outcome: 'failure', username: `x${'😀'.repeat(200)}`, userAgent: 'a\u0000b' },
      T0,
    )
    // 256 UTF-16 units: x, 127 whole emoji, and half of the next one.
    expect(f.username).toBe(`x${'😀'.repeat(127)}\uFFFD…`)
    expect(f.userAgent).toBe('a\uFFFDb')
    const whole = factsOf({ type: 'login.failed', outcome: 'failure', username: '😀'.repeat(3) }, T0)
    expect(whole.username).toBe('😀😀😀')
  })
})

describe('verifyChain', () => {
  it('passes a good chain, and an empty one', async () => {
    const entries = chain(5)
    expect(await verifyChain(entries)).toEqual({
      ok: true,
      count: 5,
      first: { seq: 1 },
      head: { seq: 5, hash: entries[4]?.hash },
    })
    expect(await verifyChain([])).toEqual({ ok: true, count: 0 })
  })

  it('accepts an async iterable', async () => {
    async function* gen() {
      yield* chain(3)
    }
    expect(await verifyChain(gen())).toMatchObject({ ok: true, count: 3 })
  })

  it('names an edited field', async () => {
    const entries = copy(chain(5))
    if (entries[2]) entries[2].outcome = 'success'
    const report = await verifyChain(entries)
    expect(report).toMatchObject({ ok: false, count: 2, broken: { seq: 3, kind: 'edited' } })
    if (!report.ok) expect(report.broken.message).toMatch(/^seq 3: .*edited/)
  })

  it('names an edited detail, even when only the JSON text changed', async () => {
    const entries = copy(chain(5))
    if (entries[3]) entries[3].detail = '{"sessionId": "s4"}'
    expect(await verifyChain(entries)).toMatchObject({ ok: false, broken: { seq: 4, kind: 'edited' } })
  })

  it('names a deleted middle entry by the seq that lost its predecessor', async () => {
    const entries = chain(5).filter((e) => e.seq !== 3)
    const report = await verifyChain(entries)
    expect(report).toMatchObject({ ok: false, count: 2, broken: { seq: 4, kind: 'missing' } })
    if (!report.ok) expect(report.broken.message).toMatch(/seq 3 is missing/)
  })

  it('names several deleted entries', async () => {
    const entries = chain(8).filter((e) => e.seq < 3 || e.seq > 5)
    const report = await verifyChain(entries)
    expect(report).toMatchObject({ ok: false, broken: { seq: 6, kind: 'missing' } })
    if (!report.ok) expect(report.broken.message).toMatch(/seq 3 to 5 are missing/)
  })

  it('names swapped entries (rows exchanged, seq kept)', async () => {
    const good = chain(5)
    const entries = copy(good)
    // Seq 2 now holds the third event and seq 3 the second.
    entries[1] = { ...(good[2] as AuditEntry), seq: 2 }
    entries[2] = { ...(good[1] as AuditEntry), seq: 3 }
    const report = await verifyChain(entries)
    expect(report).toMatchObject({ ok: false, count: 1, broken: { seq: 2, kind: 'reordered' } })
  })

  it('names a forged entry whose hash was recomputed without rewriting the chain after it', async () => {
    const entries = copy(chain(5))
    const victim = entries[1] as AuditEntry
    victim.username = 'someone-else'
    victim.hash = entryHash(victim.prevHash, victim)
    const report = await verifyChain(entries)
    // Seq 2 is self-consistent now; the link from seq 3 is what breaks.
    expect(report).toMatchObject({ ok: false, count: 2, broken: { seq: 3, kind: 'unlinked' } })
    if (!report.ok) expect(report.broken.message).toMatch(/seq 2 was rewritten/)
  })

  it('names an edited prev_hash', async () => {
    const entries = copy(chain(4))
    const victim = entries[2] as AuditEntry
    victim.prevHash = 'f'.repeat(64)
    victim.hash = entryHash(victim.prevHash, victim)
    expect(await verifyChain(entries)).toMatchObject({ ok: false, broken: { seq: 3, kind: 'unlinked' } })
  })

  it('requires the first entry ever to start from the genesis hash', async () => {
    const entries = chain(3, 'a'.repeat(64))
    expect(await verifyChain(entries)).toMatchObject({ ok: false, count: 0, broken: { seq: 1 } })
  })

  it('after retention, starts from the anchor the prune left, and notices older entries deleted beside it', async () => {
    const all = chain(10)
    const lastPruned = all[3] as AuditEntry
    const anchor = { seq: lastPruned.seq, hash: lastPruned.hash }
    const remaining = all.slice(4)
    expect(await verifyChain(remaining, anchor)).toMatchObject({ ok: true, count: 6, first: { seq: 5 } })
    // Without the anchor, the same rows would be a chain with its start deleted.
    expect(await verifyChain(remaining)).toMatchObject({ ok: false, broken: { seq: 5, kind: 'missing' } })
    // Someone deletes the oldest remaining entries by hand.
    const report = await verifyChain(all.slice(6), anchor)
    expect(report).toMatchObject({ ok: false, count: 0, broken: { seq: 7, kind: 'missing' } })
    if (!report.ok) expect(report.broken.message).toMatch(/seq 5 to 6 are missing/)
  })
})
