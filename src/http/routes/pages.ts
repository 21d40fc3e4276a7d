// AuthGate's own pages: GET/POST /login and /signup, POST /login/mfa (the second step of an
// account with TOTP), the "signed in as" page, the error page, and their stylesheet. Server-rendered HTML (http/pages/), under the pages' strict CSP; the rules
// are the domain's (auth.signIn is the password grant's own check), these handlers only read the
// form, call it and answer.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { Type } from 'typebox'
import { Value } from 'typebox/value'
import type { AuthService, SignedIn } from '../../domain/auth.js'
import {
  type AuthMethod,
  BROWSER_SESSION_COOKIE,
  type BrowserSessionService,
} from '../../domain/browser-sessions.js'
import type { CsrfTokens } from '../../domain/csrf.js'
import type { EmailService } from '../../domain/email.js'
import { DomainError, ErrorCode, ValidationError } from '../../domain/errors.js'
import { INVALID_MFA_TOKEN, MfaRequired } from '../../domain/mfa.js'
import { Throttled } from '../../domain/throttle.js'
import type { VerifiedUser } from '../../domain/users.js'
import { ASSETS } from '../pages/assets.js'
import { csrfTokenFor, pageCookie, sentFromOurPages } from '../pages/csrf.js'
import { safeReturnTo } from '../pages/return-to.js'
import { sendPage, servePages } from '../pages/serve.js'
import {
  errorPage,
  errorPageFor,
  type FieldName,
  type FormFields,
  type FormProblems,
  forgotPage,
  loginPage,
  resetPage,
  secondFactorPage,
  signedInPage,
  signupPage,
  verifyEmailPage,
  withReturnTo,
} from '../pages/views.js'
import { AuthenticationRequest } from '../schemas/webauthn.js'
import { type AccountPageDeps, accountPages } from './account-page.js'
import { client, DEVICE_COOKIE, deviceCookieOptions, type SameSite } from './auth.js'
import { routeFamily } from './family.js'

export interface PageRoutesOptions {
  auth: AuthService
  browserSessions: BrowserSessionService
  csrf: CsrfTokens
  /** PUBLIC_URL: its origin is where our own forms are posted from. */
  publicUrl: string
  /** Secure cookies with the `__Host-` prefix (PUBLIC_URL is https). */
  secureCookies: boolean
  /** DEVICE_COOKIE_SAMESITE, for the device cookie a page login gets too. */
  deviceSameSite?: SameSite
  /** Whether anyone may create an account (POST /auth/ is open too). */
  signUp: boolean
  /** Whether passkeys work here (PUBLIC_URL names a domain): the login page offers them. */
  passkeys: boolean
  /** The pages behind the mailed links, and "Forgot your password?" (when mail can be sent). */
  email: EmailService
  /** What the account page shows and changes (routes/account-page.ts). */
  accountPage: Pick<AccountPageDeps, 'account' | 'sessions' | 'consents' | 'mfa' | 'passkeys'>
  /** PASSWORD_MIN_LENGTH, for the sign-up page's hint. */
  passwordMinLength: number
  /** storage's classifier (the error handler's), for a 503 page. */
  isDatabaseUnavailable: (err: unknown) => boolean
}

// Credentials and a token fit in far less; a bigger body is refused before it is parsed or hashed.
const PAGE_BODY_LIMIT = 16 * 1024
// Where a sign-in without a return_to lands: the "signed in as" page.
const DEFAULT_RETURN = '/login'
const YEAR_SECONDS = 365 * 86_400

const ReturnToQuery = Type.Object({
  return_to: Type.Optional(Type.String()),
  // OIDC Core §3.1.2.1 login_hint, passed on by /authorize: the username the form starts with.
  login_hint: Type.Optional(Type.String({ maxLength: 256 })),
})
// The same caps as the token endpoint's form (schemas/auth.ts); a missing field is the page's to
// say, not the schema's.
const CredentialsForm = Type.Object({
  username: Type.Optional(Type.String({ maxLength: 256 })),
  password: Type.Optional(Type.String({ maxLength: 1024 })),
  csrf_token: Type.Optional(Type.String({ maxLength: 256 })),
  return_to: Type.Optional(Type.String()),
})

// The pages behind the mailed links, and "Forgot your password?".
const TokenQuery = Type.Object({ token: Type.Optional(Type.String({ maxLength: 128 })) })
const LinkForm = Type.Object({
  token: Type.Optional(Type.String({ maxLength: 128 })),
  new_password: Type.Optional(Type.String({ maxLength: 1024 })),
  email: Type.Optional(Type.String({ maxLength: 320 })),
  csrf_token: Type.Optional(Type.String({ maxLength: 256 })),
})
const BAD_LINK = {
  title: 'This link does not work',
  message: 'The link is invalid, has expired, or was used already. Ask for a new one.',
}

// The passkey form of the login page: the browser's credential.toJSON(), as JSON text.
const PasskeyForm = Type.Object({
  credential: Type.Optional(Type.String({ maxLength: 16 * 1024 })),
  csrf_token: Type.Optional(Type.String({ maxLength: 256 })),
  return_to: Type.Optional(Type.String()),
})

// The second step's form: the password step's mfa_token, and a code or a recovery code. `use`
// switches between the two without spending anything.
const SecondFactorForm = Type.Object({
  mfa_token: Type.Optional(Type.String({ maxLength: 128 })),
  code: Type.Optional(Type.String({ maxLength: 64 })),
  recovery_code: Type.Optional(Type.String({ maxLength: 64 })),
  use: Type.Optional(Type.String({ maxLength: 16 })),
  csrf_token: Type.Optional(Type.String({ maxLength: 256 })),
  return_to: Type.Optional(Type.String()),
})

/** The fields left empty, each with what to do; undefined when both are there. */
function missingFields(username: string, password: string): FormProblems | undefined {
  const fields: Partial<Record<FieldName, string>> = {}
  if (username === '') fields.username = 'Enter your username'
  if (password === '') fields.password = 'Enter your password'
  return Object.keys(fields).length === 0 ? undefined : { fields }
}

/** The password policy's and the username rules' messages, each on its own field. */
function fieldProblems(err: ValidationError): FormProblems {
  const fields: Partial<Record<FieldName, string>> = {}
  const form: string[] = []
  for (const { loc, msg } of err.errors) {
    const name = loc.at(-1)
    if ((name === 'username' || name === 'password') && fields[name] === undefined) fields[name] = msg
    else form.push(msg)
  }
  return form.length === 0 ? { fields } : { fields, form: form.join(' ') }
}

/** A 429's problem for the form, and its Retry-After (RFC 6585 §4). */
function throttled(reply: FastifyReply, err: Throttled): FormProblems {
  reply.header('retry-after', String(err.retryAfterSeconds))
  return { form: `Too many attempts. Try again in ${err.retryAfterSeconds} seconds.` }
}

const routes: FastifyPluginAsyncTypebox<PageRoutesOptions> = async (app, options) => {
  const { auth, browserSessions, csrf, secureCookies, signUp, isDatabaseUnavailable } = options
  const publicOrigin = new URL(options.publicUrl).origin
  const sessionCookie = pageCookie(BROWSER_SESSION_COOKIE, secureCookies)
  const csrfCookie = pageCookie('authgate_csrf', secureCookies)
  // The device cookie (domain/throttle.ts) a page login earns, sent back only to the login page.
  const deviceCookie = { ...deviceCookieOptions(secureCookies, options.deviceSameSite), path: '/login' }
  const passwordHint = `At least ${options.passwordMinLength} characters. Common passwords are refused.`

  await servePages(app, isDatabaseUnavailable)

  const token = (request: FastifyRequest, reply: FastifyReply) =>
    csrfTokenFor(request, reply, csrf, csrfCookie)

  /**
   * Every POST: from our own page (Origin, Sec-Fetch-Site) and with the token bound to this
   * browser's cookie, or a 403 page, before anything else runs: no attempt is counted.
   */
  async function refuseForgery(request: FastifyRequest, reply: FastifyReply) {
    // Every page form's schema has csrf_token (CredentialsForm, SecondFactorForm).
    const body = request.body as { csrf_token?: string | undefined } | undefined
    const ok =
      sentFromOurPages(request, publicOrigin) &&
      csrf.verify(request.cookies[csrfCookie.name], body?.csrf_token)
    if (!ok) return sendPage(reply, 403, errorPage(errorPageFor(403)))
  }

  /**
   * Starts the browser session for a user whose password (and second factor) were just verified;
   * `amr` (RFC 8176) is what the ID tokens of its codes say.
   */
  const startFor =
    (request: FastifyRequest, amr: AuthMethod[] = ['pwd']) =>
    (user: VerifiedUser) =>
      browserSessions.start(user, {
        amr,
        client: { ip: request.ip, userAgent: request.headers['user-agent'] ?? null },
      })

  /**
   * A sign-in from a browser already signed in: once the new browser session has started, the one
   * its cookie named ends, with what it started (OWASP ASVS 5.0 7.2.4: a new session token on
   * authentication, re-authentication included, and the current one terminated). A refused
   * attempt never gets here, so a wrong password signs nobody out.
   */
  async function endReplaced(request: FastifyRequest) {
    const previous = request.cookies[sessionCookie.name]
    if (previous !== undefined) await browserSessions.end(previous, 'logout')
  }

  /** Sets the cookies of a sign-in and sends the browser on (RFC 9110 §15.4.4: 303, a GET). */
  function signedIn(
    reply: FastifyReply,
    done: { started: { cookie: string }; deviceCookie: string },
    returnTo: string | undefined,
  ) {
    reply.setCookie(sessionCookie.name, done.started.cookie, sessionCookie.options)
    reply.setCookie(DEVICE_COOKIE, done.deviceCookie, deviceCookie)
    return reply.redirect(returnTo ?? DEFAULT_RETURN, 303)
  }

  const signUpHref = (returnTo: string | undefined) =>
    signUp ? withReturnTo('/signup', returnTo) : undefined
  // Each form page, given what every answer fills in.
  const FORMS = {
    '/login': (form: FormFields) =>
      loginPage({
        ...form,
        signUpHref: signUpHref(form.returnTo),
        passkeys: options.passkeys,
        forgotHref: options.email.available() ? '/password/forgot' : undefined,
      }),
    '/signup': (form: FormFields) =>
      signupPage({ ...form, loginHref: withReturnTo('/login', form.returnTo), passwordHint }),
  }

  /**
   * A form page's POST: the forgery check (preHandler), then the fields it needs, then `run`, and a
   * 303 on. A refusal shows the form again, with its status, what the user typed (never the
   * password) and the problem in words: a 429 for the throttle, or what `refusal` makes of it.
   */
  function credentialsPost(
    path: keyof typeof FORMS,
    run: (
      username: string,
      password: string,
      request: FastifyRequest,
    ) => Promise<SignedIn<{ cookie: string }>>,
    refusal: (err: unknown) => [status: number, problems: FormProblems] | undefined,
  ) {
    app.post(
      path,
      {
        bodyLimit: PAGE_BODY_LIMIT,
        schema: { hide: true, body: CredentialsForm },
        preHandler: refuseForgery,
      },
      async (request, reply) => {
        const { username = '', password = '' } = request.body
        const returnTo = safeReturnTo(request.body.return_to)
        const again = (status: number, problems: FormProblems) =>
          sendPage(
            reply,
            status,
            FORMS[path]({ csrfToken: token(request, reply), returnTo, username, problems }),
          )
        const missing = missingFields(username, password)
        if (missing) return again(422, missing)
        try {
          const done = await run(username, password, request)
          await endReplaced(request)
          return signedIn(reply, done, returnTo)
        } catch (err) {
          if (err instanceof Throttled) return again(429, throttled(reply, err))
          // The password was right and the account has TOTP: the second step, on its own page.
          if (err instanceof MfaRequired) {
            const csrfToken = token(request, reply)
            return sendPage(
              reply,
              200,
              secondFactorPage({ csrfToken, returnTo, mfaToken: err.mfaToken, method: 'totp' }),
            )
          }
          const refused = refusal(err)
          if (refused) return again(...refused)
          throw err
        }
      },
    )
  }

  // An asset's name carries its content's hash: a new version is a new URL, so this one never changes.
  for (const [path, { type, body }] of Object.entries(ASSETS)) {
    app.get(path, { schema: { hide: true } }, async (_request, reply) =>
      reply.header('cache-control', `public, max-age=${YEAR_SECONDS}, immutable`).type(type).send(body),
    )
  }

  app.get('/login', { schema: { hide: true, querystring: ReturnToQuery } }, async (request, reply) => {
    const returnTo = safeReturnTo(request.query.return_to)
    const session = await browserSessions.resolve(request.cookies[sessionCookie.name])
    if (session && returnTo === undefined) return sendPage(reply, 200, signedInPage(session.username))
    const username = request.query.login_hint
    return sendPage(reply, 200, FORMS['/login']({ csrfToken: token(request, reply), returnTo, username }))
  })

  credentialsPost(
    '/login',
    (username, password, request) =>
      auth.signIn(username, password, client(request), startFor(request), 'login_page'),
    // One message for an unknown user and a wrong password (OWASP ASVS 5.0 6.3.8).
    (err) => (isError(err, ErrorCode.invalidCredentials) ? [400, { form: `${err.detail}.` }] : undefined),
  )

  app.post(
    '/login/mfa',
    {
      bodyLimit: PAGE_BODY_LIMIT,
      schema: { hide: true, body: SecondFactorForm },
      preHandler: refuseForgery,
    },
    async (request, reply) => {
      const { mfa_token: mfaToken = '', use } = request.body
      const returnTo = safeReturnTo(request.body.return_to)
      const recovery = use === undefined ? request.body.recovery_code !== undefined : use === 'recovery'
      const method = recovery ? 'recovery' : 'totp'
      const again = (status: number, problems?: FormProblems) =>
        sendPage(
          reply,
          status,
          secondFactorPage({ csrfToken: token(request, reply), returnTo, mfaToken, method, problems }),
        )
      // The other button: the other kind of code, nothing spent.
      if (use !== undefined) return again(200)
      const field = recovery ? 'recovery_code' : 'code'
      const typed = (recovery ? request.body.recovery_code : request.body.code)?.trim() ?? ''
      if (typed === '')
        return again(422, {
          fields: { [field]: recovery ? 'Enter a recovery code' : 'Enter the code from your app' },
        })
      try {
        const done = await auth.completeSignIn(
          mfaToken,
          recovery ? { recoveryCode: typed } : { otp: typed.replace(/\s/g, '') },
          client(request),
          (user, amr) => startFor(request, amr)(user),
          'login_page',
        )
        await endReplaced(request)
        return signedIn(reply, done, returnTo)
      } catch (err) {
        if (err instanceof Throttled) return again(429, throttled(reply, err))
        if (isError(err, ErrorCode.invalidGrant) && err.detail !== INVALID_MFA_TOKEN)
          return again(400, { fields: { [field]: `${err.detail}.` } })
        // The mfa_token expired or was spent, or the password changed: back to the password.
        if (isError(err, ErrorCode.invalidGrant) || isError(err, ErrorCode.invalidCredentials)) {
          const problems = { form: 'Your sign-in expired. Sign in again.' }
          return sendPage(
            reply,
            400,
            FORMS['/login']({ csrfToken: token(request, reply), returnTo, problems }),
          )
        }
        throw err
      }
    },
  )

  app.post(
    '/login/passkey',
    { bodyLimit: PAGE_BODY_LIMIT, schema: { hide: true, body: PasskeyForm }, preHandler: refuseForgery },
    async (request, reply) => {
      const returnTo = safeReturnTo(request.body.return_to)
      const refused = (status: number) =>
        sendPage(
          reply,
          status,
          FORMS['/login']({
            csrfToken: token(request, reply),
            returnTo,
            problems: { form: 'The passkey did not sign you in. Try again, or use your password.' },
          }),
        )
      let credential: unknown
      try {
        credential = JSON.parse(request.body.credential ?? '')
      } catch {
        return refused(400)
      }
      if (!Value.Check(AuthenticationRequest, credential)) return refused(400)
      try {
        const done = await auth.passkeySignIn(
          credential as never,
          client(request),
          (user, amr) => startFor(request, amr)(user),
          'login_page',
        )
        await endReplaced(request)
        return signedIn(reply, done, returnTo)
      } catch (err) {
        if (isError(err, ErrorCode.invalidPasskey) || isError(err, ErrorCode.invalidCredentials))
          return refused(400)
        throw err
      }
    },
  )

  accountPages(app, {
    ...options.accountPage,
    browserSessions,
    email: options.email,
    sessionCookieName: sessionCookie.name,
    csrfToken: token,
    refuseForgery,
  })

  if (options.email.available()) {
    const { email } = options
    const from = (request: FastifyRequest) => ({
      ip: request.ip,
      userAgent: request.headers['user-agent'] ?? null,
    })
    const badLink = (reply: FastifyReply) => sendPage(reply, 400, errorPage(BAD_LINK))

    app.get('/password/forgot', { schema: { hide: true } }, async (request, reply) =>
      sendPage(reply, 200, forgotPage({ csrfToken: token(request, reply) })),
    )
    app.post(
      '/password/forgot',
      { bodyLimit: PAGE_BODY_LIMIT, schema: { hide: true, body: LinkForm }, preHandler: refuseForgery },
      async (request, reply) => {
        const typed = request.body.email?.trim() ?? ''
        if (typed === '')
          return sendPage(
            reply,
            422,
            forgotPage({
              csrfToken: token(request, reply),
              problems: { fields: { email: 'Enter your email address or username' } },
            }),
          )
        // The same page whatever comes of it (domain/email.ts forgot).
        email.forgot(typed.includes('@') ? { email: typed } : { username: typed }, from(request))
        return sendPage(reply, 200, forgotPage({ csrfToken: token(request, reply), sent: true }))
      },
    )

    app.get(
      '/password/reset',
      { schema: { hide: true, querystring: TokenQuery } },
      async (request, reply) => {
        const link = request.query.token ?? ''
        if (link === '' || !(await email.resetLinkUsable(link))) return badLink(reply)
        return sendPage(
          reply,
          200,
          resetPage({ csrfToken: token(request, reply), token: link, passwordHint }),
        )
      },
    )
    app.post(
      '/password/reset',
      { bodyLimit: PAGE_BODY_LIMIT, schema: { hide: true, body: LinkForm }, preHandler: refuseForgery },
      async (request, reply) => {
        const link = request.body.token ?? ''
        const again = (status: number, problems: FormProblems) =>
          sendPage(
            reply,
            status,
            resetPage({ csrfToken: token(request, reply), token: link, passwordHint, problems }),
          )
        const password = request.body.new_password ?? ''
        if (password === '') return again(422, { fields: { new_password: 'Enter a new password' } })
        try {
          await email.reset(link, password, from(request))
        } catch (err) {
          if (err instanceof ValidationError)
            return again(422, { fields: { new_password: err.errors.map((e) => e.msg).join(' ') } })
          if (isError(err, ErrorCode.invalidLink)) return badLink(reply)
          throw err
        }
        // The browser session, if any, ended with every other: its cookie goes too.
        reply.clearCookie(sessionCookie.name, sessionCookie.options)
        return sendPage(
          reply,
          200,
          resetPage({ csrfToken: token(request, reply), token: '', passwordHint, done: true }),
        )
      },
    )

    app.get('/email/verify', { schema: { hide: true, querystring: TokenQuery } }, async (request, reply) => {
      const link = request.query.token ?? ''
      if (link === '') return badLink(reply)
      return sendPage(reply, 200, verifyEmailPage({ csrfToken: token(request, reply), token: link }))
    })
    app.post(
      '/email/verify',
      { bodyLimit: PAGE_BODY_LIMIT, schema: { hide: true, body: LinkForm }, preHandler: refuseForgery },
      async (request, reply) => {
        try {
          await email.verify(request.body.token ?? '', from(request))
        } catch (err) {
          if (isError(err, ErrorCode.invalidLink)) return badLink(reply)
          if (isError(err, ErrorCode.emailTaken))
            return sendPage(reply, 409, errorPage({ title: 'Address in use', message: `${err.detail}.` }))
          throw err
        }
        return sendPage(
          reply,
          200,
          verifyEmailPage({ csrfToken: token(request, reply), token: '', done: true }),
        )
      },
    )
  }

  if (!signUp) return

  app.get('/signup', { schema: { hide: true, querystring: ReturnToQuery } }, async (request, reply) => {
    const returnTo = safeReturnTo(request.query.return_to)
    return sendPage(reply, 200, FORMS['/signup']({ csrfToken: token(request, reply), returnTo }))
  })

  credentialsPost(
    '/signup',
    (username, password, request) =>
      auth.registerAndSignIn(username, password, client(request), startFor(request)),
    (err) => {
      // The password policy's and the username rules' messages, each on its field.
      if (err instanceof ValidationError) return [422, fieldProblems(err)]
      if (isError(err, ErrorCode.usernameTaken))
        return [409, { fields: { username: `${err.detail}. Choose another, or sign in.` } }]
      return undefined
    },
  )
}

const isError = (err: unknown, code: ErrorCode): err is DomainError =>
  err instanceof DomainError && err.code === code

export const pageRoutes = routeFamily({ name: 'authgate-pages', needs: ['@fastify/formbody'] }, routes)
