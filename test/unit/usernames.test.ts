// canonicalUsername: NFKC + case folding, and what is refused.
import { describe, expect, it } from 'vitest'
import { canonicalUsername, USERNAME_MAX_LENGTH } from '../../src/domain/usernames.js'

const canon = (s: string) => {
  const r = canonicalUsername(s)
  return r.ok ? r.canonical : `!${r.reason}`
}

describe('canonicalUsername', () => {
  it.each([
    ['testuser', 'testuser'],
    ['TestUser', 'testuser'],
    ['ＡＬＩＣＥ', 'alice'], // fullwidth letters (NFKC)
    ['ﬁnn', 'finn'], // ligature (NFKC)
    ['Straße', 'strasse'], // ß folds to ss
    ['STRASSE', 'strasse'],
    ['ΟΔΥΣΣΕΥΣ', canon('οδυσσευς')], // final sigma folds like sigma
    ['e\u0301', 'é'], // combining accent composes
    ['user.name-1_2@example.org', 'user.name-1_2@example.org'],
  ])('%s -> %s', (raw, expected) => {
    expect(canon(raw)).toBe(expected)
  })

  it('maps case variants and compatibility forms to one name', () => {
    const forms = ['Alice', 'ALICE', 'alice', 'Ａｌｉｃｅ']
    expect(new Set(forms.map(canon)).size).toBe(1)
  })

  it.each([
    ['zero width space', 'ali\u200Bce'],
    ['zero width joiner', 'ali\u200Dce'],
    ['right-to-left override', '\u202Eecila'],
    ['byte order mark', '\uFEFFalice'],
    ['soft hyphen', 'ali\u00ADce'],
    ['hangul filler', 'alice\u3164'],
    ['variation selector', 'alice\uFE0F'],
    ['control character', 'alice\u0007'],
    ['newline', 'alice\n'],
    ['space', 'alice smith'],
    ['no-break space', 'alice\u00A0smith'],
    ['ideographic space', 'alice\u3000smith'],
    ['private use', 'alice\uE000'],
    ['empty', ''],
    ['too long', 'a'.repeat(USERNAME_MAX_LENGTH + 1)],
  ])('refuses %s', (_what, raw) => {
    expect(canonicalUsername(raw).ok).toBe(false)
  })

  it('accepts the maximum length, counted in code points', () => {
    expect(canonicalUsername('a'.repeat(USERNAME_MAX_LENGTH)).ok).toBe(true)
    expect(canonicalUsername('😀'.repeat(USERNAME_MAX_LENGTH)).ok).toBe(true)
  })
})
