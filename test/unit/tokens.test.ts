// Token issue and verify: the seed's claims, exp from the injected clock.
import { createHmac } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { createTokenService } from '../../src/domain/tokens.js'
import { frozenClock } from '../../src/lib/clock.js'

const secret = 'k'.repeat(40)

function decode(token: string) {
  const [h, p] = token.split('.')
  return {
    header: JSON.parse(Buffer.from(h ?? '', 'base64url').toString()),
    payload: JSON.parse(Buffer.from(p ?? '', 'base64url').toString()),
  }
}

describe('token service', () => {
  it('issues HS256 tokens with sub, id, iat, exp, jti and no aud', () => {
    const clock = frozenClock(Date.UTC(2026, 10, 28, 12, 0, 0))
    const tokens = createTokenService({ secret, expiresInMinutes: 30, clock })
    const { accessToken, expiresIn } = tokens.issue({ id: 7, username: 'Alice' })
    expect(expiresIn).toBe(1800)
    const { header, payload } = decode(accessToken)
    expect(header).toEqual({ alg: 'HS256', typ: 'JWT' })
    const iat = clock.now() / 1000
    expect(payload).toEqual({ sub: 'Alice', id: 7, iat, exp: iat + 1800, jti: expect.any(String) })
    expect(payload.jti.length).toBeGreaterThanOrEqual(20)
    // The signature is HMAC-SHA256 over the UTF-8 bytes of the secret string, as python-jose does.
    const [h, p, s] = accessToken.split('.')
    expect(createHmac('sha256', secret).update(`${h}.${p}`).digest('base64url')).toBe(s)
  })

  it('gives every token its own jti', () => {
    const tokens = createTokenService({ secret, expiresInMinutes: 30, clock: frozenClock() })
    const a = decode(tokens.issue({ id: 1, username: 'a' }).accessToken).payload.jti
    const b = decode(tokens.issue({ id: 1, username: 'a' }).accessToken).payload.jti
    expect(a).not.toBe(b)
  })

  it('verifies its own tokens and rejects them after exp', () => {
    const live = createTokenService({ secret, expiresInMinutes: 30, clock: frozenClock() })
    expect(live.verify(live.issue({ id: 3, username: 'bob', sid: 's1' }).accessToken)).toEqual({
      id: 3,
      username: 'bob',
      sid: 's1',
      iat: expect.any(Number),
    })
    // Issued 31 minutes ago with a 30-minute lifetime.
    const past = createTokenService({
      secret,
      expiresInMinutes: 30,
      clock: frozenClock(Date.now() - 31 * 60_000),
    })
    expect(live.verify(past.issue({ id: 3, username: 'bob' }).accessToken)).toBeUndefined()
  })

  it('rejects a token signed with another secret, and garbage', () => {
    const ours = createTokenService({ secret, expiresInMinutes: 30, clock: frozenClock() })
    const theirs = createTokenService({ secret: 'z'.repeat(40), expiresInMinutes: 30, clock: frozenClock() })
    expect(ours.verify(theirs.issue({ id: 1, username: 'a' }).accessToken)).toBeUndefined()
    for (const junk of ['', 'a', 'a.b', 'a.b.c', '...', 'eyJ.eyJ.', '\u0000']) {
      expect(ours.verify(junk), junk).toBeUndefined()
    }
  })
})
