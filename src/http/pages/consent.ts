// The consent page (issue 12 item 3): which application asks, for what, in words, and two
// buttons, allow and deny, in one form that carries the signed request and the CSRF token.
import { type Html, html } from './html.js'
import { layout } from './layout.js'

export interface ConsentPage {
  clientName: string
  username: string
  scopes: readonly string[]
  /** The signed request (domain/authorize.ts), posted back as it is. */
  ticket: string
  csrfToken: string
  /** The login page, to come back here as another user. */
  switchAccountHref: string
}

/** What a scope lets the client do, in words; a scope without words is shown by its name. */
export function scopeInWords(scope: string, clientName: string): Html {
  switch (scope) {
    case 'openid':
      return html`Confirm who you are`
    case 'profile':
      return html`See your username`
    case 'offline_access':
      return html`Stay signed in to ${clientName} (refresh tokens)`
  }
  return html`Use <code>${scope}</code>`
}

export function consentPage(page: ConsentPage): Html {
  const { clientName } = page
  return layout({
    title: `Allow ${clientName}?`,
    body: html`<h1>Allow ${clientName} to use your account?</h1>
<p>You are signed in as <strong>${page.username}</strong>. <a href="${page.switchAccountHref}">Not you?</a></p>
<p id="scopes-intro">${clientName} will be able to:</p>
<ul class="scopes" aria-labelledby="scopes-intro">
${page.scopes.map((scope) => html`<li>${scopeInWords(scope, clientName)}</li>\n`)}</ul>
<form method="post" action="/consent">
<input type="hidden" name="csrf_token" value="${page.csrfToken}">
<input type="hidden" name="request" value="${page.ticket}">
<div class="actions">
<button type="submit" name="consent" value="allow">Allow</button>
<button type="submit" name="consent" value="deny" class="secondary">Deny</button>
</div>
</form>
<p class="after">You can withdraw this later; the application then loses the access it gives.</p>`,
  })
}
