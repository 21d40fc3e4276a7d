// The account page (issue 13 item 4): what a signed-in person can see and change about their own
// account, server-rendered, one form per action (each posts, then comes back here: 303), under
// the pages' CSP. The TOTP enrolment page shows the secret as a QR code (an inline SVG, no script).
import { type Html, html, raw } from './html.js'
import { layout } from './layout.js'
import { type FormProblems, summary } from './views.js'

export interface AccountView {
  username: string
  csrfToken: string
  /** What the last action did, announced (role="status"). */
  notice?: string | undefined
  problems?: FormProblems | undefined
  totp: 'enabled' | 'pending' | 'off'
  recoveryCodesLeft: number
  email: { email: string; verified: boolean } | undefined
  passkeys: { id: string; name: string; createdAt: string }[]
  sessions: { id: string; kind: string; createdAt: string; userAgent: string | null; current: boolean }[]
  consents: { clientId: string; clientName: string; scopes: string[] }[]
}

const csrf = (token: string) => html`<input type="hidden" name="csrf_token" value="${token}">`
const when = (iso: string) => iso.slice(0, 16).replace('T', ' ')

function passwordField(
  name: 'current_password' | 'new_password' | 'password',
  label: string,
  page: AccountView,
) {
  const error = page.problems?.fields?.[name]
  const autocomplete = name === 'new_password' ? 'new-password' : 'current-password'
  return html`<div class="field">
<label for="${name}">${label}</label>
${error === undefined ? '' : html`<span class="field-error" id="${name}-error">Error: ${error}</span>`}
<input id="${name}" name="${name}" type="password" autocomplete="${autocomplete}" required${
    error === undefined ? '' : html` aria-invalid="true" aria-describedby="${name}-error"`
  }>
</div>`
}

export function accountPage(page: AccountView): Html {
  const t = page.csrfToken
  return layout({
    title: 'Your account',
    hasError: page.problems !== undefined,
    body: html`<h1>Your account</h1>
<p>Signed in as <strong>${page.username}</strong>.</p>
${page.notice === undefined ? '' : html`<p class="notice" role="status">${page.notice}</p>`}
${summary(page.problems)}
<section aria-labelledby="password-heading">
<h2 id="password-heading">Password</h2>
<form method="post" action="/account/password" novalidate>
${csrf(t)}
${passwordField('current_password', 'Current password', page)}
${passwordField('new_password', 'New password', page)}
<button type="submit">Change password</button>
</form>
</section>
<section aria-labelledby="totp-heading">
<h2 id="totp-heading">Two-step sign-in</h2>
${
  page.totp === 'enabled'
    ? html`<p>On: signing in asks for a code from your authenticator app. ${page.recoveryCodesLeft} recovery codes left.</p>
<form method="post" action="/account/totp/remove" novalidate>
${csrf(t)}
${passwordField('password', 'Password, to turn it off', page)}
<button type="submit" class="secondary">Turn off two-step sign-in</button>
</form>`
    : html`<p>Off. Add an authenticator app, so that a stolen password is not enough.</p>
<form method="post" action="/account/totp" novalidate>
${csrf(t)}
${passwordField('password', 'Password, to turn it on', page)}
<button type="submit">Set up an authenticator app</button>
</form>`
}
</section>
<section aria-labelledby="passkeys-heading">
<h2 id="passkeys-heading">Passkeys</h2>
${
  page.passkeys.length === 0
    ? html`<p>None yet.</p>`
    : html`<ul class="items">${page.passkeys.map(
        (p) => html`<li><span>${p.name}, added ${when(p.createdAt)}</span>
<form method="post" action="/account/passkeys/remove">${csrf(t)}<input type="hidden" name="id" value="${p.id}">
<button type="submit" class="secondary" aria-label="Remove the passkey ${p.name}">Remove</button></form></li>`,
      )}</ul>`
}
</section>
<section aria-labelledby="sessions-heading">
<h2 id="sessions-heading">Where you are signed in</h2>
<ul class="items">${page.sessions.map(
      (
        s,
      ) => html`<li><span>${s.current ? 'This browser' : s.kind === 'browser' ? 'A browser' : 'An app'}, since ${when(s.createdAt)}${
        s.userAgent ? html` (${s.userAgent.slice(0, 60)})` : ''
      }</span>
${
  s.current
    ? ''
    : html`<form method="post" action="/account/sessions/end">${csrf(t)}<input type="hidden" name="id" value="${s.id}">
<button type="submit" class="secondary" aria-label="Sign out the session since ${when(s.createdAt)}">Sign out</button></form>`
}</li>`,
    )}</ul>
</section>
<section aria-labelledby="consents-heading">
<h2 id="consents-heading">Apps you allowed</h2>
${
  page.consents.length === 0
    ? html`<p>None.</p>`
    : html`<ul class="items">${page.consents.map(
        (c) => html`<li><span>${c.clientName}: ${c.scopes.join(', ')}</span>
<form method="post" action="/account/consents/withdraw">${csrf(t)}<input type="hidden" name="client_id" value="${c.clientId}">
<button type="submit" class="secondary" aria-label="Withdraw access for ${c.clientName}">Withdraw</button></form></li>`,
      )}</ul>`
}
</section>
<section aria-labelledby="email-heading">
<h2 id="email-heading">Email</h2>
<p>${
      page.email === undefined
        ? 'No address.'
        : html`${page.email.email}: ${page.email.verified ? 'verified' : 'not verified yet (see the link we mailed)'}`
    }</p>
</section>`,
  })
}

/** The TOTP enrolment: the QR code (an SVG from the otpauth:// URI), the secret, then the first code. */
export function totpSetupPage(page: {
  csrfToken: string
  qrSvg: string
  secret: string
  problems?: FormProblems | undefined
}): Html {
  const error = page.problems?.fields?.code
  return layout({
    title: 'Set up an authenticator app',
    hasError: error !== undefined,
    body: html`<h1>Set up an authenticator app</h1>
${summary(page.problems)}
<p id="qr-help">Scan this code with your authenticator app, or type the key below into it.</p>
<figure class="qr" role="img" aria-labelledby="qr-help">${raw(page.qrSvg)}</figure>
<p>Key: <code class="secret">${page.secret.replace(/(.{4})/g, '$1 ').trim()}</code></p>
<form method="post" action="/account/totp/confirm" novalidate>
${csrf(page.csrfToken)}
<div class="field">
<label for="code">Code from your authenticator app</label>
${error === undefined ? '' : html`<span class="field-error" id="code-error">Error: ${error}</span>`}
<input id="code" name="code" type="text" autocomplete="one-time-code" inputmode="numeric" autocapitalize="none" spellcheck="false" required${
      error === undefined ? '' : html` aria-invalid="true" aria-describedby="code-error"`
    }>
</div>
<button type="submit">Turn on two-step sign-in</button>
</form>`,
  })
}

/** The recovery codes, shown once. */
export function recoveryCodesPage(codes: readonly string[]): Html {
  return layout({
    title: 'Your recovery codes',
    body: html`<h1>Two-step sign-in is on</h1>
<p role="status">Keep these recovery codes somewhere safe. Each signs you in once if you lose your phone. They are shown only now.</p>
<ul class="codes">${codes.map((c) => html`<li><code>${c}</code></li>`)}</ul>
<p class="after"><a href="/account">Back to your account</a></p>`,
  })
}
