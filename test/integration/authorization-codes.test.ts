// Authorization codes on a real database (SQLite; PostgreSQL in the second run) through the real
// repository: what is stored, every invalid_grant, what a replay revokes, pruning, and the race
// (concurrent redemptions of one code: exactly one wins, on a pool and across processes).
import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { AuditEvent } from '../../src/domain/audit.js'
import {
  AUTHORIZATION_CODE_TTL_MS,
  type CodeRequest,
  createAuthorizationCodeService,
  InvalidAuthorizationCode,
} from '../../src/domain/authorization-codes.js'
import type { StoredClient } from '../../src/domain/clients.js'
import { frozenClock } from '../../src/lib/clock.js'
import { sha256Hex } from '../../src/lib/crypto.js'
import { createAuthorizationCodesRepository } from '../../src/storage/authorization-codes.repository.js'
import { createClientsRepository } from '../../src/storage/clients.repository.js'
import { createDatabase, type Db } from '../../src/storage/database.js'
import { migrateToLatest } from '../../src/storage/migrate.js'
import { freshDatabase, onPostgres } from '../helpers/app.js'
import {
  CHALLENGE,
  codeRequest,
  expectInvalidGrant,
  REDIRECT,
  redemption,
  VERIFIER,
} from '../helpers/authorization-codes.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const RACERS = 20

const database = await freshDatabase('authorization-codes.db')
// The pool's default size (10 connections on PostgreSQL): the race runs over several of them.
const db: Db = createDatabase(database.url)
const clock = frozenClock(Date.UTC(2026, 11, 3, 12))
const events: AuditEvent[] = []
const revoked: string[] = []
const service = createAuthorizationCodeService({
  codes: createAuthorizationCodesRepository(db),
  clock,
  audit: { record: (e) => events.push(e), recordRepeated: (e) => events.push(e) },
  revokeIssued: async (sessionId) => {
    revoked.push(sessionId)
  },
})
let userId: number

const client = (clientId: string): StoredClient => ({
  clientId,
  name: clientId,
  secretHash: null,
  public: true,
  firstParty: false,
  redirectUris: [REDIRECT],
  postLogoutRedirectUris: [],
  grantTypes: ['authorization_code'],
  scopes: ['openid', 'profile'],
  createdAt: clock.now(),
  secretRotatedAt: null,
})

beforeAll(async () => {
  await migrateToLatest(db)
  const clients = createClientsRepository(db)
  for (const id of ['client-a', 'client-b', 'client-c']) await clients.insert(client(id))
  const user = await db
    .insertInto('users')
    .values({ username: 'alice', password: null, username_canonical: 'alice', created_at: null })
    .returning('id')
    .executeTakeFirstOrThrow()
  userId = Number(user.id)
})
afterAll(() => db.destroy())

const request = (over: Partial<CodeRequest> = {}) => codeRequest(userId, clock.now() - 1_000, over)

const row = (code: string) =>
  db
    .selectFrom('authgate_authorization_codes')
    .selectAll()
    .where('code_hash', '=', sha256Hex(code))
    .executeTakeFirst()

describe('an authorization code on the database', () => {
  it('is stored only as its hash, with what it is bound to; redeemed once, it gives the grant', async () => {
    const code = await service.issue(request())
    const issuedAt = clock.now()
    const stored = await row(code)
    expect(stored).toEqual({
      code_hash: sha256Hex(code),
      client_id: 'client-a',
      user_id: userId,
      redirect_uri: REDIRECT,
      scope: 'openid profile',
      code_challenge: CHALLENGE,
      nonce: 'n-0S6_WzA2Mj',
      auth_time: issuedAt - 1_000,
      amr: '["pwd"]',
      browser_session_id: 'browser-1',
      created_at: issuedAt,
      expires_at: issuedAt + AUTHORIZATION_CODE_TTL_MS,
      consumed_at: null,
      issued_session_id: null,
      replayed_at: null,
    })
    const all = await db.selectFrom('authgate_authorization_codes').selectAll().execute()
    expect(JSON.stringify(all)).not.toContain(code)

    clock.advance(AUTHORIZATION_CODE_TTL_MS - 1) // the last millisecond it is valid
    const granted = await service.redeem(redemption(code))
    expect(granted).toEqual({
      handle: sha256Hex(code),
      clientId: 'client-a',
      userId,
      scope: 'openid profile',
      nonce: 'n-0S6_WzA2Mj',
      authTime: issuedAt - 1_000,
      amr: ['pwd'],
      browserSessionId: 'browser-1',
    })
    expect((await row(code))?.consumed_at).toBe(clock.now())
    await service.recordIssuedSession(granted.handle, 'session-happy')
    expect((await row(code))?.issued_session_id).toBe('session-happy')
    expect(revoked).toEqual([])
  })

  it('without a nonce or a browser session: nulls, given back as nulls', async () => {
    const code = await service.issue(request({ nonce: undefined, browserSessionId: undefined }))
    expect(await service.redeem(redemption(code))).toMatchObject({ nonce: null, browserSessionId: null })
  })

  it.each([
    ['an unknown code', { code: 'x'.repeat(43) }],
    ['another client (registered, with the same redirect URI)', { clientId: 'client-b' }],
    ['the redirect URI with its host in another case', { redirectUri: 'https://APP.example.com/callback' }],
    ['the redirect URI with its path in another case', { redirectUri: 'https://app.example.com/Callback' }],
    ['the redirect URI with a trailing slash', { redirectUri: `${REDIRECT}/` }],
    ['the redirect URI with an extra query', { redirectUri: `${REDIRECT}?next=/admin` }],
    ['the redirect URI with an empty query', { redirectUri: `${REDIRECT}?` }],
    [
      'the redirect URI with the default port spelled out',
      { redirectUri: 'https://app.example.com:443/callback' },
    ],
    ['a wrong verifier', { codeVerifier: `${VERIFIER.slice(0, -1)}l` }],
    ['the challenge as the verifier (plain)', { codeVerifier: CHALLENGE }],
    ['a verifier of the wrong syntax', { codeVerifier: `${VERIFIER.slice(1)}+` }],
  ])('%s: invalid_grant, and the code is burnt', async (_why, over) => {
    const code = await service.issue(request())
    await expectInvalidGrant(service.redeem({ ...redemption(code), ...over }))
    if (!('code' in over)) {
      expect((await row(code))?.consumed_at).toBe(clock.now())
      await expectInvalidGrant(service.redeem(redemption(code)))
    }
    expect(revoked).toEqual([])
  })

  it('expired at 60 s (the frozen clock): invalid_grant', async () => {
    const code = await service.issue(request())
    clock.advance(AUTHORIZATION_CODE_TTL_MS)
    await expectInvalidGrant(service.redeem(redemption(code)))
  })

  it('a code presented again: invalid_grant, the session its first use issued revoked, audited once', async () => {
    const code = await service.issue(request())
    const granted = await service.redeem(redemption(code))
    await service.recordIssuedSession(granted.handle, 'session-replayed')
    events.length = 0
    const from = { ip: '198.51.100.7', userAgent: 'attacker/1' }
    await expectInvalidGrant(service.redeem({ ...redemption(code), clientId: 'client-b', from }))
    expect(revoked).toEqual(['session-replayed'])
    expect(events).toEqual([
      {
        type: 'authorization_code.replayed',
        outcome: 'failure',
        userId,
        ip: '198.51.100.7',
        userAgent: 'attacker/1',
        detail: { clientId: 'client-a', revokedSessionId: 'session-replayed' },
      },
    ])
    expect((await row(code))?.replayed_at).toBe(clock.now())
    clock.advance(1)
    await expectInvalidGrant(service.redeem(redemption(code)))
    expect(revoked).toEqual(['session-replayed', 'session-replayed'])
    expect(events).toHaveLength(1)
    revoked.length = 0
  })

  it('a replay before the exchange recorded its session: the exchange revokes it and fails', async () => {
    const code = await service.issue(request())
    const granted = await service.redeem(redemption(code))
    await expectInvalidGrant(service.redeem(redemption(code)))
    expect(revoked).toEqual([])
    await expectInvalidGrant(service.recordIssuedSession(granted.handle, 'session-late'))
    expect(revoked).toEqual(['session-late'])
    revoked.length = 0
  })

  it('deleting the client deletes its codes', async () => {
    const code = await service.issue(request({ clientId: 'client-c' }))
    expect(await row(code)).toBeDefined()
    expect(await createClientsRepository(db).delete('client-c', { at: 0, expires_at: 0 })).toBe(true)
    expect(await row(code)).toBeUndefined()
  })

  it('prune deletes the codes expired at `now`, and only those', async () => {
    clock.advance(10 * AUTHORIZATION_CODE_TTL_MS)
    const old = await service.issue(request())
    await service.redeem(redemption(old))
    clock.advance(1)
    const young = await service.issue(request())
    const before = await db.selectFrom('authgate_authorization_codes').select('code_hash').execute()
    expect(before.length).toBeGreaterThan(2)
    expect(await service.prune(clock.now() - 1 + AUTHORIZATION_CODE_TTL_MS)).toBe(before.length - 1)
    const after = await db.selectFrom('authgate_authorization_codes').select('code_hash').execute()
    expect(after).toEqual([{ code_hash: sha256Hex(young) }])
    expect(await service.prune(clock.now() + AUTHORIZATION_CODE_TTL_MS)).toBe(1)
  })
})

describe(`${RACERS} concurrent redemptions of one code`, () => {
  it('on one pool: exactly one wins, every other gets invalid_grant, and the winner is revoked', async () => {
    if (onPostgres) {
      // Opens the pool's connections first, so the redemptions really run side by side.
      await Promise.all(Array.from({ length: 10 }, () => sql`select pg_sleep(0.05)`.execute(db)))
      const open = await sql<{ n: number }>`
        select count(*)::int as n from pg_stat_activity where datname = current_database()`.execute(db)
      expect(open.rows[0]?.n).toBeGreaterThanOrEqual(5)
    }
    for (let trial = 0; trial < 5; trial++) {
      const code = await service.issue(request())
      const results = await Promise.allSettled(
        Array.from({ length: RACERS }, () => service.redeem(redemption(code))),
      )
      const won = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []))
      const lost = results.flatMap((r) => (r.status === 'rejected' ? [r.reason] : []))
      expect(won, `trial ${trial}`).toHaveLength(1)
      expect(lost).toHaveLength(RACERS - 1)
      for (const err of lost) expect(err).toBeInstanceOf(InvalidAuthorizationCode)
      // The losers were replays of a code already used: the winner's session does not survive.
      revoked.length = 0
      await expectInvalidGrant(
        service.recordIssuedSession((won[0] as { handle: string }).handle, `race-${trial}`),
      )
      expect(revoked).toEqual([`race-${trial}`])
    }
  })

  it('from two processes at once: exactly one wins in all', async () => {
    // The children redeem on the system clock: issued by it too.
    clock.set(Date.now())
    const code = await service.issue(request())
    const args = { ...redemption(code), count: RACERS / 2 }
    const redeemers = await Promise.all([startRedeemer(args), startRedeemer(args)])
    for (const r of redeemers) r.go()
    const outcomes = await Promise.all(redeemers.map((r) => r.result))
    expect(outcomes.reduce((n, o) => n + o.won, 0)).toBe(1)
    expect(outcomes.reduce((n, o) => n + o.lost, 0)).toBe(RACERS - 1)
    expect(outcomes.every((o) => o.other === 0)).toBe(true)
  }, 60_000)
})

interface Outcome {
  won: number
  lost: number
  other: number
}

/** test/helpers/redeem-worker.ts in a process of its own, connected and waiting for go(). */
async function startRedeemer(args: object): Promise<{ go(): void; result: Promise<Outcome> }> {
  const child: ChildProcess = spawn(
    process.execPath,
    ['--import', 'tsx', 'test/helpers/redeem-worker.ts', JSON.stringify(args)],
    {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', DATABASE_URL: database.url },
      stdio: ['pipe', 'pipe', 'pipe'],
    },
  )
  let stdout = ''
  let stderr = ''
  child.stderr?.on('data', (d) => {
    stderr += d
  })
  const exited = once(child, 'exit')
  await new Promise<void>((resolve, reject) => {
    child.stdout?.on('data', (d) => {
      stdout += d
      if (stdout.startsWith('ready\n')) resolve()
    })
    exited.then(([code]) => reject(new Error(`redeemer exited with ${code} before it was ready: ${stderr}`)))
  })
  const result = exited.then(([code]) => {
    if (code !== 0) throw new Error(`redeemer exited with ${code}: ${stderr}`)
    return JSON.parse(stdout.slice('ready\n'.length)) as Outcome
  })
  return { go: () => child.stdin?.end('go\n'), result }
}
