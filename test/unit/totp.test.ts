// TOTP (RFC 6238) and recovery codes (issue 13 item 1): the RFC's own test vectors, the window of
// one step each way, the syntax a code must have, the URI an authenticator app scans, and the
// recovery codes' entropy, normalisation and stored form.
import { TOTP, URI } from 'otpauth'
import { describe, expect, it } from 'vitest'
import {
  matchTotp,
  newRecoveryCode,
  newTotpSecret,
  normalizeRecoveryCode,
  otpauthUri,
  RECOVERY_CODE_COUNT,
  recoveryCodeHash,
  recoveryCodeMatches,
  TOTP_PERIOD_SECONDS,
  timeStepAt,
} from '../../src/domain/totp.js'

// RFC 6238 Appendix B: the SHA-1 seed "12345678901234567890" (ASCII), in base32.
const RFC_SECRET = 'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ'
// Appendix B's SHA-1 column (8 digits); a 6-digit code is its last six (RFC 4226 §5.3).
const VECTORS: [seconds: number, code: string][] = [
  [59, '94287082'],
  [1111111109, '07081804'],
  [1111111111, '14050471'],
  [1234567890, '89005924'],
  [2000000000, '69279037'],
  [20000000000, '65353130'],
]
const STEP_MS = TOTP_PERIOD_SECONDS * 1000

describe('TOTP', () => {
  it.each(VECTORS)('matches RFC 6238 Appendix B at %i s', (seconds, code) => {
    const at = seconds * 1000
    expect(matchTotp(RFC_SECRET, code.slice(2), at)).toBe(Math.floor(seconds / 30))
    expect(timeStepAt(at)).toBe(Math.floor(seconds / 30))
  })

  it('accepts a code one step early or late, and refuses it two steps away', () => {
    const [seconds, eight] = VECTORS[3] as [number, string]
    const code = eight.slice(2)
    const step = Math.floor(seconds / 30)
    const start = step * STEP_MS
    for (const at of [
      start - STEP_MS,
      start - 1,
      start,
      start + STEP_MS - 1,
      start + STEP_MS,
      start + 2 * STEP_MS - 1,
    ]) {
      expect(matchTotp(RFC_SECRET, code, at), `at ${at - start} ms`).toBe(step)
    }
    for (const at of [start - STEP_MS - 1, start + 2 * STEP_MS]) {
      expect(matchTotp(RFC_SECRET, code, at), `at ${at - start} ms`).toBeUndefined()
    }
  })

  it('refuses what is not six ASCII digits, and another secret', () => {
    const at = 1234567890_000
    for (const bad of ['05924', '0005924', ' 005924', '005924 ', '00592a', '００５９２４', '', '8900592']) {
      expect(matchTotp(RFC_SECRET, bad, at), JSON.stringify(bad)).toBeUndefined()
    }
    expect(matchTotp(newTotpSecret(), '005924', at)).toBeUndefined()
  })

  it('makes 160-bit secrets in base32, each new', () => {
    const secrets = new Set(Array.from({ length: 50 }, () => newTotpSecret()))
    expect(secrets.size).toBe(50)
    for (const s of secrets) expect(s).toMatch(/^[A-Z2-7]{32}$/)
  })

  it('writes the URI authenticator apps scan, with the parameters they support', () => {
    const secret = newTotpSecret()
    const uri = otpauthUri({ secret, issuer: 'AuthGate', account: 'ada lovelace' })
    expect(uri.startsWith('otpauth://totp/AuthGate:ada%20lovelace?')).toBe(true)
    const parsed = URI.parse(uri)
    if (!(parsed instanceof TOTP)) throw new Error('not a TOTP URI')
    expect(parsed).toMatchObject({
      issuer: 'AuthGate',
      label: 'ada lovelace',
      algorithm: 'SHA1',
      digits: 6,
      period: 30,
    })
    expect(parsed.secret.base32).toBe(secret)
    // What an app generates from the scanned URI is what matchTotp accepts.
    const now = Date.now()
    expect(matchTotp(secret, parsed.generate({ timestamp: now }), now)).toBe(timeStepAt(now))
  })
})

describe('recovery codes', () => {
  it('are 125 bits in five groups of Crockford base32, each new', () => {
    const codes = new Set(Array.from({ length: 1000 }, () => newRecoveryCode()))
    expect(codes.size).toBe(1000)
    for (const c of codes) expect(c).toMatch(/^[0-9a-hjkmnp-tv-z]{5}(-[0-9a-hjkmnp-tv-z]{5}){4}$/)
    expect(RECOVERY_CODE_COUNT).toBe(10)
  })

  it('match however they are typed: case, spaces, dashes, and i, l, o read as 1 and 0', () => {
    const code = '01abc-defgh-jk1mn-pqrst-vwxyz'
    const stored = recoveryCodeHash(code) as string
    for (const typed of [
      code,
      code.toUpperCase(),
      code.replaceAll('-', ''),
      code.replaceAll('-', ' '),
      'o1abc-defgh-jkimn-pqrst-vwxyz',
      'O1ABC DEFGH JKLMN PQRST VWXYZ',
    ]) {
      expect(recoveryCodeMatches(typed, stored), typed).toBe(true)
    }
    expect(recoveryCodeMatches('01abc-defgh-jk1mn-pqrst-vwxy0', stored)).toBe(false)
    expect(recoveryCodeMatches(newRecoveryCode(), stored)).toBe(false)
  })

  it('refuse what cannot be one, and store only a hash', () => {
    for (const bad of [
      '',
      '01abc-defgh',
      '01abc-defgh-jk1mn-pqrst-vwxyzz',
      '01abc-defgh-jk1mn-pqrst-vwxyu',
      'ü1abc-defgh-jk1mn-pqrst-vwxyz',
    ]) {
      expect(normalizeRecoveryCode(bad), bad).toBeUndefined()
      expect(recoveryCodeHash(bad)).toBeUndefined()
      expect(recoveryCodeMatches(bad, 'x'.repeat(64))).toBe(false)
    }
    const code = newRecoveryCode()
    const hash = recoveryCodeHash(code) as string
    expect(hash).toMatch(/^[0-9a-f]{64}$/)
    expect(hash).not.toContain(code.replaceAll('-', ''))
  })
})
