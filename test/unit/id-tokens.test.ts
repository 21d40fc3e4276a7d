// ID tokens (OpenID Connect Core §2): the claims, RS256 from the RS256 chain on every deployment
// (HS256 ones too), verified by another implementation (jose) from the published JWKS alone.
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify } from 'jose'
import { describe, expect, it } from 'vitest'
import { createIdTokens, type IdTokenInput } from '../../src/domain/id-tokens.js'
import {
  openKeyAdmin,
  openKeyRing,
  RETIREMENT_SLACK_MS,
  type SigningAlgorithm,
} from '../../src/domain/keys.js'
import { createTokenService } from '../../src/domain/tokens.js'
import { frozenClock } from '../../src/lib/clock.js'
import { memoryKeys, memorySettings } from '../helpers/fakes.js'

const ISSUER = 'https://auth.example.com'
const CLIENT = 'c0ffee00c0ffee00c0ffee00c0ffee00'
const SUBJECT = '5f1d0c9e8b7a69584736251403f2e1d0'
const TTL_MS = 30 * 60_000

async function deployment(alg: SigningAlgorithm) {
  const clock = frozenClock(Date.UTC(2026, 11, 3, 12))
  const options = {
    configured: alg,
    secretKey: undefined,
    settings: memorySettings(),
    keys: memoryKeys(),
    clock,
    accessTtlMs: TTL_MS,
    activationDelayMs: 0,
  }
  const keys = await openKeyRing(options)
  const admin = await openKeyAdmin(options)
  const idTokens = createIdTokens({ keys, clock, expiresInSeconds: TTL_MS / 1000 })
  const jwks = () => createLocalJWKSet({ keys: keys.jwks() })
  return { keys, admin, clock, idTokens, jwks }
}

const input = (over: Partial<IdTokenInput> = {}): IdTokenInput => ({
  issuer: ISSUER,
  sub: SUBJECT,
  aud: CLIENT,
  nonce: 'n-0S6_WzA2Mj',
  authTime: Date.UTC(2026, 11, 3, 11, 59, 30),
  sid: 'browser-session-1',
  amr: ['pwd'],
  extra: { preferred_username: 'grace.hopper' },
  ...over,
})

describe.each(['ES256', 'EdDSA', 'RS256', 'HS256'] as const)('on a %s deployment', (alg) => {
  it('mints an RS256 ID token with the OIDC Core §2 claims, which jose verifies through the JWKS', async () => {
    const { keys, clock, idTokens, jwks } = await deployment(alg)
    expect(idTokens.algorithms()[0]).toBe('RS256')
    const token = idTokens.mintIdToken(input())
    const now = Math.floor(clock.now() / 1000)
    const { payload, protectedHeader } = await jwtVerify(token, jwks(), {
      issuer: ISSUER,
      audience: CLIENT,
      algorithms: ['RS256'],
      requiredClaims: ['sub', 'exp', 'iat', 'auth_time', 'nonce'],
      currentDate: new Date(clock.now()),
    })
    expect(protectedHeader).toEqual({ alg: 'RS256', typ: 'JWT', kid: keys.snapshotOf('rs256')?.current.kid })
    expect(payload).toEqual({
      iss: ISSUER,
      sub: SUBJECT,
      aud: CLIENT,
      exp: now + TTL_MS / 1000,
      iat: now,
      auth_time: Math.floor(Date.UTC(2026, 11, 3, 11, 59, 30) / 1000),
      nonce: 'n-0S6_WzA2Mj',
      sid: 'browser-session-1',
      amr: ['pwd'],
      preferred_username: 'grace.hopper',
    })
  })

  it('never passes for an access token at the token service', async () => {
    const { keys, clock, idTokens } = await deployment(alg)
    const tokens =
      alg === 'HS256'
        ? createTokenService({ secret: keys.secret ?? '', expiresInMinutes: 30, clock, issuer: ISSUER })
        : createTokenService({ keys, expiresInMinutes: 30, clock, issuer: ISSUER })
    expect(tokens.verify(idTokens.mintIdToken(input()))).toBeUndefined()
    // Control: an access token of the same deployment verifies.
    expect(
      tokens.verify(tokens.issue({ id: 1, username: 'grace.hopper', sid: 's' }).accessToken),
    ).toBeDefined()
  })
})

describe('ID tokens', () => {
  it('leave out nonce and sid when there are none', async () => {
    const { idTokens, jwks, clock } = await deployment('ES256')
    const { payload } = await jwtVerify(
      idTokens.mintIdToken(input({ nonce: null, sid: undefined })),
      jwks(),
      {
        currentDate: new Date(clock.now()),
      },
    )
    expect(payload).not.toHaveProperty('nonce')
    expect(payload).not.toHaveProperty('sid')
  })

  it("can be signed with the deployment's own algorithm when a client asks, and not with another", async () => {
    const { idTokens, jwks, clock, keys } = await deployment('ES256')
    expect(idTokens.algorithms()).toEqual(['RS256', 'ES256'])
    const token = idTokens.mintIdToken(input({ alg: 'ES256' }))
    expect(decodeProtectedHeader(token)).toMatchObject({ alg: 'ES256', kid: keys.snapshot()?.current.kid })
    await expect(
      jwtVerify(token, jwks(), { algorithms: ['ES256'], currentDate: new Date(clock.now()) }),
    ).resolves.toBeDefined()
    expect(() => idTokens.mintIdToken(input({ alg: 'EdDSA' }))).toThrow(/EdDSA/)
  })

  it('offer only RS256 on RS256 and HS256 deployments', async () => {
    for (const alg of ['RS256', 'HS256'] as const) {
      const { idTokens } = await deployment(alg)
      expect(idTokens.algorithms()).toEqual(['RS256'])
      expect(() => idTokens.mintIdToken(input({ alg: 'ES256' }))).toThrow(/ES256/)
    }
  })

  it('refuse extra claims that would replace one of theirs', async () => {
    const { idTokens } = await deployment('ES256')
    for (const claim of ['iss', 'sub', 'aud', 'exp', 'nonce', 'auth_time', 'id']) {
      expect(() => idTokens.mintIdToken(input({ extra: { [claim]: 'x' } })), claim).toThrow(claim)
    }
  })

  it('keep verifying through a rotation of the RS256 key until they have expired', async () => {
    const { idTokens, jwks, clock, admin, keys } = await deployment('HS256')
    const before = idTokens.mintIdToken(input())
    const oldKid = keys.snapshotOf('rs256')?.current.kid
    const { key } = await admin.rotate()
    await keys.reload()
    expect(decodeProtectedHeader(idTokens.mintIdToken(input())).kid).toBe(key.kid)
    clock.advance(TTL_MS - 1000)
    await expect(jwtVerify(before, jwks(), { currentDate: new Date(clock.now()) })).resolves.toBeDefined()
    // Once the old key's tokens can all have expired, the key leaves the JWKS.
    clock.advance(1000 + RETIREMENT_SLACK_MS)
    expect(keys.jwks().map((k) => k.kid)).not.toContain(oldKid)
  })
})
