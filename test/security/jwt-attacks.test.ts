// The JWT attack list (RFC 8725): every forged or malformed token gets 401 and no greeting; with
// HS256 (SECRET_KEY) and with ES256 key pairs named by kid.

import { sign as nodeSign } from 'node:crypto'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildTestApp, inspect, type TestApp } from '../helpers/app.js'
import { decodeJwt, decodeProtectedHeader, greet, logIn, pairOf, tokenFor } from '../helpers/http.js'
import {
  craft,
  ecKeys,
  es256,
  flipSignatureS,
  hmac,
  lowS,
  nowSeconds,
  P256_HALF_N,
  respellLastChar,
  rs256,
  rsaKeys,
  signatureS,
} from '../helpers/jwt.js'

const SECRET = 'an-operator-chosen-secret-of-more-than-32-bytes'
let t: TestApp
let valid: string
let userId: number
// A server standing in for an attacker's key URL: any fetch from the app would show up here.
let trap: Server
let trapHits = 0
let trapUrl: string

beforeAll(async () => {
  t = await buildTestApp({ SECRET_KEY: SECRET })
  valid = await tokenFor(t.app, 'victim')
  userId = decodeJwt<{ id: number }>(valid).id
  trap = createServer((_req, res) => {
    trapHits++
    res.end('{}')
  })
  await new Promise<void>((resolve) => trap.listen(0, '127.0.0.1', resolve))
  trapUrl = `http://127.0.0.1:${(trap.address() as AddressInfo).port}/jwks.json`
})
afterAll(async () => {
  await t.close()
  await new Promise((resolve) => trap.close(resolve))
})

const claims = () => ({ sub: 'victim', id: userId, iat: nowSeconds(), exp: nowSeconds() + 600 })

async function expectRejected(token: string) {
  const res = await greet(t.app, token)
  expect(res.statusCode).toBe(401)
  expect(res.json()).toEqual({ detail: 'Could not validate credentials', code: 'invalid_token' })
  expect(res.body).not.toContain('Hello')
}

describe('JWT verification', () => {
  it('accepts a correctly signed token (the control case)', async () => {
    const res = await greet(t.app, craft({ alg: 'HS256', typ: 'JWT' }, claims(), hmac('sha256', SECRET)))
    expect(res.statusCode).toBe(200)
    expect(res.json().message).toBe(`Hello, victim with ID: ${userId}!`)
  })

  it.each(['none', 'None', 'NONE', 'nOnE'])('rejects alg=%s, with or without a signature', async (alg) => {
    await expectRejected(craft({ alg, typ: 'JWT' }, claims()))
    await expectRejected(craft({ alg, typ: 'JWT' }, claims(), hmac('sha256', SECRET)))
  })

  it.each([
    ['HS384', 'sha384'],
    ['HS512', 'sha512'],
  ] as const)('rejects a switch to %s, even signed with the right secret', async (alg, hash) => {
    await expectRejected(craft({ alg, typ: 'JWT' }, claims(), hmac(hash, SECRET)))
  })

  it('rejects RS256 with an attacker key, and HS256 keyed with a public key (key confusion)', async () => {
    const { privateKey, publicKey } = rsaKeys()
    await expectRejected(craft({ alg: 'RS256', typ: 'JWT' }, claims(), rs256(privateKey)))
    const pem = publicKey.export({ type: 'spki', format: 'pem' })
    await expectRejected(craft({ alg: 'HS256', typ: 'JWT' }, claims(), hmac('sha256', pem)))
  })

  it('ignores an embedded jwk, and never fetches jku or x5u', async () => {
    const { privateKey, publicKey } = rsaKeys()
    const jwk = publicKey.export({ format: 'jwk' })
    await expectRejected(craft({ alg: 'RS256', jwk }, claims(), rs256(privateKey)))
    await expectRejected(craft({ alg: 'RS256', jku: trapUrl }, claims(), rs256(privateKey)))
    await expectRejected(craft({ alg: 'RS256', x5u: trapUrl }, claims(), rs256(privateKey)))
    await expectRejected(craft({ alg: 'HS256', jku: trapUrl }, claims(), hmac('sha256', 'attacker-secret')))
    expect(trapHits).toBe(0)
  })

  it('ignores kid tricks: a kid never selects the key', async () => {
    for (const kid of ['../../../../dev/null', "' OR 1=1 --", '', 'http://127.0.0.1/key']) {
      await expectRejected(craft({ alg: 'HS256', kid }, claims(), hmac('sha256', '')))
      await expectRejected(craft({ alg: 'HS256', kid }, claims(), hmac('sha256', 'attacker-secret')))
    }
  })

  it('rejects an unknown crit header, even when correctly signed', async () => {
    await expectRejected(
      craft({ alg: 'HS256', crit: ['exp-policy'], 'exp-policy': 1 }, claims(), hmac('sha256', SECRET)),
    )
    await expectRejected(craft({ alg: 'HS256', crit: [] }, claims(), hmac('sha256', SECRET)))
  })

  it('requires a numeric exp, in the future', async () => {
    const { exp: _exp, ...noExp } = claims()
    await expectRejected(craft({ alg: 'HS256' }, noExp, hmac('sha256', SECRET)))
    await expectRejected(
      craft({ alg: 'HS256' }, { ...claims(), exp: String(nowSeconds() + 600) }, hmac('sha256', SECRET)),
    )
    await expectRejected(craft({ alg: 'HS256' }, { ...claims(), exp: null }, hmac('sha256', SECRET)))
    await expectRejected(
      craft({ alg: 'HS256' }, { ...claims(), exp: nowSeconds() - 1 }, hmac('sha256', SECRET)),
    )
  })

  it('honours nbf', async () => {
    await expectRejected(
      craft({ alg: 'HS256' }, { ...claims(), nbf: nowSeconds() + 300 }, hmac('sha256', SECRET)),
    )
    const res = await greet(
      t.app,
      craft({ alg: 'HS256' }, { ...claims(), nbf: nowSeconds() - 5 }, hmac('sha256', SECRET)),
    )
    expect(res.statusCode).toBe(200)
  })

  it('requires sub as a string and id as an integer, like the seed', async () => {
    const sign = hmac('sha256', SECRET)
    const { sub: _sub, ...noSub } = claims()
    const { id: _id, ...noId } = claims()
    await expectRejected(craft({ alg: 'HS256' }, noSub, sign))
    await expectRejected(craft({ alg: 'HS256' }, noId, sign))
    await expectRejected(craft({ alg: 'HS256' }, { ...claims(), id: String(userId) }, sign))
    await expectRejected(craft({ alg: 'HS256' }, { ...claims(), id: 1.5 }, sign))
    await expectRejected(craft({ alg: 'HS256' }, { ...claims(), sub: 42 }, sign))
  })

  it('rejects a tampered payload, a stripped signature and another secret', async () => {
    const [h, , s] = valid.split('.')
    const forged = Buffer.from(JSON.stringify({ ...claims(), sub: 'admin', id: 1 })).toString('base64url')
    await expectRejected(`${h}.${forged}.${s}`)
    await expectRejected(`${valid.split('.').slice(0, 2).join('.')}.`)
    await expectRejected(
      craft({ alg: 'HS256' }, claims(), hmac('sha256', 'another-secret-of-at-least-32-bytes!!')),
    )
  })

  it('rejects a signature respelled with stray trailing bits (non-canonical base64url)', async () => {
    const token = craft({ alg: 'HS256', typ: 'JWT' }, claims(), hmac('sha256', SECRET))
    expect((await greet(t.app, token)).statusCode).toBe(200)
    // 32 bytes take 43 characters, the last of which carries 2 unused bits: 3 other spellings.
    const twins = respellLastChar(token)
    expect(twins).toHaveLength(3)
    for (const twin of twins) await expectRejected(twin)
    // Padding, + and / stay refused.
    await expectRejected(`${token}=`)
    await expectRejected(`${token}==`)
    // The same signature in standard base64 (+ and / for - and _), when it has either.
    const at = token.lastIndexOf('.') + 1
    const std = token.slice(0, at) + token.slice(at).replace(/-/g, '+').replace(/_/g, '/')
    if (std !== token) await expectRejected(std)
  })

  it('rejects b64 in the header (RFC 7797 is not supported), with or without crit', async () => {
    const sign = hmac('sha256', SECRET)
    expect((await greet(t.app, craft({ alg: 'HS256', typ: 'JWT' }, claims(), sign))).statusCode).toBe(200)
    await expectRejected(craft({ alg: 'HS256', b64: false }, claims(), sign))
    await expectRejected(craft({ alg: 'HS256', b64: true }, claims(), sign))
    await expectRejected(craft({ alg: 'HS256', b64: false, crit: ['b64'] }, claims(), sign))
  })

  it('rejects an iat more than 60 s ahead; accepts one within the skew, and none (seed tokens)', async () => {
    const sign = hmac('sha256', SECRET)
    await expectRejected(craft({ alg: 'HS256' }, { ...claims(), iat: nowSeconds() + 3600 }, sign))
    await expectRejected(craft({ alg: 'HS256' }, { ...claims(), iat: nowSeconds() + 90 }, sign))
    await expectRejected(craft({ alg: 'HS256' }, { ...claims(), iat: String(nowSeconds()) }, sign))
    expect(
      (await greet(t.app, craft({ alg: 'HS256' }, { ...claims(), iat: nowSeconds() + 20 }, sign))).statusCode,
    ).toBe(200)
    const { iat: _iat, ...seedShaped } = claims()
    const res = await greet(t.app, craft({ alg: 'HS256', typ: 'JWT' }, seedShaped, sign))
    expect(res.statusCode).toBe(200)
    expect(res.json().message).toBe(`Hello, victim with ID: ${userId}!`)
  })

  it('rejects malformed tokens without a 500', async () => {
    for (const junk of [
      'a.b.c',
      '.....',
      'eyJhbGciOiJIUzI1NiJ9..',
      `${'x'.repeat(8000)}`,
      '%%%.%%%.%%%',
      '{}.{}.{}',
    ]) {
      await expectRejected(junk)
    }
  })
})

describe('JWT verification with ES256 key pairs', () => {
  const ISSUER = 'https://auth.example.com'
  let es: TestApp
  let ourKid: string
  let ourPrivateKey: string
  let ourPublicPem: string
  let ourJwk: Record<string, unknown>
  let esUserId: number

  beforeAll(async () => {
    es = await buildTestApp({ JWT_ALGORITHM: 'ES256', PUBLIC_URL: ISSUER })
    const token = await tokenFor(es.app, 'victim')
    ourKid = decodeProtectedHeader(token).kid as string
    esUserId = decodeJwt<{ id: number }>(token).id
    // Our own key, read from the database, so forgeries differ from a valid token in one thing only.
    const row = await inspect(es.dbUrl)
      .selectFrom('authgate_signing_keys')
      .select(['private_key', 'public_jwk'])
      .where('kid', '=', ourKid)
      .executeTakeFirstOrThrow()
    ourPrivateKey = row.private_key
    ourJwk = JSON.parse(row.public_jwk)
    const { createPublicKey } = await import('node:crypto')
    ourPublicPem = createPublicKey(ourPrivateKey).export({ type: 'spki', format: 'pem' }).toString()
  })
  afterAll(async () => {
    await es.close()
  })

  const esClaims = () => ({
    sub: 'victim',
    id: esUserId,
    iss: ISSUER,
    iat: nowSeconds(),
    exp: nowSeconds() + 600,
  })
  // Low-S, as AuthGate signs (its high-S twin is refused: see the case below).
  const ours = () => lowS(es256(ourPrivateKey))

  async function esRejected(token: string) {
    const res = await greet(es.app, token)
    expect(res.statusCode).toBe(401)
    expect(res.json()).toEqual({ detail: 'Could not validate credentials', code: 'invalid_token' })
    expect(res.body).not.toContain('Hello')
  }

  it('accepts a token signed with our current key and naming it (the control case)', async () => {
    const res = await greet(es.app, craft({ alg: 'ES256', typ: 'JWT', kid: ourKid }, esClaims(), ours()))
    expect(res.statusCode).toBe(200)
    expect(res.json().message).toBe(`Hello, victim with ID: ${esUserId}!`)
  })

  it('rejects a switch to HS256 keyed with our public key, as PEM or JWK (key confusion)', async () => {
    for (const secret of [ourPublicPem, ourPublicPem.trim(), JSON.stringify(ourJwk), String(ourJwk.x)]) {
      await esRejected(craft({ alg: 'HS256', typ: 'JWT', kid: ourKid }, esClaims(), hmac('sha256', secret)))
      await esRejected(craft({ alg: 'HS256', typ: 'JWT' }, esClaims(), hmac('sha256', secret)))
    }
  })

  it.each(['none', 'None', 'ES384', 'ES512', 'RS256', 'EdDSA', 'PS256'])(
    'rejects alg=%s under our kid',
    async (alg) => {
      await esRejected(craft({ alg, kid: ourKid }, esClaims()))
      await esRejected(craft({ alg, kid: ourKid }, esClaims(), ours()))
    },
  )

  it('rejects a token signed by another P-256 key, under our kid or its own', async () => {
    const { privateKey, publicKey } = ecKeys()
    await esRejected(craft({ alg: 'ES256', kid: ourKid }, esClaims(), es256(privateKey)))
    await esRejected(craft({ alg: 'ES256', kid: 'attacker-key' }, esClaims(), es256(privateKey)))
    const jwk = { ...publicKey.export({ format: 'jwk' }), kid: ourKid, alg: 'ES256' }
    await esRejected(craft({ alg: 'ES256', kid: ourKid, jwk }, esClaims(), es256(privateKey)))
    await esRejected(craft({ alg: 'ES256', jwk }, esClaims(), es256(privateKey)))
  })

  it('never fetches jku or x5u, and does not trust x5c', async () => {
    const { privateKey } = ecKeys()
    const before = trapHits
    await esRejected(craft({ alg: 'ES256', kid: ourKid, jku: trapUrl }, esClaims(), es256(privateKey)))
    await esRejected(craft({ alg: 'ES256', kid: 'from-jku', jku: trapUrl }, esClaims(), es256(privateKey)))
    await esRejected(craft({ alg: 'ES256', kid: 'from-x5u', x5u: trapUrl }, esClaims(), es256(privateKey)))
    await esRejected(craft({ alg: 'ES256', x5c: ['MIIB'] }, esClaims(), es256(privateKey)))
    expect(trapHits).toBe(before)
  })

  it('rejects an unknown kid, a kid pointing elsewhere, and a missing kid, even when the signature is ours', async () => {
    const before = trapHits
    for (const kid of [
      'unknown',
      '',
      trapUrl,
      '../../../../dev/null',
      "' OR 1=1 --",
      `${ourKid} `,
      ourKid.toUpperCase(),
    ]) {
      await esRejected(craft({ alg: 'ES256', kid }, esClaims(), ours()))
    }
    for (const kid of [1, null, [ourKid], { kid: ourKid }]) {
      await esRejected(craft({ alg: 'ES256', kid }, esClaims(), ours()))
    }
    await esRejected(craft({ alg: 'ES256', typ: 'JWT' }, esClaims(), ours()))
    expect(trapHits).toBe(before)
  })

  it('requires iss, and ours', async () => {
    const { iss: _iss, ...noIss } = esClaims()
    await esRejected(craft({ alg: 'ES256', kid: ourKid }, noIss, ours()))
    await esRejected(
      craft({ alg: 'ES256', kid: ourKid }, { ...esClaims(), iss: 'https://evil.example.com' }, ours()),
    )
    await esRejected(craft({ alg: 'ES256', kid: ourKid }, { ...esClaims(), iss: `${ISSUER}/` }, ours()))
    await esRejected(craft({ alg: 'ES256', kid: ourKid }, { ...esClaims(), iss: [ISSUER] }, ours()))
  })

  it('requires a numeric exp in the future and honours nbf, under our key', async () => {
    const { exp: _exp, ...noExp } = esClaims()
    await esRejected(craft({ alg: 'ES256', kid: ourKid }, noExp, ours()))
    await esRejected(craft({ alg: 'ES256', kid: ourKid }, { ...esClaims(), exp: nowSeconds() - 1 }, ours()))
    await esRejected(
      craft({ alg: 'ES256', kid: ourKid }, { ...esClaims(), exp: String(nowSeconds() + 60) }, ours()),
    )
    await esRejected(craft({ alg: 'ES256', kid: ourKid }, { ...esClaims(), nbf: nowSeconds() + 300 }, ours()))
    await esRejected(
      craft({ alg: 'ES256', kid: ourKid, crit: ['exp-policy'], 'exp-policy': 1 }, esClaims(), ours()),
    )
  })

  it('rejects a DER-encoded signature, the all-zero "psychic" signature, and a tampered payload', async () => {
    const der = (input: string) => nodeSign('sha256', Buffer.from(input), ourPrivateKey).toString('base64url')
    await esRejected(craft({ alg: 'ES256', kid: ourKid }, esClaims(), der))
    // CVE-2022-21449: r = s = 0 must never verify.
    await esRejected(
      craft({ alg: 'ES256', kid: ourKid }, esClaims(), () => Buffer.alloc(64).toString('base64url')),
    )
    const valid = craft({ alg: 'ES256', kid: ourKid }, esClaims(), ours())
    const [h, , s] = valid.split('.')
    const forged = Buffer.from(JSON.stringify({ ...esClaims(), sub: 'admin', id: 1 })).toString('base64url')
    await esRejected(`${h}.${forged}.${s}`)
    await esRejected(`${valid.split('.').slice(0, 2).join('.')}.`)
  })

  it('rejects the high-S twin (n - s) of a valid signature; accepts its low-S original', async () => {
    for (let i = 0; i < 4; i++) {
      const token = craft({ alg: 'ES256', kid: ourKid }, { ...esClaims(), n: i }, ours())
      const twin = flipSignatureS(token)
      const [low, high] = signatureS(token).compare(P256_HALF_N) <= 0 ? [token, twin] : [twin, token]
      expect((await greet(es.app, low)).statusCode).toBe(200)
      await esRejected(high)
    }
  })

  it('signs every token low-S, so none of its own is refused', async () => {
    // OpenSSL's s is high half the time: 16 tokens all low by chance is 1 in 65,536.
    for (let i = 0; i < 16; i++) {
      const token = (await pairOf(await logIn(es.app, 'victim'))).access_token
      expect(signatureS(token).compare(P256_HALF_N)).toBeLessThanOrEqual(0)
      expect((await greet(es.app, token)).statusCode).toBe(200)
    }
  })

  it('rejects a signature respelled with stray trailing bits (non-canonical base64url)', async () => {
    const token = craft({ alg: 'ES256', kid: ourKid }, esClaims(), ours())
    const low = signatureS(token).compare(P256_HALF_N) <= 0 ? token : flipSignatureS(token)
    expect((await greet(es.app, low)).statusCode).toBe(200)
    // 64 bytes take 86 characters, the last of which carries 4 unused bits: 15 other spellings.
    const twins = respellLastChar(low)
    expect(twins).toHaveLength(15)
    for (const twin of twins) await esRejected(twin)
  })

  it('rejects b64 and a future iat under our key', async () => {
    await esRejected(craft({ alg: 'ES256', kid: ourKid, b64: false }, esClaims(), ours()))
    await esRejected(
      craft({ alg: 'ES256', kid: ourKid }, { ...esClaims(), iat: nowSeconds() + 3600 }, ours()),
    )
  })

  it('does not accept HS256 at all, not even signed with the right SECRET_KEY-like secret', async () => {
    await esRejected(craft({ alg: 'HS256', typ: 'JWT' }, esClaims(), hmac('sha256', SECRET)))
  })
})

describe('JWT verification with EdDSA key pairs', () => {
  const ISSUER = 'https://auth.example.com'
  let ed: TestApp
  let kid: string
  let privateKey: string
  let edUserId: number

  beforeAll(async () => {
    ed = await buildTestApp({ JWT_ALGORITHM: 'EdDSA', PUBLIC_URL: ISSUER })
    const token = await tokenFor(ed.app, 'victim')
    kid = decodeProtectedHeader(token).kid as string
    edUserId = decodeJwt<{ id: number }>(token).id
    const row = await inspect(ed.dbUrl)
      .selectFrom('authgate_signing_keys')
      .select('private_key')
      .where('kid', '=', kid)
      .executeTakeFirstOrThrow()
    privateKey = row.private_key
  })
  afterAll(async () => {
    await ed.close()
  })

  const edClaims = () => ({
    sub: 'victim',
    id: edUserId,
    iss: ISSUER,
    iat: nowSeconds(),
    exp: nowSeconds() + 600,
  })
  const edSign = (input: string) => nodeSign(null, Buffer.from(input), privateKey).toString('base64url')

  it('rejects S + L, the other spelling of an Ed25519 signature (OpenSSL checks S < L, RFC 8032 §5.1.7)', async () => {
    const token = craft({ alg: 'EdDSA', kid }, edClaims(), edSign)
    expect((await greet(ed.app, token)).statusCode).toBe(200)
    const dot = token.lastIndexOf('.') + 1
    const sig = Buffer.from(token.slice(dot), 'base64url')
    // S is little-endian in the second half; L = 2^252 + 27742317777372353535851937790883648493.
    const L = (1n << 252n) + 27742317777372353535851937790883648493n
    const S = BigInt(`0x${Buffer.from(sig.subarray(32)).reverse().toString('hex')}`)
    Buffer.from((S + L).toString(16).padStart(64, '0'), 'hex')
      .reverse()
      .copy(sig, 32)
    const twin = token.slice(0, dot) + sig.toString('base64url')
    expect((await greet(ed.app, twin)).statusCode).toBe(401)
  })

  it('rejects a signature respelled with stray trailing bits', async () => {
    const token = craft({ alg: 'EdDSA', kid }, edClaims(), edSign)
    expect((await greet(ed.app, token)).statusCode).toBe(200)
    for (const twin of respellLastChar(token)) expect((await greet(ed.app, twin)).statusCode).toBe(401)
  })
})
