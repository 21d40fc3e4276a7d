// One canonical form per username, for uniqueness and lookup; the display form is kept as typed.

export const USERNAME_MAX_LENGTH = 64

// Control, format (zero-width, bidi overrides, BOM), private-use, unassigned and surrogate code
// points, line/paragraph separators, all whitespace, and every default-ignorable code point
// (Hangul fillers, combining grapheme joiner, variation selectors...): what cannot be seen.
// After RFC 8265 (PRECIS UsernameCaseMapped) and Unicode TR 36 on spoofing.
const FORBIDDEN =
  /[\p{Cc}\p{Cf}\p{Co}\p{Cn}\p{Cs}\p{Zl}\p{Zp}\p{White_Space}\p{Default_Ignorable_Code_Point}]/u

export type CanonicalResult = { ok: true; canonical: string } | { ok: false; reason: string }

/**
 * NFKC, then full case folding (upper then lower maps ß to ss and final sigma to sigma, which a
 * single toLowerCase does not), then NFKC again because case mapping can denormalise.
 */
export function canonicalUsername(raw: string): CanonicalResult {
  if (FORBIDDEN.test(raw)) {
    return {
      ok: false,
      reason: 'Username must not contain spaces, control, invisible or direction characters',
    }
  }
  const canonical = raw.normalize('NFKC').toUpperCase().toLowerCase().normalize('NFKC')
  // NFKC can map a visible character to a forbidden one (U+2000 EN QUAD to a space, say).
  if (FORBIDDEN.test(canonical)) {
    return {
      ok: false,
      reason: 'Username must not contain spaces, control, invisible or direction characters',
    }
  }
  const length = [...canonical].length
  if (length < 1) return { ok: false, reason: 'Username must not be empty' }
  if (length > USERNAME_MAX_LENGTH) {
    return { ok: false, reason: `Username must have at most ${USERNAME_MAX_LENGTH} characters` }
  }
  return { ok: true, canonical }
}
