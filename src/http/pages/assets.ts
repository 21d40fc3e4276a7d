// The pages' static assets, our own (no CDN, no framework): a stylesheet, an icon and the login
// page's passkey script, each
// served from this server at a path that carries a hash of its content, so it may be cached for
// a year and a new version is a new URL.
import { createHash } from 'node:crypto'

const hashed = (name: string, content: string, extension: string) =>
  `/assets/${name}-${createHash('sha256').update(content).digest('hex').slice(0, 12)}.${extension}`

export const STYLESHEET = `/* AuthGate pages */
:root {
  color-scheme: light dark;
  --bg: #f5f6f8;
  --card: #ffffff;
  --text: #1b1f24;
  --muted: #4a5360;
  --border: #8a94a3;
  --accent: #1f5fbf;
  --accent-text: #ffffff;
  --error: #b3261e;
  --error-bg: #fdecea;
  --focus: #1f5fbf;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #111418;
    --card: #1b2027;
    --text: #e8eaed;
    --muted: #b4bcc7;
    --border: #7d8795;
    --accent: #8ab4f8;
    --accent-text: #0b1a33;
    --error: #f2b8b5;
    --error-bg: #3b1715;
    --focus: #8ab4f8;
  }
}
*, *::before, *::after { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; text-size-adjust: 100%; }
body {
  margin: 0;
  min-height: 100vh;
  background: var(--bg);
  color: var(--text);
  font: 1rem/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  overflow-wrap: anywhere;
}
a { color: var(--accent); }
a:focus-visible, button:focus-visible, input:focus-visible, main:focus-visible, .alert:focus {
  outline: 3px solid var(--focus);
  outline-offset: 2px;
}
main:focus:not(:focus-visible) { outline: none; }
.skip {
  position: absolute;
  left: 0.5rem;
  top: -4rem;
  padding: 0.75rem 1rem;
  background: var(--card);
  color: var(--text);
  border: 2px solid var(--focus);
  border-radius: 0.5rem;
  z-index: 1;
}
.skip:focus { top: 0.5rem; }
main {
  width: 100%;
  max-width: 28rem;
  margin: 0 auto;
  padding: 2rem 1rem 3rem;
}
.card {
  background: var(--card);
  border: 1px solid var(--border);
  border-radius: 0.75rem;
  padding: 1.5rem;
}
h1 { font-size: 1.5rem; line-height: 1.25; margin: 0 0 1rem; }
p { margin: 0 0 1rem; }
.brand { color: var(--muted); font-weight: 600; margin: 0 0 0.5rem; }
.field { margin: 0 0 1.25rem; }
label { display: block; font-weight: 600; margin: 0 0 0.25rem; }
.hint { display: block; color: var(--muted); font-size: 0.9375rem; margin: 0 0 0.25rem; }
input {
  display: block;
  width: 100%;
  min-height: 3rem;
  padding: 0.625rem 0.75rem;
  /* 16px or more, so iOS Safari does not zoom into the field. */
  font: inherit;
  font-size: max(1rem, 16px);
  color: var(--text);
  background: var(--card);
  border: 2px solid var(--border);
  border-radius: 0.5rem;
}
input[aria-invalid="true"] { border-color: var(--error); }
.field-error { display: block; color: var(--error); font-weight: 600; margin: 0.25rem 0 0; }
.alert {
  border: 2px solid var(--error);
  background: var(--error-bg);
  border-radius: 0.5rem;
  padding: 0.75rem 1rem;
  margin: 0 0 1.25rem;
}
.alert h2 { font-size: 1rem; margin: 0; }
.alert ul { margin: 0.5rem 0 0; padding-left: 1.25rem; }
.alert p { margin: 0.25rem 0 0; }
button {
  display: block;
  width: 100%;
  min-height: 3rem;
  padding: 0.75rem 1rem;
  font: inherit;
  font-weight: 600;
  color: var(--accent-text);
  background: var(--accent);
  border: 0;
  border-radius: 0.5rem;
  cursor: pointer;
}
.after { margin: 1.25rem 0 0; text-align: center; }
.after a { display: inline-block; padding: 0.5rem 0.25rem; }
/* The consent page: what is asked, then two choices of equal size, the second outlined. */
.scopes { margin: 0 0 1.25rem; padding-left: 1.25rem; }
.scopes li { margin: 0 0 0.25rem; }
.actions { display: grid; gap: 0.75rem; }
button.secondary { color: var(--accent); background: transparent; border: 2px solid var(--accent); }
/* The account page: sections, lists with an action each, the QR code and recovery codes. */
section { margin: 1.75rem 0 0; }
h2 { font-size: 1.15rem; margin: 0 0 0.75rem; }
.notice { background: var(--bg); border-left: 4px solid var(--accent); padding: 0.5rem 0.75rem; }
.items { list-style: none; margin: 0; padding: 0; }
.items li { display: flex; gap: 0.75rem; align-items: center; justify-content: space-between; padding: 0.5rem 0; border-bottom: 1px solid var(--border); }
.items li span { overflow-wrap: anywhere; }
.items form { flex: none; }
.items button { width: auto; }
.qr { margin: 0 auto 1rem; max-width: 14rem; background: #fff; padding: 0.5rem; }
.qr svg { display: block; width: 100%; height: auto; }
.secret, .codes code { font-size: 1.05rem; overflow-wrap: anywhere; }
.codes { columns: 2; padding-left: 1.25rem; }
`

export const STYLESHEET_PATH = hashed('authgate', STYLESHEET, 'css')

/**
 * The login page's one script: "Sign in with a passkey" (WebAuthn Level 3), and the passkeys a
 * browser offers in the username field's autofill (conditional mediation, §5.1.4.1). Loaded from
 * this server only (the CSP's script-src 'self'); without it the page works as before, with no
 * passkey button (the button is hidden until the script shows it). The browser's own JSON helpers
 * (parseRequestOptionsFromJSON, toJSON) do the base64url work.
 */
export const PASSKEY_SCRIPT = `// AuthGate: sign in with a passkey
const form = document.getElementById('passkey-form')
const button = document.getElementById('passkey-button')
const status = document.getElementById('passkey-status')
let pending
async function signIn(mediation) {
  pending?.abort()
  const controller = new AbortController()
  pending = controller
  const answer = await fetch('/auth/webauthn/login/options', { method: 'POST' })
  if (!answer.ok) throw new Error('no options')
  const publicKey = PublicKeyCredential.parseRequestOptionsFromJSON(await answer.json())
  const credential = await navigator.credentials.get({ publicKey, mediation, signal: controller.signal })
  if (!credential) return
  form.elements.credential.value = JSON.stringify(credential.toJSON())
  form.submit()
}
const failed = (error) => {
  if (error?.name === 'AbortError') return
  status.textContent = 'The passkey did not sign you in. Try again, or use your password.'
}
if (form && window.PublicKeyCredential?.parseRequestOptionsFromJSON) {
  button.hidden = false
  button.addEventListener('click', () => {
    status.textContent = ''
    signIn('optional').catch(failed)
  })
  PublicKeyCredential.isConditionalMediationAvailable?.().then((yes) => {
    if (yes) signIn('conditional').catch(() => {})
  })
}
`

export const PASSKEY_SCRIPT_PATH = hashed('passkey', PASSKEY_SCRIPT, 'js')

// A gate, in the accent colour. Without an icon of its own a page makes the browser ask for
// /favicon.ico, a 404 that Chromium reports as a console error.
export const ICON = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">
<rect width="32" height="32" rx="7" fill="#1f5fbf"/>
<path d="M9 25V13a7 7 0 0 1 14 0v12M16 13v12M9 19h14" fill="none" stroke="#fff" stroke-width="2.5"/>
</svg>
`

export const ICON_PATH = hashed('authgate-icon', ICON, 'svg')

/** What GET answers at each asset's path. */
export const ASSETS: Readonly<Record<string, { type: string; body: string }>> = {
  [STYLESHEET_PATH]: { type: 'text/css; charset=utf-8', body: STYLESHEET },
  [ICON_PATH]: { type: 'image/svg+xml', body: ICON },
  [PASSKEY_SCRIPT_PATH]: { type: 'text/javascript; charset=utf-8', body: PASSKEY_SCRIPT },
}
