// GET /account and its forms (issue 13 item 4), behind the browser session: change the password,
// turn TOTP on (QR code, first code, recovery codes) or off, remove a passkey, sign a session out,
// withdraw a consent. Each form is CSRF-checked like the login page's, acts through the same
// domain call as the JSON API, and comes back to /account with a notice (303).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { type Static, Type } from 'typebox'
import type { AccountService } from '../../domain/account.js'
import type { BrowserSession, BrowserSessionService } from '../../domain/browser-sessions.js'
import type { ConsentService } from '../../domain/consents.js'
import type { EmailService } from '../../domain/email.js'
import { DomainError, ErrorCode, ValidationError } from '../../domain/errors.js'
import type { MfaService } from '../../domain/mfa.js'
import type { PasskeyService } from '../../domain/passkeys.js'
import type { SessionService } from '../../domain/sessions.js'
import { Throttled } from '../../domain/throttle.js'
import { accountPage, recoveryCodesPage, totpSetupPage } from '../pages/account.js'
import { sendPage } from '../pages/serve.js'
import type { FormProblems } from '../pages/views.js'

type App = Parameters<FastifyPluginAsyncTypebox>[0]

export interface AccountPageDeps {
  account: AccountService
  sessions: SessionService
  browserSessions: BrowserSessionService
  consents: ConsentService
  mfa: MfaService
  passkeys: PasskeyService
  email: EmailService
  sessionCookieName: string
  csrfToken: (request: FastifyRequest, reply: FastifyReply) => string
  refuseForgery: (request: FastifyRequest, reply: FastifyReply) => Promise<unknown>
}

const Form = Type.Object({
  csrf_token: Type.Optional(Type.String({ maxLength: 256 })),
  password: Type.Optional(Type.String({ maxLength: 1024 })),
  current_password: Type.Optional(Type.String({ maxLength: 1024 })),
  new_password: Type.Optional(Type.String({ maxLength: 1024 })),
  code: Type.Optional(Type.String({ maxLength: 16 })),
  id: Type.Optional(Type.String({ maxLength: 4096 })),
  client_id: Type.Optional(Type.String({ maxLength: 256 })),
})
const NoticeQuery = Type.Object({ done: Type.Optional(Type.String({ maxLength: 32 })) })
// What each action says when it comes back (a key in the query, never text from the request).
const NOTICES: Record<string, string> = {
  password: 'Your password was changed. Your other sessions have ended.',
  totp_off: 'Two-step sign-in is off.',
  passkey: 'The passkey was removed.',
  session: 'That session was signed out.',
  consent: 'That app no longer has access.',
}
const BODY_LIMIT = 16 * 1024

export function accountPages(app: App, deps: AccountPageDeps): void {
  const { account, sessions, browserSessions, consents, mfa, passkeys, email } = deps
  const who = (request: FastifyRequest, session: BrowserSession) => ({
    id: session.userId,
    username: session.username,
    sid: session.id,
    ip: request.ip,
    userAgent: request.headers['user-agent'] ?? null,
  })
  const signedIn = (request: FastifyRequest) =>
    browserSessions.resolve(request.cookies[deps.sessionCookieName])
  const toLogin = (reply: FastifyReply) => reply.redirect('/login?return_to=%2Faccount', 303)
  const back = (reply: FastifyReply, done: keyof typeof NOTICES) =>
    reply.redirect(`/account?done=${done}`, 303)

  async function render(
    request: FastifyRequest,
    reply: FastifyReply,
    session: BrowserSession,
    status: number,
    extra: { notice?: string | undefined; problems?: FormProblems | undefined } = {},
  ) {
    const [status2fa, keys, page, allowed, address] = await Promise.all([
      mfa.status(session.userId),
      passkeys.list(session.userId),
      sessions.list(session.userId, session.id, { limit: 100 }),
      consents.list(session.userId),
      email.status(session.userId),
    ])
    return sendPage(
      reply,
      status,
      accountPage({
        username: session.username,
        csrfToken: deps.csrfToken(request, reply),
        ...extra,
        totp: status2fa.totp,
        recoveryCodesLeft: status2fa.recoveryCodesLeft,
        email: address,
        passkeys: keys.map((k) => ({
          id: k.id,
          name: k.name,
          createdAt: new Date(k.createdAt).toISOString(),
        })),
        sessions: page.sessions,
        consents: allowed.map((c) => ({ clientId: c.clientId, clientName: c.clientName, scopes: c.scopes })),
      }),
    )
  }

  /** A refusal the form can show: a wrong password, a policy, a code, a throttle. */
  function problemsOf(err: unknown, field: string): [number, FormProblems] | undefined {
    if (err instanceof Throttled)
      return [429, { form: `Too many attempts. Try again in ${err.retryAfterSeconds} seconds.` }]
    if (err instanceof ValidationError)
      return [422, { fields: { [field]: err.errors.map((e) => e.msg).join(' ') } }]
    if (
      err instanceof DomainError &&
      [ErrorCode.wrongPassword, ErrorCode.invalidOtp].includes(err.code as never)
    )
      return [400, { fields: { [err.code === ErrorCode.invalidOtp ? 'code' : field]: `${err.detail}.` } }]
    if (
      err instanceof DomainError &&
      [ErrorCode.mfaUnavailable, ErrorCode.mfaAlreadyEnabled, ErrorCode.mfaNotEnrolled].includes(
        err.code as never,
      )
    )
      return [409, { form: `${err.detail}.` }]
    return undefined
  }

  app.get('/account', { schema: { hide: true, querystring: NoticeQuery } }, async (request, reply) => {
    const session = await signedIn(request)
    if (!session) return toLogin(reply)
    return render(request, reply, session, 200, { notice: NOTICES[request.query.done ?? ''] })
  })

  /** An account form: the forgery check, the session, then `act`; its refusals on the page. */
  function action(
    path: string,
    field: string,
    act: (
      request: FastifyRequest<{ Body: Static<typeof Form> }>,
      reply: FastifyReply,
      session: BrowserSession,
    ) => Promise<unknown>,
  ) {
    app.post(
      path,
      { bodyLimit: BODY_LIMIT, schema: { hide: true, body: Form }, preHandler: deps.refuseForgery },
      async (request, reply) => {
        const session = await signedIn(request)
        if (!session) return toLogin(reply)
        try {
          return await act(request, reply, session)
        } catch (err) {
          const refused = problemsOf(err, field)
          if (!refused) throw err
          if (refused[0] === 429) reply.header('retry-after', String((err as Throttled).retryAfterSeconds))
          return render(request, reply, session, refused[0], { problems: refused[1] })
        }
      },
    )
  }

  action('/account/password', 'new_password', async (request, reply, session) => {
    await account.changePassword(
      who(request, session),
      request.body.current_password ?? '',
      request.body.new_password ?? '',
    )
    return back(reply, 'password')
  })

  const setup = async (
    request: FastifyRequest,
    reply: FastifyReply,
    status: number,
    begun: { secret: string; otpauthUri: string },
    problems?: FormProblems,
  ) => {
    // Imported here, at the first enrolment, not at start-up.
    const { default: QRCode } = await import('qrcode')
    const qrSvg = await QRCode.toString(begun.otpauthUri, { type: 'svg', margin: 2 })
    const csrfToken = deps.csrfToken(request, reply)
    return sendPage(reply, status, totpSetupPage({ csrfToken, qrSvg, secret: begun.secret, problems }))
  }

  action('/account/totp', 'password', async (request, reply, session) =>
    setup(request, reply, 200, await mfa.beginTotp(who(request, session), request.body.password ?? '')),
  )

  action('/account/totp/confirm', 'code', async (request, reply, session) => {
    try {
      const codes = await mfa.confirmTotp(who(request, session), (request.body.code ?? '').replace(/\s/g, ''))
      return sendPage(reply, 200, recoveryCodesPage(codes))
    } catch (err) {
      if (!(err instanceof DomainError && err.code === ErrorCode.invalidOtp)) throw err
      // The same secret again: the enrolment stays pending until a code confirms it.
      const pending = await mfa.pending(who(request, session))
      if (!pending) throw err
      return setup(request, reply, 400, pending, { fields: { code: `${err.detail}.` } })
    }
  })

  action('/account/totp/remove', 'password', async (request, reply, session) => {
    await mfa.removeTotp(who(request, session), { password: request.body.password ?? '' })
    return back(reply, 'totp_off')
  })

  action('/account/passkeys/remove', 'id', async (request, reply, session) => {
    await passkeys.remove(who(request, session), request.body.id ?? '')
    return back(reply, 'passkey')
  })

  action('/account/sessions/end', 'id', async (request, reply, session) => {
    const id = request.body.id ?? ''
    // This browser's own session ends with the logout page, not here.
    if (id !== session.id) await sessions.end(session.userId, 'logout', [id])
    return back(reply, 'session')
  })

  action('/account/consents/withdraw', 'client_id', async (request, reply, session) => {
    await consents.withdraw(session.userId, request.body.client_id ?? '', who(request, session))
    return back(reply, 'consent')
  })
}
