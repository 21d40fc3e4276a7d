// Signing keys: which algorithm a deployment gets, kids (RFC 7638), key generation, the key ring's
// JWKS, rotation and retirement, on an in-memory repository and a frozen clock.
import { createPublicKey } from 'node:crypto'
import { describe, expect, it, vi } from 'vitest'
import {
  type AsymmetricAlgorithm,
  generateSigningKey,
  jwkThumbprint,
  openKeyAdmin,
  openKeyRing,
  RETIREMENT_SLACK_MS,
  resolveAlgorithm,
} from '../../src/domain/keys.js'
import { frozenClock } from '../../src/lib/clock.js'
import { memoryKeys, memorySettings } from '../helpers/fakes.js'

const TTL = 30 * 60_000
const DELAY = 66_000

async function ring(
  opts: {
    alg?: 'HS256' | AsymmetricAlgorithm
    keys?: ReturnType<typeof memoryKeys>
    clock?: ReturnType<typeof frozenClock>
  } = {},
) {
  const keys = opts.keys ?? memoryKeys()
  const clock = opts.clock ?? frozenClock()
  const settings = memorySettings()
  const r = await openKeyRing({
    configured: opts.alg,
    secretKey: undefined,
    settings,
    keys,
    clock,
    accessTtlMs: TTL,
  })
  const admin = await openKeyAdmin({
    configured: opts.alg,
    secretKey: undefined,
    settings,
    keys,
    clock,
    accessTtlMs: TTL,
    activationDelayMs: DELAY,
  })
  return { ring: r, admin, keys, clock, settings }
}

describe('resolveAlgorithm', () => {
  it('takes JWT_ALGORITHM when it is set, whatever else is there', async () => {
    const settings = memorySettings({ jwt_hs256_secret: 'x'.repeat(64) })
    expect(await resolveAlgorithm('ES256', 'k'.repeat(32), settings)).toBe('ES256')
    expect(await resolveAlgorithm('RS256', undefined, settings)).toBe('RS256')
    expect(await resolveAlgorithm('HS256', undefined, memorySettings())).toBe('HS256')
  })

  it('keeps HS256 with SECRET_KEY (seed compatibility)', async () => {
    expect(await resolveAlgorithm(undefined, 'k'.repeat(32), memorySettings())).toBe('HS256')
  })

  it('keeps HS256 on an install that already generated an HS256 secret (its tokens stay valid)', async () => {
    expect(await resolveAlgorithm(undefined, undefined, memorySettings({ jwt_hs256_secret: 'ab' }))).toBe(
      'HS256',
    )
  })

  it('gives a fresh install ES256', async () => {
    expect(await resolveAlgorithm(undefined, undefined, memorySettings())).toBe('ES256')
  })
})

describe('jwkThumbprint', () => {
  it('matches the example of RFC 7638 §3.1', () => {
    const jwk = {
      kty: 'RSA',
      n: '0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw',
      e: 'AQAB',
      alg: 'RS256',
      kid: '2011-04-29',
    }
    expect(jwkThumbprint(jwk)).toBe('NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs')
  })

  it('refuses a key type it does not know', () => {
    expect(() => jwkThumbprint({ kty: 'oct', k: 'c2VjcmV0' })).toThrow()
  })
})

describe('generateSigningKey', () => {
  it.each([
    ['ES256', 'EC', { crv: 'P-256' }],
    ['EdDSA', 'OKP', { crv: 'Ed25519' }],
    ['RS256', 'RSA', { e: 'AQAB' }],
  ] as const)(
    'makes a %s key named by its thumbprint, publishing only public members',
    async (alg, kty, extra) => {
      const key = await generateSigningKey(alg, 1234)
      const jwk = JSON.parse(key.public_jwk)
      expect(jwk).toMatchObject({ kty, kid: key.kid, alg, use: 'sig', ...extra })
      for (const secret of ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k']) expect(jwk).not.toHaveProperty(secret)
      expect(key.kid).toBe(jwkThumbprint(jwk))
      expect(key).toMatchObject({ alg, created_at: 1234, retired_at: null })
      expect(key.private_key).toMatch(/^-----BEGIN PRIVATE KEY-----/)
      if (alg === 'RS256') {
        expect(createPublicKey({ key: jwk, format: 'jwk' }).asymmetricKeyDetails?.modulusLength).toBe(2048)
      }
    },
  )

  it('never makes the same key twice', async () => {
    const a = await generateSigningKey('ES256', 0)
    const b = await generateSigningKey('ES256', 0)
    expect(a.kid).not.toBe(b.kid)
  })
})

const kids = (jwks: { kid: string }[]) => jwks.map((k) => k.kid)

describe('the key ring', () => {
  it('with HS256 holds the secret, generated once and kept in the settings, and publishes only the RS256 key', async () => {
    const { ring: r, settings, keys } = await ring({ alg: 'HS256' })
    expect(r.algorithm).toBe('HS256')
    expect(r.secret).toMatch(/^[0-9a-f]{64}$/)
    expect(settings.values.get('jwt_hs256_secret')).toBe(r.secret)
    // No primary chain: the secret signs access tokens. The RS256 chain signs ID tokens.
    expect(r.snapshot()).toBeUndefined()
    expect(keys.rows).toEqual([expect.objectContaining({ alg: 'RS256', chain: 'rs256', retired_at: null })])
    expect(r.snapshotOf('rs256')?.current.kid).toBe(keys.rows[0]?.kid)
    expect(r.jwks()).toEqual([JSON.parse(keys.rows[0]?.public_jwk ?? '')])
    expect(JSON.stringify(r.jwks())).not.toContain(r.secret ?? '-')
  })

  it('with SECRET_KEY uses it and stores nothing', async () => {
    const settings = memorySettings()
    const r = await openKeyRing({
      configured: undefined,
      secretKey: 's'.repeat(40),
      settings,
      keys: memoryKeys(),
      clock: frozenClock(),
      accessTtlMs: TTL,
    })
    expect(r).toMatchObject({ algorithm: 'HS256', secret: 's'.repeat(40) })
    expect(settings.values.size).toBe(0)
  })

  it('on a fresh install makes one ES256 key and one RS256 key, and a second process reuses them', async () => {
    const keys = memoryKeys()
    const first = await ring({ keys })
    const second = await ring({ keys })
    expect(first.ring.algorithm).toBe('ES256')
    expect(keys.rows.map((r) => [r.chain, r.alg])).toEqual([
      ['primary', 'ES256'],
      ['rs256', 'RS256'],
    ])
    const [es, rs] = keys.rows
    for (const r of [first.ring, second.ring]) {
      expect(r.snapshot()?.current.kid).toBe(es?.kid)
      expect(r.snapshotOf('primary')?.current.kid).toBe(es?.kid)
      expect(r.snapshotOf('rs256')?.current.kid).toBe(rs?.kid)
      // Each chain's snapshot holds its own keys only.
      expect([...(r.snapshot()?.keys.keys() ?? [])]).toEqual([es?.kid])
    }
    // The current keys, the deployment's first.
    expect(first.ring.jwks()).toEqual([es, rs].map((k) => JSON.parse(k?.public_jwk ?? '')))
  })

  it('after a rotation publishes the next keys at once, signs with them after the delay, then drops the old ones', async () => {
    const { ring: r, admin, clock } = await ring()
    const old = r.snapshot()?.current.kid
    const oldRs = r.snapshotOf('rs256')?.current.kid
    const { key: next, previous, rs256 } = await admin.rotate()
    expect(next).toMatchObject({ state: 'next', activatesAt: new Date(clock.now() + DELAY).toISOString() })
    expect(previous).toMatchObject({ kid: old, state: 'current', retiresAt: next.activatesAt })
    // The RS256 chain rotates with it, on the same schedule.
    expect(rs256?.key).toMatchObject({
      alg: 'RS256',
      chain: 'rs256',
      state: 'next',
      activatesAt: next.activatesAt,
    })
    expect(rs256?.previous).toMatchObject({ kid: oldRs, state: 'current', retiresAt: next.activatesAt })
    const nextRs = rs256?.key.kid
    await r.reload()
    // Published and verifying, not signing: every process and cache gets it before its first token.
    expect(r.snapshot()?.current.kid).toBe(old)
    expect(r.snapshotOf('rs256')?.current.kid).toBe(oldRs)
    expect(kids(r.jwks())).toEqual([old, oldRs, next.kid, nextRs])
    const version = r.snapshot()?.version
    clock.advance(DELAY - 1)
    expect(r.snapshot()?.current.kid).toBe(old)
    // The clock alone switches it, in every process at once: no read, no signal needed.
    clock.advance(1)
    expect(r.snapshot()?.current.kid).toBe(next.kid)
    expect(r.snapshotOf('rs256')?.current.kid).toBe(nextRs)
    expect(r.snapshot()?.version).toBe((version ?? 0) + 1)
    expect(kids(r.jwks())).toEqual([next.kid, nextRs, old, oldRs])
    const primary = async () =>
      (await admin.list()).filter((k) => k.chain === 'primary').map((k) => [k.kid, k.state])
    expect(await primary()).toEqual([
      [next.kid, 'current'],
      [old, 'retired'],
    ])

    clock.advance(TTL + RETIREMENT_SLACK_MS - 1)
    expect(kids(r.jwks())).toEqual([next.kid, nextRs, old, oldRs])
    clock.advance(1)
    expect(kids(r.jwks())).toEqual([next.kid, nextRs])
    expect(await primary()).toEqual([
      [next.kid, 'current'],
      [old, 'expired'],
    ])
  })

  it('rotating twice within the delay: each key signs in its turn, never two at once', async () => {
    const { ring: r, admin, clock } = await ring()
    const first = r.snapshot()?.current.kid
    const { key: a } = await admin.rotate()
    clock.advance(10_000)
    const { key: b } = await admin.rotate()
    await r.reload()
    expect(kids(r.jwks().filter((k) => k.alg === 'ES256'))).toEqual([first, a.kid, b.kid])
    clock.advance(DELAY - 10_000)
    expect(r.snapshot()?.current.kid).toBe(a.kid)
    clock.advance(10_000)
    expect(r.snapshot()?.current.kid).toBe(b.kid)
  })

  it('rotate --now signs with the new key at once and stops trusting every older key at once', async () => {
    const { ring: r, admin } = await ring()
    const old = r.snapshot()?.current.kid
    const pending = (await admin.rotate()).key
    const { key, revoked } = await admin.rotate({ now: true })
    expect(key.state).toBe('current')
    expect(revoked.map((k) => [k.kid, k.state]).sort()).toEqual(
      [
        [old, 'revoked'],
        [pending.kid, 'revoked'],
      ].sort(),
    )
    await r.reload()
    expect(r.snapshot()?.current.kid).toBe(key.kid)
    // The RS256 chain too: only the keys made by this rotation still verify.
    const rs = r.snapshotOf('rs256')?.current.kid
    expect(kids(r.jwks())).toEqual([key.kid, rs])
    expect([...(r.snapshot()?.keys.keys() ?? [])]).toEqual([key.kid])
    expect([...(r.snapshotOf('rs256')?.keys.keys() ?? [])]).toEqual([rs])
  })

  it('keeps its snapshot (and version) when nothing changed, and changes it when something did', async () => {
    const { ring: r, admin } = await ring()
    const before = r.snapshot()
    await r.reload()
    expect(r.snapshot()).toBe(before)
    await admin.rotate({ now: true })
    await r.reload()
    expect(r.snapshot()?.version).toBe((before?.version ?? 0) + 1)
  })

  it('switching JWT_ALGORITHM retires the old key like a rotation', async () => {
    const keys = memoryKeys()
    const clock = frozenClock()
    const es = await ring({ keys, clock })
    const ed = await ring({ keys, clock, alg: 'EdDSA' })
    expect(ed.ring.snapshot()?.current.alg).toBe('EdDSA')
    expect(ed.ring.jwks().map((k) => k.alg)).toEqual(['EdDSA', 'RS256', 'ES256'])
    expect(keys.rows.find((r) => r.alg === 'ES256')?.retired_at).toBe(clock.now())
    expect(es.ring.snapshot()?.current.alg).toBe('ES256')
    // The RS256 chain does not follow JWT_ALGORITHM: the same key serves both.
    expect(ed.ring.snapshotOf('rs256')?.current.kid).toBe(es.ring.snapshotOf('rs256')?.current.kid)
    expect(keys.rows.filter((r) => r.chain === 'rs256')).toHaveLength(1)
  })

  it('says when it made the current key (to signal the other processes), and only then', async () => {
    const keys = memoryKeys()
    const open = async (configured: AsymmetricAlgorithm) => {
      let made = 0
      await openKeyRing({
        configured,
        secretKey: undefined,
        settings: memorySettings(),
        keys,
        clock: frozenClock(),
        accessTtlMs: TTL,
        onKeyMade: () => made++,
      })
      return made
    }
    expect(await open('ES256')).toBe(1) // a fresh database: this process made the keys (told once)
    expect(await open('ES256')).toBe(0) // the key was there
    expect(await open('EdDSA')).toBe(1) // JWT_ALGORITHM changed: a new current key
  })

  it('reloads at most once a second when tokens name unknown kids', async () => {
    const { ring: r, keys } = await ring()
    const before = keys.reads
    for (let i = 0; i < 100; i++) r.reloadSoon()
    // A hundred unknown kids cost one read; reload() waits for a read that starts after its call
    // (it may have been asked because of a change the read under way started too early to see).
    await r.reload()
    expect(keys.reads - before).toBe(2)
    r.reloadSoon()
    await r.reload()
    expect(keys.reads - before).toBe(3)
  })

  it('re-reads the keys on its own, every reloadMs', async () => {
    const keys = memoryKeys()
    const r = await openKeyRing({
      configured: 'ES256',
      secretKey: undefined,
      settings: memorySettings(),
      keys,
      clock: frozenClock(),
      accessTtlMs: TTL,
      reloadMs: 20,
    })
    const before = keys.reads
    vi.useFakeTimers()
    try {
      r.start()
      await vi.advanceTimersByTimeAsync(100)
      expect(keys.reads - before).toBe(5)
      r.stop()
      await vi.advanceTimersByTimeAsync(100)
      expect(keys.reads - before).toBe(5)
    } finally {
      vi.useRealTimers()
    }
  })

  it('reports a failed reload and keeps the keys it has', async () => {
    const keys = memoryKeys()
    const errors: unknown[] = []
    const r = await openKeyRing({
      configured: 'ES256',
      secretKey: undefined,
      settings: memorySettings(),
      keys,
      clock: frozenClock(),
      accessTtlMs: TTL,
      onError: (err) => errors.push(err),
    })
    const before = r.snapshot()
    keys.listKeys = () => Promise.reject(new Error('database is away'))
    r.reloadSoon()
    await vi.waitFor(() => expect(errors).toHaveLength(1), { interval: 1 })
    expect(r.snapshot()).toBe(before)
  })
})

describe('key administration', () => {
  it('with HS256 rotates the RS256 chain only: the secret is no key pair', async () => {
    const keys = memoryKeys()
    const admin = await openKeyAdmin({
      configured: undefined,
      secretKey: 'k'.repeat(32),
      settings: memorySettings(),
      keys,
      clock: frozenClock(),
      accessTtlMs: TTL,
      activationDelayMs: DELAY,
    })
    expect(admin.algorithm).toBe('HS256')
    const rotation = await admin.rotate()
    expect(rotation.key).toMatchObject({ alg: 'RS256', chain: 'rs256', state: 'current' })
    expect(rotation.rs256).toBeUndefined()
    expect(keys.rows.map((r) => r.chain)).toEqual(['rs256'])
    expect(JSON.stringify(keys.rows)).not.toContain('k'.repeat(32))
  })

  it('lists keys newest first, both chains, without private material', async () => {
    const { admin } = await ring({ alg: 'RS256' })
    await admin.rotate()
    const list = await admin.list()
    expect(list.map((k) => [k.chain, k.state])).toEqual([
      ['rs256', 'next'],
      ['primary', 'next'],
      ['rs256', 'current'],
      ['primary', 'current'],
    ])
    expect(JSON.stringify(list)).not.toMatch(/PRIVATE|"d"/)
  })
})
