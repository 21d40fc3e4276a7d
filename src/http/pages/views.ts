// The pages themselves: sign-in, sign-up, "signed in as", and the error page. Forms follow the
// GOV.UK Design System's patterns for errors: a summary announced with role="alert" and focused
// (autofocus, there being no script), each field with a visible label, its own message tied to
// it with aria-describedby, and aria-invalid (WCAG 2.2 1.3.1, 3.3.1, 3.3.3, 4.1.2).

import { PASSKEY_SCRIPT_PATH } from './assets.js'
import { type Html, html } from './html.js'
import { layout } from './layout.js'

export type FieldName =
  | 'username'
  | 'password'
  | 'code'
  | 'recovery_code'
  | 'email'
  | 'new_password'
  | 'current_password'
  | 'id'
  | 'client_id'

export interface FormProblems {
  /** About the form as a whole, tied to every field: "Incorrect username or password", a 429. */
  form?: string
  /** One message per field, in the order the fields come. */
  fields?: Partial<Record<FieldName, string>>
}

/** What every answer with a form fills in. */
export interface FormFields {
  csrfToken: string
  /** Echoed in a hidden field, already checked (http/pages/return-to.ts). */
  returnTo?: string | undefined
  /** What the user typed, shown again (never the password). */
  username?: string | undefined
  problems?: FormProblems | undefined
}

export interface LoginPage extends FormFields {
  /** Where the sign-up link goes, when sign-up is open. */
  signUpHref?: string | undefined
  /** Whether passkeys work here (PUBLIC_URL names a domain): the passkey button and autofill. */
  passkeys?: boolean | undefined
  /** Whether mail can be sent: the "Forgot your password?" link. */
  forgotHref?: string | undefined
}

export interface SignupPage extends FormFields {
  loginHref: string
  passwordHint: string
}

/** `path`, with return_to in its query when there is one. */
export function withReturnTo(path: string, returnTo: string | undefined): string {
  return returnTo === undefined ? path : `${path}?${new URLSearchParams({ return_to: returnTo })}`
}

const FORM_ERROR_ID = 'form-error'
const LABELS: Record<FieldName, string> = {
  username: 'Username',
  password: 'Password',
  code: 'Code from your authenticator app',
  recovery_code: 'Recovery code',
  email: 'Email address or username',
  new_password: 'New password',
  current_password: 'Current password',
  id: 'Passkey or session',
  client_id: 'App',
}

function hasProblems(problems: FormProblems | undefined): boolean {
  return problems?.form !== undefined || Object.keys(problems?.fields ?? {}).length > 0
}

export function summary(problems: FormProblems | undefined): Html | undefined {
  if (!problems || !hasProblems(problems)) return undefined
  const fields = Object.entries(problems.fields ?? {}) as [FieldName, string][]
  return html`<div class="alert" role="alert" id="error-summary" tabindex="-1" autofocus>
<h2>There is a problem</h2>
${problems.form === undefined ? '' : html`<p id="${FORM_ERROR_ID}">${problems.form}</p>`}
${
  fields.length === 0
    ? ''
    : html`<ul>${fields.map(([name, message]) => html`<li><a href="#${name}">${message}</a></li>`)}</ul>`
}
</div>`
}

interface FieldOptions {
  name: FieldName
  type: 'text' | 'password'
  autocomplete:
    | 'username'
    | 'username webauthn'
    | 'current-password'
    | 'new-password'
    | 'one-time-code'
    | 'off'
    | 'email'
  /** The keyboard a phone shows: digits only for a TOTP code. */
  inputmode?: 'numeric' | undefined
  value?: string | undefined
  hint?: string | undefined
  problems?: FormProblems | undefined
}

function field({ name, type, autocomplete, inputmode, value, hint, problems }: FieldOptions): Html {
  const error = problems?.fields?.[name]
  const invalid = error !== undefined || problems?.form !== undefined
  const describedBy = [
    hint === undefined ? undefined : `${name}-hint`,
    error === undefined ? undefined : `${name}-error`,
    problems?.form === undefined ? undefined : FORM_ERROR_ID,
  ].filter((id) => id !== undefined)
  // A user name is not prose: no capital first letter, no spelling "fixes" (iOS, Android).
  const textOnly = type === 'text' ? html` autocapitalize="none" spellcheck="false"` : ''
  const keyboard = inputmode === undefined ? '' : html` inputmode="${inputmode}"`
  return html`<div class="field">
<label for="${name}">${LABELS[name]}</label>
${hint === undefined ? '' : html`<span class="hint" id="${name}-hint">${hint}</span>`}
${error === undefined ? '' : html`<span class="field-error" id="${name}-error">Error: ${error}</span>`}
<input id="${name}" name="${name}" type="${type}" autocomplete="${autocomplete}"${keyboard}${textOnly} required${
    value === undefined ? '' : html` value="${value}"`
  }${invalid ? html` aria-invalid="true"` : ''}${
    describedBy.length === 0 ? '' : html` aria-describedby="${describedBy.join(' ')}"`
  }>
</div>`
}

function hiddenFields({ csrfToken, returnTo }: FormFields): Html {
  return html`<input type="hidden" name="csrf_token" value="${csrfToken}">
${returnTo === undefined ? '' : html`<input type="hidden" name="return_to" value="${returnTo}">`}`
}

export function loginPage(page: LoginPage): Html {
  const { problems } = page
  return layout({
    title: 'Sign in',
    hasError: hasProblems(problems),
    body: html`<h1>Sign in</h1>
${summary(problems)}
<form method="post" action="/login" novalidate>
${hiddenFields(page)}
${field({
  name: 'username',
  type: 'text',
  // WebAuthn §5.1.4.1: the browser offers this site's passkeys in the field's autofill.
  autocomplete: page.passkeys ? 'username webauthn' : 'username',
  value: page.username,
  problems,
})}
${field({ name: 'password', type: 'password', autocomplete: 'current-password', problems })}
<button type="submit">Sign in</button>
</form>
${
  page.passkeys
    ? html`<form method="post" action="/login/passkey" id="passkey-form" class="after">
${hiddenFields(page)}
<input type="hidden" name="credential" value="">
<button type="button" class="secondary" id="passkey-button" hidden>Sign in with a passkey</button>
<p id="passkey-status" role="status"></p>
</form>
<script type="module" src="${PASSKEY_SCRIPT_PATH}"></script>`
    : ''
}
${page.forgotHref === undefined ? '' : html`<p class="after"><a href="${page.forgotHref}">Forgot your password?</a></p>`}
${page.signUpHref === undefined ? '' : html`<p class="after">New here? <a href="${page.signUpHref}">Create an account</a></p>`}`,
  })
}

/** "Forgot your password?": an address or a username, and the same answer for every one. */
export function forgotPage(page: FormFields & { sent?: boolean }): Html {
  const { problems } = page
  if (page.sent)
    return layout({
      title: 'Check your email',
      body: html`<h1>Check your email</h1>
<p role="status">If an account with a verified email matches, we have sent it a link to choose a new password. The link works for an hour.</p>
<p class="after"><a href="/login">Back to sign in</a></p>`,
    })
  return layout({
    title: 'Reset your password',
    hasError: hasProblems(problems),
    body: html`<h1>Reset your password</h1>
${summary(problems)}
<form method="post" action="/password/forgot" novalidate>
${hiddenFields(page)}
${field({
  name: 'email',
  type: 'text',
  autocomplete: 'email',
  value: page.username,
  hint: 'We will send a link to the verified email address of the account.',
  problems,
})}
<button type="submit">Send the link</button>
</form>`,
  })
}

/** The page a reset link opens: the new password, under the policy. */
export function resetPage(page: FormFields & { token: string; passwordHint: string; done?: boolean }): Html {
  const { problems } = page
  if (page.done)
    return layout({
      title: 'Password changed',
      body: html`<h1>Your password was changed</h1>
<p role="status">Every session of your account has ended. Sign in with the new password.</p>
<p class="after"><a href="/login">Sign in</a></p>`,
    })
  return layout({
    title: 'Choose a new password',
    hasError: hasProblems(problems),
    body: html`<h1>Choose a new password</h1>
${summary(problems)}
<form method="post" action="/password/reset" novalidate>
${hiddenFields(page)}
<input type="hidden" name="token" value="${page.token}">
${field({ name: 'new_password', type: 'password', autocomplete: 'new-password', hint: page.passwordHint, problems })}
<button type="submit">Set the new password</button>
</form>`,
  })
}

/** The page a verification link opens: a button, since a GET must not verify (link scanners open links). */
export function verifyEmailPage(page: FormFields & { token: string; done?: boolean }): Html {
  if (page.done)
    return layout({
      title: 'Email verified',
      body: html`<h1>Your email address is verified</h1>
<p role="status">It can now receive password reset links.</p>
<p class="after"><a href="/login">Sign in</a></p>`,
    })
  return layout({
    title: 'Verify your email address',
    hasError: hasProblems(page.problems),
    body: html`<h1>Verify your email address</h1>
${summary(page.problems)}
<form method="post" action="/email/verify">
${hiddenFields(page)}
<input type="hidden" name="token" value="${page.token}">
<button type="submit">Verify my email address</button>
</form>`,
  })
}

export interface SecondFactorPage extends FormFields {
  /** The password step's mfa_token, carried in a hidden field to the second step's POST. */
  mfaToken: string
  /** Which proof the form asks for: a TOTP code (the default) or a recovery code. */
  method: 'totp' | 'recovery'
}

/**
 * The second step of a sign-in to an account with TOTP. The code input is what browsers and
 * password managers fill from an SMS or an authenticator (`autocomplete="one-time-code"`), with
 * a digit keyboard on phones; a second button swaps it for a recovery code, without scripts.
 */
export function secondFactorPage(page: SecondFactorPage): Html {
  const { problems } = page
  const totp = page.method === 'totp'
  return layout({
    title: 'Enter your code',
    hasError: hasProblems(problems),
    body: html`<h1>${totp ? 'Enter the code from your app' : 'Enter a recovery code'}</h1>
${summary(problems)}
<form method="post" action="/login/mfa" novalidate>
${hiddenFields(page)}
<input type="hidden" name="mfa_token" value="${page.mfaToken}">
${
  totp
    ? field({
        name: 'code',
        type: 'text',
        autocomplete: 'one-time-code',
        inputmode: 'numeric',
        hint: 'Open your authenticator app and type the 6-digit code it shows for this account.',
        problems,
      })
    : field({
        name: 'recovery_code',
        type: 'text',
        autocomplete: 'off',
        hint: 'One of the codes you saved when you turned on two-step sign-in. Each works once.',
        problems,
      })
}
<button type="submit">Continue</button>
<button type="submit" class="secondary" name="use" value="${totp ? 'recovery' : 'totp'}" formnovalidate>${
      totp ? 'Use a recovery code instead' : 'Use the code from your app instead'
    }</button>
</form>`,
  })
}

export function signupPage(page: SignupPage): Html {
  const { problems } = page
  return layout({
    title: 'Create an account',
    hasError: hasProblems(problems),
    body: html`<h1>Create an account</h1>
${summary(problems)}
<form method="post" action="/signup" novalidate>
${hiddenFields(page)}
${field({ name: 'username', type: 'text', autocomplete: 'username', value: page.username, problems })}
${field({
  name: 'password',
  type: 'password',
  autocomplete: 'new-password',
  hint: page.passwordHint,
  problems,
})}
<button type="submit">Create account</button>
</form>
<p class="after">Already have an account? <a href="${page.loginHref}">Sign in</a></p>`,
  })
}

export function signedInPage(username: string): Html {
  return layout({
    title: 'Signed in',
    body: html`<h1>You are signed in</h1>
<p>You are signed in as <strong>${username}</strong>.</p>`,
  })
}

export interface ErrorPage {
  title: string
  message: string
}

/** What went wrong, in words, and where to go from here; never an internal message. */
export function errorPage({ title, message }: ErrorPage): Html {
  return layout({
    title,
    hasError: true,
    body: html`<h1>${title}</h1>
<p>${message}</p>
<p><a href="/login">Go to the sign-in page</a></p>`,
  })
}

/** The words for an error page by status: what happened and what to do, nothing internal. */
export function errorPageFor(status: number, retryAfterSeconds?: number): ErrorPage {
  switch (status) {
    case 403:
      return {
        title: 'This form cannot be accepted',
        message:
          'The form was not sent from this site’s own page, or it has expired. ' +
          'Go back, reload the page and try again.',
      }
    case 404:
      return { title: 'Page not found', message: 'There is no page at this address.' }
    case 413:
      return { title: 'Form too large', message: 'The form sent is larger than this page accepts.' }
    case 429:
      return {
        title: 'Too many attempts',
        message: `Too many attempts. Try again in ${retryAfterSeconds ?? 60} seconds.`,
      }
    case 503:
      return {
        title: 'Temporarily unavailable',
        message: 'AuthGate cannot answer right now. Try again in a few seconds.',
      }
  }
  if (status >= 400 && status < 500)
    return {
      title: 'Request not understood',
      message: 'The request could not be read. Go back and try again.',
    }
  return { title: 'Something went wrong', message: 'Something went wrong on our side. Try again later.' }
}
