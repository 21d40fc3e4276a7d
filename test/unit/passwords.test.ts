// Password hashing (argon2id, legacy bcrypt) and the policy.
import * as argon2 from '@node-rs/argon2'
import bcrypt from 'bcrypt'
import { describe, expect, it } from 'vitest'
import {
  checkPasswordPolicy,
  createPasswordHasher,
  isCommonPassword,
  OWASP_ARGON2ID,
} from '../../src/domain/passwords.js'

const policy = { minLength: 8, maxLength: 128 }

describe('password policy', () => {
  it('accepts a long passphrase with no composition rules', () => {
    expect(checkPasswordPolicy('correct horse battery staple', policy, 'bob')).toEqual([])
    expect(checkPasswordPolicy('onlylowercaseletters', policy, 'bob')).toEqual([])
  })

  it('counts code points, not UTF-16 units', () => {
    expect(checkPasswordPolicy('😀😀😀😀😀😀😀', policy, 'bob')[0]?.type).toBe('string_too_short')
    expect(checkPasswordPolicy('😀😀😀😀😀😀😀😀', policy, 'bob')).toEqual([])
  })

  it('enforces the configured range', () => {
    expect(checkPasswordPolicy('short1!', policy, 'bob')).toMatchObject([
      { loc: ['body', 'password'], type: 'string_too_short' },
    ])
    expect(checkPasswordPolicy('x'.repeat(129), policy, 'bob')).toMatchObject([{ type: 'string_too_long' }])
    expect(checkPasswordPolicy('x'.repeat(129), { minLength: 8, maxLength: 256 }, 'bob')).toEqual([])
    expect(checkPasswordPolicy('abcdefghij', { minLength: 12, maxLength: 128 }, 'bob')[0]?.type).toBe(
      'string_too_short',
    )
  })

  it('refuses common passwords from the zxcvbn-ts list, in any case', () => {
    for (const p of ['password', '12345678', 'qwertyuiop', 'Password', 'PASSWORD1']) {
      expect(isCommonPassword(p), p).toBe(true)
    }
    expect(checkPasswordPolicy('iloveyou', policy, 'bob')).toMatchObject([{ type: 'password_too_common' }])
    expect(isCommonPassword('testpassword')).toBe(false)
  })

  it('refuses the username as password', () => {
    expect(checkPasswordPolicy('LongUserName', policy, 'longusername')).toMatchObject([
      { type: 'password_matches_username' },
    ])
  })
})

describe('password hasher', () => {
  const hasher = createPasswordHasher()

  it('makes argon2id PHC strings with at least the OWASP parameters', async () => {
    const hash = await hasher.hash('correct horse battery staple')
    expect(hash).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$/)
    const p = argon2.parseOptions(hash)
    expect(p.memoryCost).toBeGreaterThanOrEqual(OWASP_ARGON2ID.memoryCost)
    expect(p.timeCost).toBeGreaterThanOrEqual(2)
    expect(hasher.needsRehash(hash)).toBe(false)
  })

  it('verifies exactly: no trimming, no truncation, no normalisation', async () => {
    const pw = ` pass word ${'x'.repeat(200)} `
    const hash = await hasher.hash(pw)
    expect(await hasher.verify(hash, pw)).toBe(true)
    expect(await hasher.verify(hash, pw.trim())).toBe(false)
    expect(await hasher.verify(hash, pw.slice(0, 72))).toBe(false)
    const composed = await hasher.hash('caf\u00e9 au lait')
    expect(await hasher.verify(composed, 'cafe\u0301 au lait')).toBe(false)
  })

  it('verifies the seed bcrypt spellings ($2a$, $2b$, $2y$) and asks for a rehash', async () => {
    const b = await bcrypt.hash('testpassword', 4)
    for (const prefix of ['$2a$', '$2b$', '$2y$']) {
      const stored = prefix + b.slice(4)
      expect(await hasher.verify(stored, 'testpassword'), prefix).toBe(true)
      expect(await hasher.verify(stored, 'testpasswore'), prefix).toBe(false)
      expect(hasher.needsRehash(stored)).toBe(true)
    }
  })

  it('checks a bcrypt hash against the 72 bytes passlib hashed, and never through a NUL', async () => {
    const long = 'ä'.repeat(50) // 100 bytes; passlib hashed the first 72
    const stored = await bcrypt.hash(Buffer.from(long).subarray(0, 72), 4)
    expect(await hasher.verify(stored, long)).toBe(true)
    expect(await hasher.verify(stored, 'ä'.repeat(35))).toBe(false) // 70 bytes
    expect(hasher.needsRehash(stored)).toBe(true) // so the full password is hashed exactly next
    const short = await bcrypt.hash('abcdefgh', 4)
    expect(await hasher.verify(short, 'abcdefgh\0tail')).toBe(false)
  })

  it('asks to rehash weaker argon2 parameters and never matches malformed hashes', async () => {
    const weak = await argon2.hash('pw', {
      algorithm: argon2.Algorithm.Argon2id,
      memoryCost: 1024,
      timeCost: 1,
    })
    expect(hasher.needsRehash(weak)).toBe(true)
    expect(await hasher.verify(weak, 'pw')).toBe(true)
    for (const bad of ['', 'plaintext', '$argon2id$garbage', '$2b$12$short', '$1$md5$crypt']) {
      expect(await hasher.verify(bad, 'pw'), bad).toBe(false)
    }
  })

  it('hashes off the event loop: the loop turns and a timer fires while hashes run', async () => {
    let ticks = 0
    const timer = setInterval(() => ticks++, 1)
    let done = 0
    const hashes = Array.from({ length: 4 }, () =>
      hasher.hash('correct horse battery staple').then(() => done++),
    )
    try {
      // A hash that blocked would be over before the loop could turn once; each of these takes
      // tens of milliseconds on another thread, so none is done at the next turn.
      await new Promise((resolve) => setImmediate(resolve))
      expect(done).toBe(0)
      await Promise.all(hashes)
      expect(done).toBe(4)
      // And a 1 ms timer fired meanwhile (blocked, it could not have).
      expect(ticks).toBeGreaterThan(0)
    } finally {
      clearInterval(timer)
    }
  })
})
