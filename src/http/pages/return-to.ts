// Where a page may send the browser once it is done: only a path on this server. Anything else
// (another host, a scheme, a protocol-relative or backslash trick) falls back to the default, so
// the login page is never an open redirect (OWASP Unvalidated Redirects and Forwards Cheat Sheet:
// allow only local paths; see docs/oidc.md, "Pages").

const MAX_RETURN_TO = 2048
// A base no real request has: a value that resolves away from it went to another origin.
const BASE = 'https://authgate.invalid'

/**
 * The path `value` names if it is a relative path on this server, normalised as a browser
 * would read it; undefined otherwise. It must start with one `/` followed by something other
 * than `/` or `\` (`//host` and `/\host` are another host to a browser), and hold no backslash
 * and no control character (a browser drops tabs and newlines, so `/\t/host` is `//host`).
 */
export function safeReturnTo(value: string | undefined): string | undefined {
  if (value === undefined || value.length === 0 || value.length > MAX_RETURN_TO) return undefined
  if (value[0] !== '/' || value[1] === '/' || value.includes('\\')) return undefined
  // C0 controls, space and DEL: none belongs in a URL as sent, and browsers strip some of them.
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i)
    if (c <= 0x20 || c === 0x7f) return undefined
  }
  let url: URL
  try {
    url = new URL(value, BASE)
  } catch {
    return undefined
  }
  if (url.origin !== BASE) return undefined
  return `${url.pathname}${url.search}${url.hash}`
}
