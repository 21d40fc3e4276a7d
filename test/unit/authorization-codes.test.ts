// Authorization codes' rules (domain/authorization-codes.ts) over an in-memory repository with the
// same compare-and-swap semantics, on a frozen clock: PKCE (RFC 7636 Appendix B's vector, S256
// only), the 60 s lifetime, one answer for every failure, burning, and what a replay revokes.
import { describe, expect, it, vi } from 'vitest'
import type { AuditEvent, AuditLog } from '../../src/domain/audit.js'
import {
  AUTHORIZATION_CODE_TTL_MS,
  type AuthorizationCodesRepository,
  type CodeRequest,
  createAuthorizationCodeService,
  isCodeVerifier,
  isS256Challenge,
  type StoredAuthorizationCode,
  s256Challenge,
} from '../../src/domain/authorization-codes.js'
import { DomainError, ErrorCode } from '../../src/domain/errors.js'
import { frozenClock } from '../../src/lib/clock.js'
import * as crypto from '../../src/lib/crypto.js'
import {
  CHALLENGE,
  codeRequest,
  expectInvalidGrant,
  REDIRECT,
  redemption,
  VERIFIER,
} from '../helpers/authorization-codes.js'

// Counted, not changed: a verifier of the wrong syntax must still cost one constant-time compare.
vi.mock('../../src/lib/crypto.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('../../src/lib/crypto.js')>()
  return { ...real, constantTimeEqual: vi.fn(real.constantTimeEqual) }
})

const T0 = Date.UTC(2026, 11, 3, 12)

/** The repository's contract in memory: each method one atomic step, like its one SQL statement. */
function memoryCodes(): AuthorizationCodesRepository & { rows: Map<string, StoredAuthorizationCode> } {
  const rows = new Map<string, StoredAuthorizationCode>()
  const copy = (c: StoredAuthorizationCode | undefined) => c && { ...c, amr: [...c.amr] }
  return {
    rows,
    async insert(code) {
      if (rows.has(code.codeHash)) throw new Error('duplicate code hash')
      rows.set(code.codeHash, copy(code) as StoredAuthorizationCode)
    },
    async consume(codeHash, at) {
      const row = rows.get(codeHash)
      if (!row || row.consumedAt !== null) return undefined
      row.consumedAt = at
      return copy(row)
    },
    async find(codeHash) {
      return copy(rows.get(codeHash))
    },
    async markReplayed(codeHash, at) {
      const row = rows.get(codeHash)
      if (!row || row.consumedAt === null || row.replayedAt !== null) return undefined
      row.replayedAt = at
      return copy(row)
    },
    async setIssuedSession(codeHash, sessionId) {
      const row = rows.get(codeHash)
      if (!row || row.consumedAt === null || row.issuedSessionId !== null) return undefined
      row.issuedSessionId = sessionId
      return copy(row)
    },
    async deleteExpired(now) {
      let n = 0
      for (const [hash, row] of rows) if (row.expiresAt <= now && rows.delete(hash)) n++
      return n
    },
  }
}

function setup() {
  const codes = memoryCodes()
  const clock = frozenClock(T0)
  const events: AuditEvent[] = []
  const audit: AuditLog = { record: (e) => events.push(e), recordRepeated: (e) => events.push(e) }
  const revoked: string[] = []
  const service = createAuthorizationCodeService({
    codes,
    clock,
    audit,
    revokeIssued: async (sessionId) => {
      revoked.push(sessionId)
    },
  })
  return { codes, clock, events, revoked, service }
}

const request = (over: Partial<CodeRequest> = {}) => codeRequest(7, T0 - 5_000, over)

describe('PKCE (RFC 7636)', () => {
  it('S256 of the Appendix B verifier is the Appendix B challenge', () => {
    expect(s256Challenge(VERIFIER)).toBe(CHALLENGE)
    expect(isCodeVerifier(VERIFIER)).toBe(true)
    expect(isS256Challenge(CHALLENGE)).toBe(true)
  })

  it.each([
    ['43 characters, the minimum', 'a'.repeat(43), true],
    ['128 characters, the maximum', 'a'.repeat(128), true],
    ['every unreserved character', `AZaz09-._~${'x'.repeat(33)}`, true],
    ['42 characters', 'a'.repeat(42), false],
    ['129 characters', 'a'.repeat(129), false],
    ['a plus (base64, not base64url)', `${'a'.repeat(42)}+`, false],
    ['a slash', `${'a'.repeat(42)}/`, false],
    ['padding', `${'a'.repeat(42)}=`, false],
    ['a space', `${'a'.repeat(42)} `, false],
    ['a non-ASCII letter', `${'a'.repeat(42)}é`, false],
    ['empty', '', false],
  ])('a code_verifier of %s: %s', (_why, verifier, ok) => {
    expect(isCodeVerifier(verifier)).toBe(ok)
  })

  it.each([
    ['42 characters', CHALLENGE.slice(1)],
    ['44 characters', `${CHALLENGE}A`],
    ['padded', `${CHALLENGE}=`],
    ['base64, not base64url', CHALLENGE.replace('-', '+')],
    ['a last character with unused bits set (no SHA-256 encodes to it)', `${CHALLENGE.slice(0, 42)}5`],
    ['a space', `${CHALLENGE.slice(1)} `],
  ])('not an S256 challenge: %s', (_why, challenge) => {
    expect(isS256Challenge(challenge)).toBe(false)
  })
})

describe('issue', () => {
  it('a 256-bit base64url code, stored only as its SHA-256, valid 60 s, with everything it is bound to', async () => {
    const { service, codes } = setup()
    const code = await service.issue(request())
    expect(code).toMatch(/^[A-Za-z0-9_-]{43}$/) // 32 bytes
    expect(AUTHORIZATION_CODE_TTL_MS).toBe(60_000)
    expect([...codes.rows.values()]).toEqual([
      {
        codeHash: crypto.sha256Hex(code),
        clientId: 'client-a',
        userId: 7,
        redirectUri: REDIRECT,
        scope: 'openid profile',
        codeChallenge: CHALLENGE,
        nonce: 'n-0S6_WzA2Mj',
        authTime: T0 - 5_000,
        amr: ['pwd'],
        browserSessionId: 'browser-1',
        createdAt: T0,
        expiresAt: T0 + 60_000,
        consumedAt: null,
        issuedSessionId: null,
        replayedAt: null,
      },
    ])
    expect(JSON.stringify([...codes.rows.values()])).not.toContain(code)
    expect(await service.issue(request())).not.toBe(code)
  })

  it('no nonce and no browser session are stored as null', async () => {
    const { service, codes } = setup()
    await service.issue(request({ nonce: undefined, browserSessionId: undefined }))
    expect([...codes.rows.values()][0]).toMatchObject({ nonce: null, browserSessionId: null })
  })

  it.each([
    ['plain', { codeChallengeMethod: 'plain', codeChallenge: VERIFIER }, /must be S256/],
    ['no method (which means plain, RFC 7636 §4.3)', { codeChallengeMethod: undefined }, /must be S256/],
    ['s256 in lower case', { codeChallengeMethod: 's256' }, /must be S256/],
    ['an unknown method', { codeChallengeMethod: 'S512' }, /must be S256/],
    ['a challenge of 42 characters', { codeChallenge: CHALLENGE.slice(1) }, /43-character BASE64URL/],
    ['an empty challenge', { codeChallenge: '' }, /43-character BASE64URL/],
    ['a base64 challenge', { codeChallenge: CHALLENGE.replace('-', '+') }, /43-character BASE64URL/],
  ])('refuses %s as invalid_request, and stores nothing', async (_why, over, message) => {
    const { service, codes } = setup()
    const err = await service.issue(request(over)).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(DomainError)
    expect(err).toMatchObject({ code: ErrorCode.invalidRequest, detail: expect.stringMatching(message) })
    expect(codes.rows.size).toBe(0)
  })
})

describe('redeem', () => {
  it('the right client, redirect URI and verifier get the grant, once', async () => {
    const { service, codes } = setup()
    const code = await service.issue(request())
    expect(await service.redeem(redemption(code))).toEqual({
      handle: crypto.sha256Hex(code),
      clientId: 'client-a',
      userId: 7,
      scope: 'openid profile',
      nonce: 'n-0S6_WzA2Mj',
      authTime: T0 - 5_000,
      amr: ['pwd'],
      browserSessionId: 'browser-1',
    })
    expect(codes.rows.get(crypto.sha256Hex(code))?.consumedAt).toBe(T0)
    await expectInvalidGrant(service.redeem(redemption(code)))
  })

  it('is valid until 60 s after issue, and not at 60 s (the frozen clock)', async () => {
    const { service, clock } = setup()
    const early = await service.issue(request())
    const late = await service.issue(request())
    clock.advance(AUTHORIZATION_CODE_TTL_MS - 1)
    expect(await service.redeem(redemption(early))).toMatchObject({ userId: 7 })
    clock.advance(1)
    await expectInvalidGrant(service.redeem(redemption(late)))
  })

  it.each([
    ['an unknown code', { code: 'x'.repeat(43) }],
    ['an empty code', { code: '' }],
    ['another client', { clientId: 'client-b' }],
    ['another redirect URI', { redirectUri: 'https://app.example.com/other' }],
    ['the redirect URI with a trailing slash', { redirectUri: `${REDIRECT}/` }],
    ['a wrong verifier', { codeVerifier: 'a'.repeat(43) }],
    ['the challenge as the verifier (plain)', { codeVerifier: CHALLENGE }],
    ['a verifier of 42 characters', { codeVerifier: VERIFIER.slice(1) }],
    ['a verifier of 129 characters', { codeVerifier: `${VERIFIER}${'a'.repeat(86)}` }],
    ['a verifier with a character outside unreserved', { codeVerifier: `${VERIFIER.slice(1)}+` }],
  ])('%s: invalid_grant, the same words as every other failure', async (_why, over) => {
    const { service } = setup()
    const code = await service.issue(request())
    await expectInvalidGrant(service.redeem({ ...redemption(code), ...over }))
  })

  it('a verifier of the wrong syntax still costs a hash and a constant-time compare', async () => {
    const { service } = setup()
    const code = await service.issue(request())
    const compare = vi.mocked(crypto.constantTimeEqual)
    compare.mockClear()
    await expectInvalidGrant(service.redeem({ ...redemption(code), codeVerifier: 'short' }))
    expect(compare).toHaveBeenCalledTimes(1)
    expect(compare.mock.calls[0]?.[0]).toMatch(/^[A-Za-z0-9_-]{43}$/)
    expect(compare.mock.calls[0]?.[1]).toBe(CHALLENGE)
  })

  it.each([
    ['a wrong verifier', { codeVerifier: 'a'.repeat(43) }],
    ['another client', { clientId: 'client-b' }],
    ['another redirect URI', { redirectUri: `${REDIRECT}?x=1` }],
  ])('a failed redemption (%s) burns the code: the right one fails after it', async (_why, over) => {
    const { service, revoked } = setup()
    const code = await service.issue(request())
    await expectInvalidGrant(service.redeem({ ...redemption(code), ...over }))
    await expectInvalidGrant(service.redeem(redemption(code)))
    expect(revoked).toEqual([]) // the failed use issued nothing
  })
})

describe('replay (RFC 6749 §4.1.2)', () => {
  it('a used code presented again: invalid_grant, the session its first use issued revoked, audited once', async () => {
    const { service, revoked, events } = setup()
    const code = await service.issue(request())
    const granted = await service.redeem(redemption(code))
    await service.recordIssuedSession(granted.handle, 'session-1')
    expect(revoked).toEqual([])
    const from = { ip: '203.0.113.9', userAgent: 'curl/8' }
    await expectInvalidGrant(service.redeem({ ...redemption(code), from }))
    expect(revoked).toEqual(['session-1'])
    expect(events).toEqual([
      {
        type: 'authorization_code.replayed',
        outcome: 'failure',
        userId: 7,
        ip: '203.0.113.9',
        userAgent: 'curl/8',
        detail: { clientId: 'client-a', revokedSessionId: 'session-1' },
      },
    ])
    // Again, by anyone: revoked again (idempotent, so a failed revocation is retried), not audited again.
    await expectInvalidGrant(service.redeem({ ...redemption(code), clientId: 'client-b' }))
    expect(revoked).toEqual(['session-1', 'session-1'])
    expect(events).toHaveLength(1)
  })

  it('a replay before the exchange recorded its session: the exchange revokes it and fails', async () => {
    const { service, revoked, events } = setup()
    const code = await service.issue(request())
    const granted = await service.redeem(redemption(code))
    await expectInvalidGrant(service.redeem(redemption(code)))
    expect(revoked).toEqual([]) // nothing recorded yet
    await expectInvalidGrant(service.recordIssuedSession(granted.handle, 'session-1'))
    expect(revoked).toEqual(['session-1'])
    expect(events.map((e) => e.detail)).toEqual([
      { clientId: 'client-a', revokedSessionId: null },
      { clientId: 'client-a', revokedSessionId: 'session-1' },
    ])
  })

  it('recording a second session for one code revokes that session and fails', async () => {
    const { service, revoked } = setup()
    const granted = await service.redeem(redemption(await service.issue(request())))
    await service.recordIssuedSession(granted.handle, 'session-1')
    await expectInvalidGrant(service.recordIssuedSession(granted.handle, 'session-2'))
    expect(revoked).toEqual(['session-2'])
  })

  it('a revocation that fails is not swallowed', async () => {
    const { service, codes, clock } = setup()
    const failing = createAuthorizationCodeService({
      codes,
      clock,
      audit: { record() {}, recordRepeated() {} },
      revokeIssued: async () => {
        throw new Error('database down')
      },
    })
    const code = await service.issue(request())
    await service.recordIssuedSession((await service.redeem(redemption(code))).handle, 'session-1')
    await expect(failing.redeem(redemption(code))).rejects.toThrow('database down')
  })
})

describe('prune', () => {
  it('deletes the codes expired at `now`, used or not, and keeps the rest', async () => {
    const { service, codes, clock } = setup()
    const used = await service.issue(request())
    await service.redeem(redemption(used))
    await service.issue(request())
    clock.advance(1_000)
    const young = await service.issue(request())
    expect(await service.prune(T0 + AUTHORIZATION_CODE_TTL_MS - 1)).toBe(0)
    expect(await service.prune(T0 + AUTHORIZATION_CODE_TTL_MS)).toBe(2)
    expect([...codes.rows.keys()]).toEqual([crypto.sha256Hex(young)])
  })
})
