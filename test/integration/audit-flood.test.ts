// Issue 9: unauthenticated requests must not grow the audit log without bound. Throttled attempts
// are written as one summary per address and minute, failed ones beyond the first few too; every
// attempt is still counted, and the chain still verifies.
import { describe, expect, it } from 'vitest'
import type { AuditEvent } from '../../src/domain/audit.js'
import { createAuditService } from '../../src/domain/audit-writer.js'
import { frozenClock } from '../../src/lib/clock.js'
import { openAudit } from '../../src/services.js'
import { createAuditStore } from '../../src/storage/audit.repository.js'
import { createDatabase } from '../../src/storage/database.js'
import { migrateToLatest } from '../../src/storage/migrate.js'
import { buildTestApp, freshDatabase, inspect, onPostgres, PASSWORD } from '../helpers/app.js'
import { logIn, signUp } from '../helpers/http.js'

// The measure is rows per 10,000 throttled attempts. On PostgreSQL each attempt commits
// four writes to the same two counter rows, one after another (about 100 s for 10,000 here), so
// that run takes a tenth: the bound asserted is the same.
const FLOOD = onPostgres ? 1_000 : 10_000
const LONG_AGENT = `flood/1.0 ${'x'.repeat(600)}`

interface Row {
  type: string
  ip: string | null
  username: string | null
  user_agent: string | null
  detail: string | null
}

/** How many attempts a row stands for: a summary's count, else one. */
const attemptsIn = (row: Row) => {
  const detail = row.detail ? (JSON.parse(row.detail) as { summary?: boolean; count?: number }) : {}
  return detail.summary ? (detail.count ?? 0) : 1
}

/** Runs `n` tasks, `width` at a time. */
async function pool(n: number, width: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < n) await task(next++)
    }),
  )
}

describe('audit rows per attacker', () => {
  it('10,000 throttled logins from one address (1,000 on PostgreSQL) write one summary row per minute, counting all', async () => {
    const t = await buildTestApp({ RATE_LIMIT: 'on', LOGIN_MAX_FAILURES: '1' })
    await signUp(t.app, 'victim')
    const statuses = new Map<number, number>()
    const started = performance.now()
    await pool(FLOOD + 1, 8, async () => {
      const res = await logIn(t.app, 'victim', 'wrong guess!', {
        remoteAddress: '203.0.113.66',
        headers: { 'user-agent': LONG_AGENT },
      })
      statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1)
    })
    const seconds = (performance.now() - started) / 1000
    expect(Object.fromEntries(statuses)).toEqual({ 401: 1, 429: FLOOD })
    // Closing writes what is still being summarised.
    await t.app.close()
    const rows = (await inspect(t.dbUrl)
      .selectFrom('authgate_audit_log')
      .select(['type', 'ip', 'username', 'user_agent', 'detail'])
      .where('type', '=', 'login.throttled')
      .execute()) as Row[]
    console.info(
      `[audit] ${FLOOD} throttled attempts in ${seconds.toFixed(1)} s wrote ${rows.length} login.throttled row(s)`,
    )
    // One per address and started minute of the flood (the summary window), at most.
    expect(rows.length).toBeGreaterThanOrEqual(1)
    expect(rows.length).toBeLessThanOrEqual(Math.ceil(seconds / 60) + 1)
    expect(rows.reduce((sum, r) => sum + attemptsIn(r), 0)).toBe(FLOOD)
    const [first] = rows
    expect(first).toMatchObject({ ip: '203.0.113.66', username: 'victim' })
    expect((first?.user_agent ?? '').length).toBeLessThanOrEqual(129)
    expect(JSON.parse(first?.detail ?? '{}')).toMatchObject({ summary: true, sameUsername: true })
    expect(await openAudit(inspect(t.dbUrl), t.config).verify()).toMatchObject({ ok: true })
    await t.db.drop()
  }, 120_000)

  it('failed logins from one address: the first five whole, the rest in one summary', async () => {
    const t = await buildTestApp({ RATE_LIMIT: 'on', LOGIN_IP_MAX_FAILURES: '100000' })
    await signUp(t.app, 'someone', PASSWORD)
    const attempt = (username: string, ip: string) =>
      logIn(t.app, username, 'wrong guess!', { remoteAddress: ip })
    // Names nobody has, so no account's own limit applies: a spray from one address.
    await pool(200, 8, async (i) => {
      expect((await attempt(`nobody-${i}`, '198.51.100.7')).statusCode).toBe(401)
    })
    // Another address is counted apart, and a typo of the owner's is kept whole.
    expect((await attempt('someone', '198.51.100.8')).statusCode).toBe(401)
    await t.app.close()
    const rows = (await inspect(t.dbUrl)
      .selectFrom('authgate_audit_log')
      .select(['type', 'ip', 'username', 'user_agent', 'detail'])
      .where('type', '=', 'login.failed')
      .orderBy('seq')
      .execute()) as Row[]
    const spray = rows.filter((r) => r.ip === '198.51.100.7')
    expect(spray.length).toBe(6)
    expect(spray.filter((r) => r.detail === null)).toHaveLength(5)
    expect(spray.reduce((sum, r) => sum + attemptsIn(r), 0)).toBe(200)
    expect(JSON.parse(spray.find((r) => r.detail)?.detail ?? '{}')).toMatchObject({
      summary: true,
      count: 195,
      sameUsername: false,
    })
    expect(rows.filter((r) => r.ip === '198.51.100.8')).toEqual([
      {
        type: 'login.failed',
        ip: '198.51.100.8',
        username: 'someone',
        user_agent: 'lightMyRequest',
        detail: null,
      },
    ])
    expect(await openAudit(inspect(t.dbUrl), t.config).verify()).toMatchObject({ ok: true })
    await t.db.drop()
  })

  it('windows end on their own, and addresses beyond the cap share one overflow summary', async () => {
    const { url } = await freshDatabase('summaries.db')
    const db = createDatabase(url)
    await migrateToLatest(db)
    const clock = frozenClock(Date.UTC(2026, 11, 2))
    const audit = createAuditService({
      store: createAuditStore(db),
      clock,
      retentionDays: 0,
      summaries: { windowMs: 60_000, maxGroups: 3 },
    })
    const throttled = (ip: string): AuditEvent => ({
      type: 'login.throttled',
      outcome: 'failure',
      username: 'victim',
      ip,
      userAgent: 'ua',
    })
    for (let i = 0; i < 4; i++) audit.recordRepeated(throttled('192.0.2.1'), { key: '192.0.2.1' })
    // A minute on, the same address opens a new window; the old one is written.
    clock.advance(60_000)
    audit.recordRepeated(throttled('192.0.2.1'), { key: '192.0.2.1' })
    // Ten more addresses: two get groups of their own (the cap is 3), eight share the overflow.
    for (let i = 2; i <= 11; i++) audit.recordRepeated(throttled(`192.0.2.${i}`), { key: `192.0.2.${i}` })
    await audit.flush()
    const rows = (await inspect(url)
      .selectFrom('authgate_audit_log')
      .select(['type', 'ip', 'username', 'user_agent', 'detail'])
      .orderBy('seq')
      .execute()) as Row[]
    expect(rows.map((r) => [r.ip, attemptsIn(r)])).toEqual([
      ['192.0.2.1', 4],
      ['192.0.2.1', 1],
      ['192.0.2.2', 1],
      ['192.0.2.3', 1],
      [null, 8],
    ])
    expect(JSON.parse(rows[4]?.detail ?? '{}')).toMatchObject({ summary: true, overflow: true, count: 8 })
    expect(await audit.verify()).toMatchObject({ ok: true, count: 5 })
    await db.destroy()
  })
})
