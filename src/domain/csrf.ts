// CSRF tokens for AuthGate's own forms (OWASP CSRF Prevention Cheat Sheet, "Signed Double-Submit
// Cookie"; OWASP ASVS 5.0 3.5.1). A browser first gets a random pre-session value in an HttpOnly
// cookie; every form carries a token that is an HMAC of that value under a secret kept in the
// database. A forged cross-site form cannot carry a valid token: the attacker can neither read
// the victim's cookie nor compute the HMAC without the secret; a cookie the attacker tosses in
// (from a sibling subdomain) comes with no token they can compute either, and behind https the
// `__Host-` prefix stops the tossing. Login CSRF (signing the victim in as the attacker) is what
// this stops on the login page, before any session exists.
import { createHmac } from 'node:crypto'
import { constantTimeEqual } from '../lib/crypto.js'
import { randomId } from '../lib/random.js'

export interface CsrfTokens {
  /** A new pre-session value for the cookie: 256 random bits. */
  newBinding(): string
  /** Whether a cookie's value has the shape newBinding() gives (else a new one is set). */
  isBinding(value: string | undefined): value is string
  /**
   * A token for a form, bound to the cookie's value. Masked with a fresh nonce each time, so the
   * page never shows the same secret-derived bytes twice (BREACH, against compressed responses).
   */
  tokenFor(binding: string): string
  /** Whether `token` was made by tokenFor(binding), under this deployment's secret. */
  verify(binding: string | undefined, token: string | undefined): boolean
}

const BINDING = /^[A-Za-z0-9_-]{43}$/
const TOKEN = /^([A-Za-z0-9_-]{22})\.([A-Za-z0-9_-]{43})$/

const isBinding = (value: string | undefined): value is string => value !== undefined && BINDING.test(value)

export function createCsrfTokens(secret: string): CsrfTokens {
  // A purpose label keeps this HMAC apart from any other made with the secret; '!' is not in
  // base64url's alphabet, so the binding and the nonce cannot be shifted across it.
  const mac = (binding: string, nonce: string) =>
    createHmac('sha256', secret).update(`authgate-csrf-v1!${binding}!${nonce}`).digest('base64url')
  return {
    newBinding: () => randomId(32),
    isBinding,
    tokenFor(binding) {
      const nonce = randomId(16)
      return `${nonce}.${mac(binding, nonce)}`
    },
    verify(binding, token) {
      if (token === undefined || !isBinding(binding)) return false
      const parts = TOKEN.exec(token)
      if (!parts) return false
      return constantTimeEqual(mac(binding, parts[1] as string), parts[2] as string)
    },
  }
}
