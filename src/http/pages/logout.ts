// The logout pages (OpenID Connect RP-Initiated Logout 1.0): "sign out?", asked when the request
// cannot show it comes from the client this browser signed in to, and "you are signed out".
import { type Html, html } from './html.js'
import { layout } from './layout.js'

export interface LogoutConfirmPage {
  username: string
  /** The client that asks, when the request named one. */
  clientName: string | undefined
  csrfToken: string
  /** The request's own parameters, posted back as they came (checked again then). */
  fields: Readonly<Record<string, string>>
}

export function logoutConfirmPage(page: LogoutConfirmPage): Html {
  const asker = page.clientName === undefined ? '' : html` ${page.clientName} asks to sign you out.`
  return layout({
    title: 'Sign out?',
    body: html`<h1>Sign out of AuthGate?</h1>
<p>You are signed in as <strong>${page.username}</strong>.${asker}</p>
<p>Signing out ends your session here and in the applications you signed in to with it.</p>
<form method="post" action="/logout">
<input type="hidden" name="csrf_token" value="${page.csrfToken}">
${Object.entries(page.fields).map(([name, value]) => html`<input type="hidden" name="${name}" value="${value}">\n`)}<div class="actions">
<button type="submit" name="confirm" value="yes">Sign out</button>
</div>
</form>
<p class="after">Not now? Close this page, or go back: you stay signed in.</p>`,
  })
}

export function signedOutPage(): Html {
  return layout({
    title: 'Signed out',
    body: html`<h1>You are signed out</h1>
<p role="status">Your AuthGate session has ended, and so have the sessions it started.</p>
<p><a href="/login">Sign in again</a></p>`,
  })
}
