// Token issue and verify: the seed's claims, exp from the injected clock; HS256 and key pairs.
import { createHmac } from 'node:crypto'
import { createSigner } from 'fast-jwt'
import { createLocalJWKSet, jwtVerify } from 'jose'
import { describe, expect, it } from 'vitest'
import {
  type AsymmetricAlgorithm,
  openKeyAdmin,
  openKeyRing,
  RETIREMENT_SLACK_MS,
} from '../../src/domain/keys.js'
import { createTokenService } from '../../src/domain/tokens.js'
import { frozenClock } from '../../src/lib/clock.js'
import { toLowS } from '../../src/lib/jws.js'
import { memoryKeys, memorySettings } from '../helpers/fakes.js'
import { decodeJwt, decodeProtectedHeader } from '../helpers/http.js'

const secret = 'k'.repeat(40)

describe('token service', () => {
  it('issues HS256 tokens with sub, id, iat, exp, jti and no aud', () => {
    const clock = frozenClock(Date.UTC(2026, 10, 28, 12, 0, 0))
    const tokens = createTokenService({ secret, expiresInMinutes: 30, clock })
    const { accessToken, expiresIn } = tokens.issue({ id: 7, username: 'Alice' })
    expect(expiresIn).toBe(1800)
    const header = decodeProtectedHeader(accessToken)
    const payload = decodeJwt(accessToken)
    expect(header).toEqual({ alg: 'HS256', typ: 'JWT' })
    const iat = clock.now() / 1000
    expect(payload).toEqual({ sub: 'Alice', id: 7, iat, exp: iat + 1800, jti: expect.any(String) })
    expect(payload.jti?.length).toBeGreaterThanOrEqual(20)
    // The signature is HMAC-SHA256 over the UTF-8 bytes of the secret string, as python-jose does.
    const [h, p, s] = accessToken.split('.')
    expect(createHmac('sha256', secret).update(`${h}.${p}`).digest('base64url')).toBe(s)
  })

  it('gives every token its own jti', () => {
    const tokens = createTokenService({ secret, expiresInMinutes: 30, clock: frozenClock() })
    const a = decodeJwt(tokens.issue({ id: 1, username: 'a' }).accessToken).jti
    const b = decodeJwt(tokens.issue({ id: 1, username: 'a' }).accessToken).jti
    expect(a).not.toBe(b)
  })

  it('verifies its own tokens and rejects them after exp', () => {
    const live = createTokenService({ secret, expiresInMinutes: 30, clock: frozenClock() })
    expect(live.verify(live.issue({ id: 3, username: 'bob', sid: 's1' }).accessToken)).toEqual({
      id: 3,
      username: 'bob',
      sid: 's1',
      iat: expect.any(Number),
      exp: expect.any(Number),
      jti: expect.any(String),
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

// ---- every algorithm, iss and aud, kids and rotation --------------------------------------------

const ISSUER = 'https://auth.example.com'
const TTL_MS = 30 * 60_000

async function keyPairService(
  alg: AsymmetricAlgorithm,
  { issuer = ISSUER, audience }: { issuer?: string | undefined; audience?: string } = {},
) {
  const clock = frozenClock()
  const repo = memoryKeys()
  const options = {
    configured: alg,
    secretKey: undefined,
    settings: memorySettings(),
    keys: repo,
    clock,
    accessTtlMs: TTL_MS,
    activationDelayMs: 0,
  }
  const keys = await openKeyRing(options)
  const admin = await openKeyAdmin(options)
  const tokens = createTokenService({ keys, expiresInMinutes: 30, clock, issuer, audience })
  return { tokens, keys, admin, clock, repo }
}

describe.each(['ES256', 'EdDSA', 'RS256'] as const)('token service with %s', (alg) => {
  it('signs with the current key, naming it by kid, with iss; jose verifies it with the JWKS', async () => {
    const { tokens, keys, clock } = await keyPairService(alg)
    const { accessToken } = tokens.issue({ id: 7, username: 'Alice', sid: 's1' })
    const header = decodeProtectedHeader(accessToken)
    const payload = decodeJwt(accessToken)
    expect(header).toEqual({ alg, typ: 'JWT', kid: keys.snapshot()?.current.kid })
    const iat = Math.floor(clock.now() / 1000)
    expect(payload).toEqual({
      sub: 'Alice',
      id: 7,
      sid: 's1',
      iat,
      exp: iat + 1800,
      iss: ISSUER,
      jti: expect.any(String),
    })
    expect(tokens.verify(accessToken)).toEqual({
      id: 7,
      username: 'Alice',
      sid: 's1',
      iat,
      exp: iat + 1800,
      jti: payload.jti,
      iss: ISSUER,
    })
    // Another implementation, from the published keys alone.
    const verified = await jwtVerify(accessToken, createLocalJWKSet({ keys: keys.jwks() }), {
      issuer: ISSUER,
      algorithms: [alg],
      currentDate: new Date(clock.now()),
    })
    expect(verified.payload.sub).toBe('Alice')
  })

  it('rejects a token of another key pair, even under our kid', async () => {
    const ours = await keyPairService(alg)
    const theirs = await keyPairService(alg)
    const foreign = theirs.tokens.issue({ id: 1, username: 'a' }).accessToken
    expect(ours.tokens.verify(foreign)).toBeUndefined()
    const [, p, s] = foreign.split('.')
    const ourKid = ours.keys.snapshot()?.current.kid
    const underOurKid = `${Buffer.from(JSON.stringify({ alg, typ: 'JWT', kid: ourKid })).toString('base64url')}.${p}.${s}`
    expect(ours.tokens.verify(underOurKid)).toBeUndefined()
  })

  it("refuses a token of the RS256 chain's key (ID tokens' key), even with a user's claims", async () => {
    const { tokens, keys, clock } = await keyPairService(alg)
    const { kid, privateKey } = keys.snapshotOf('rs256')?.current ?? { kid: '', privateKey: '' }
    const now = Math.floor(clock.now() / 1000)
    const claims = { sub: 'a', id: 1, iat: now, exp: now + 600, iss: ISSUER }
    expect(tokens.verify(createSigner({ key: privateKey, algorithm: 'RS256', kid })(claims))).toBeUndefined()
    // Control: the same claims under the primary key verify.
    const primary = keys.snapshot()?.current ?? { kid: '', privateKey: '' }
    const signed = createSigner({ key: primary.privateKey, algorithm: alg, kid: primary.kid })(claims)
    expect(tokens.verify(alg === 'ES256' ? toLowS(signed) : signed)).toBeDefined()
  })

  it('requires iss, and ours', async () => {
    const { tokens, keys } = await keyPairService(alg)
    const { kid, privateKey } = keys.snapshot()?.current ?? { kid: '', privateKey: '' }
    // Low-S, as the token service signs ES256 (a high s is refused).
    const signer = createSigner({ key: privateKey, algorithm: alg, kid })
    const sign = (claims: object) => (alg === 'ES256' ? toLowS(signer(claims)) : signer(claims))
    const now = Math.floor(Date.now() / 1000)
    const claims = { sub: 'a', id: 1, iat: now, exp: now + 600 }
    expect(tokens.verify(sign({ ...claims, iss: ISSUER }))).toBeDefined()
    expect(tokens.verify(sign(claims))).toBeUndefined()
    expect(tokens.verify(sign({ ...claims, iss: 'https://evil.example.com' }))).toBeUndefined()
    expect(tokens.verify(sign({ ...claims, iss: [ISSUER] }))).toBeUndefined()
  })

  it('keeps verifying a token of a retired key until every token it signed has expired', async () => {
    const { tokens, keys, admin, clock } = await keyPairService(alg)
    const before = tokens.issue({ id: 1, username: 'a' }).accessToken
    const old = keys.snapshot()?.current
    // A token of the old key that outlives it (as a process that missed the rotation could sign).
    const now = Math.floor(clock.now() / 1000)
    const signed = createSigner({ key: old?.privateKey ?? '', algorithm: alg, kid: old?.kid })({
      sub: 'a',
      id: 1,
      iat: now,
      exp: now + 86_400,
      iss: ISSUER,
    })
    const longLived = alg === 'ES256' ? toLowS(signed) : signed
    await admin.rotate()
    await keys.reload()
    const after = tokens.issue({ id: 1, username: 'a' }).accessToken
    expect(decodeProtectedHeader(after).kid).not.toBe(old?.kid)
    for (const token of [before, after, longLived]) expect(tokens.verify(token)).toBeDefined()
    clock.advance(TTL_MS + RETIREMENT_SLACK_MS - 1000)
    expect(tokens.verify(longLived)).toBeDefined()
    clock.advance(1000)
    expect(tokens.verify(longLived)).toBeUndefined()
  })
})

describe('iss and aud', () => {
  it('HS256 accepts tokens without iss (the seed issues none) but not with another iss', () => {
    const clock = frozenClock()
    const tokens = createTokenService({ secret, expiresInMinutes: 30, clock, issuer: ISSUER })
    const sign = createSigner({ key: secret, algorithm: 'HS256' })
    const now = Math.floor(clock.now() / 1000)
    const claims = { sub: 'a', id: 1, iat: now, exp: now + 600 }
    expect(tokens.verify(sign(claims))).toBeDefined()
    expect(tokens.verify(sign({ ...claims, iss: ISSUER }))).toBeDefined()
    expect(tokens.verify(sign({ ...claims, iss: 'http://127.0.0.1:9999' }))).toBeUndefined()
    expect(decodeJwt(tokens.issue({ id: 1, username: 'a' }).accessToken).iss).toBe(ISSUER)
  })

  it('with JWT_AUDIENCE, every token carries aud and must carry it', async () => {
    const audience = 'https://api.example.com'
    const clock = frozenClock()
    const tokens = createTokenService({ secret, expiresInMinutes: 30, clock, issuer: ISSUER, audience })
    const issued = tokens.issue({ id: 1, username: 'a' }).accessToken
    expect(decodeJwt(issued).aud).toBe(audience)
    expect(tokens.verify(issued)).toBeDefined()
    const sign = createSigner({ key: secret, algorithm: 'HS256' })
    const now = Math.floor(clock.now() / 1000)
    const claims = { sub: 'a', id: 1, iat: now, exp: now + 600 }
    expect(tokens.verify(sign(claims))).toBeUndefined()
    expect(tokens.verify(sign({ ...claims, aud: 'https://other.example.com' }))).toBeUndefined()
    expect(tokens.verify(sign({ ...claims, aud: ['https://other.example.com', audience] }))).toBeDefined()

    const es = await keyPairService('ES256', { audience })
    const esToken = es.tokens.issue({ id: 1, username: 'a' }).accessToken
    expect(decodeJwt(esToken).aud).toBe(audience)
    expect(es.tokens.verify(esToken)).toBeDefined()
  })

  it('without JWT_AUDIENCE, issues no aud', () => {
    const tokens = createTokenService({ secret, expiresInMinutes: 30, clock: frozenClock(), issuer: ISSUER })
    expect(decodeJwt(tokens.issue({ id: 1, username: 'a' }).accessToken)).not.toHaveProperty('aud')
  })
})

describe('verification with key pairs', () => {
  it('asks the ring to reload when a token names a kid it does not know', async () => {
    const { tokens, keys } = await keyPairService('ES256')
    let asked = 0
    keys.reloadSoon = () => {
      asked++
    }
    const valid = tokens.issue({ id: 1, username: 'a' }).accessToken
    const [, p, s] = valid.split('.')
    const unknown = `${Buffer.from(JSON.stringify({ alg: 'ES256', kid: 'somebody-else' })).toString('base64url')}.${p}.${s}`
    expect(tokens.verify(unknown)).toBeUndefined()
    expect(asked).toBe(1)
    expect(tokens.verify(valid)).toBeDefined()
    expect(asked).toBe(1)
  })

  it('uses the injected clock for exp and nbf, on cached verifications too', async () => {
    const { tokens, clock } = await keyPairService('ES256')
    const token = tokens.issue({ id: 1, username: 'a' }).accessToken
    expect(tokens.verify(token)).toBeDefined()
    expect(tokens.verify(token)).toBeDefined()
    clock.advance(30 * 60_000)
    expect(tokens.verify(token)).toBeUndefined()
  })

  it('never throws, whatever it is given', async () => {
    const { tokens } = await keyPairService('ES256')
    for (const junk of [
      '',
      'a',
      'a.b',
      'a.b.c',
      '...',
      'eyJ.eyJ.',
      '\u0000',
      `${'e'.repeat(5000)}.a.b`,
      'bnVsbA.e30.',
    ]) {
      expect(tokens.verify(junk), junk).toBeUndefined()
    }
    expect(tokens.verify(42 as unknown as string)).toBeUndefined()
  })
})

describe('the verified-token cache', () => {
  it('still honours exp and nbf for a token it has seen', () => {
    const clock = frozenClock(Date.UTC(2026, 10, 28, 12, 0, 0))
    const tokens = createTokenService({ secret: 'c'.repeat(40), expiresInMinutes: 30, clock })
    const { accessToken } = tokens.issue({ id: 9, username: 'cached', sid: 's9' })
    expect(tokens.verify(accessToken)?.id).toBe(9)
    expect(tokens.verify(accessToken)?.id).toBe(9) // from the cache
    clock.advance(30 * 60_000)
    expect(tokens.verify(accessToken)).toBeUndefined()
  })

  it('never answers for a token that differs by one character', () => {
    const tokens = createTokenService({ secret: 'c'.repeat(40), expiresInMinutes: 30, clock: frozenClock() })
    const { accessToken } = tokens.issue({ id: 9, username: 'cached' })
    expect(tokens.verify(accessToken)?.id).toBe(9)
    // A character in the middle of the signature (the last one carries padding bits).
    const i = accessToken.length - 10
    const changed = accessToken[i] === 'A' ? 'B' : 'A'
    expect(tokens.verify(accessToken.slice(0, i) + changed + accessToken.slice(i + 1))).toBeUndefined()
  })

  // The cache finds an entry by the signature segment: a token carrying a verified token's
  // signature over another payload must still be checked, and refused.
  it.each(['HS256', 'ES256'] as const)(
    'never answers, %s, for another payload under a signature it has seen',
    async (alg) => {
      const tokens =
        alg === 'HS256'
          ? createTokenService({ secret: 'c'.repeat(40), expiresInMinutes: 30, clock: frozenClock() })
          : (await keyPairService(alg)).tokens
      const { accessToken } = tokens.issue({ id: 9, username: 'cached' })
      expect(tokens.verify(accessToken)?.username).toBe('cached')
      const [header, payload, signature] = accessToken.split('.') as [string, string, string]
      const claims = JSON.parse(Buffer.from(payload, 'base64url').toString())
      const forged = Buffer.from(JSON.stringify({ ...claims, sub: 'admin', id: 1 })).toString('base64url')
      expect(tokens.verify(`${header}.${forged}.${signature}`)).toBeUndefined()
      // And the genuine token is still answered from the cache.
      expect(tokens.verify(accessToken)?.username).toBe('cached')
    },
  )
})
