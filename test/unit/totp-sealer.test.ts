// The seal on TOTP secrets at rest (domain/mfa.ts): opened only with a key of MFA_ENCRYPTION_KEY,
// only on the row of the user it was sealed for, and still after a new key is put first.
import { describe, expect, it } from 'vitest'
import { loadConfig } from '../../src/config.js'
import { createTotpSealer } from '../../src/domain/mfa.js'
import { newTotpSecret } from '../../src/domain/totp.js'

const OLD = 'an-old-mfa-encryption-key-of-32-bytes-or-more'
const NEW = 'a-new-mfa-encryption-key-of-32-bytes-or-more'

describe('the TOTP secret seal', () => {
  it('opens for its own user only, and never holds the secret in the clear', () => {
    const sealer = createTotpSealer([OLD])
    const secret = newTotpSecret()
    const sealed = sealer?.seal(7, secret) ?? ''
    expect(sealed).not.toContain(secret)
    expect(sealer?.open(7, sealed)).toBe(secret)
    // Copied onto another user's row: the user id is authenticated data.
    expect(sealer?.open(8, sealed)).toBeUndefined()
    // Altered: GCM's tag refuses it.
    const flipped = `${sealed.slice(0, -2)}${sealed.at(-2) === 'A' ? 'B' : 'A'}${sealed.at(-1)}`
    expect(sealer?.open(7, flipped)).toBeUndefined()
  })

  it('rotates: the first key seals, every listed key opens, an unlisted key opens nothing', () => {
    const secret = newTotpSecret()
    const before = createTotpSealer([OLD])?.seal(1, secret) ?? ''
    const rotated = createTotpSealer([NEW, OLD])
    expect(rotated?.open(1, before)).toBe(secret)
    const after = rotated?.seal(1, secret) ?? ''
    expect(after.split('.')[0]).not.toBe(before.split('.')[0])
    expect(createTotpSealer([NEW])?.open(1, before)).toBeUndefined()
    expect(createTotpSealer([OLD])?.open(1, after)).toBeUndefined()
  })

  it('is absent without a key, and MFA_ENCRYPTION_KEY refuses a short one', () => {
    expect(createTotpSealer([])).toBeUndefined()
    expect(loadConfig({}).mfaEncryptionKeys).toEqual([])
    expect(loadConfig({ MFA_ENCRYPTION_KEY: `${NEW}, ${OLD}` }).mfaEncryptionKeys).toEqual([NEW, OLD])
    expect(() => loadConfig({ MFA_ENCRYPTION_KEY: 'short' })).toThrow(
      /MFA_ENCRYPTION_KEY: each key must be at least 32 bytes/,
    )
  })
})
