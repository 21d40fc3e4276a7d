// The public flows of the token endpoint and sign-up: throttled first, audited always.
import type { AuditLog } from './audit.js'
import type { AuthMethod } from './browser-sessions.js'
import { type EmailService, MAIL_UNAVAILABLE } from './email.js'
import { DomainError, ErrorCode, ValidationError } from './errors.js'
import { type Meter, noMeter } from './meter.js'
import { MfaRequired, type MfaService } from './mfa.js'
import type { PasskeyService } from './passkeys.js'
import { InvalidGrant, type SessionService, type TokenPair } from './sessions.js'
import { accountKey, type Reservation, type Throttle, Throttled } from './throttle.js'
import type { TokenService } from './tokens.js'
import { INCORRECT_CREDENTIALS, type User, type UserService, type VerifiedUser } from './users.js'

export interface Client {
  ip: string
  userAgent: string | null
  /** The device cookie the client sent, if any (see throttle.ts). */
  deviceCookie?: string | undefined
}

// Audit rows a client can cause by failing are bounded per address (audit-summary.ts): throttled
// attempts are only counted, and failed ones beyond the first few per window too. OWASP ASVS 5.0
// V16.3.1 asks that failed authentication be logged; the summary keeps the count and a sample.
const FAILURES_KEPT_WHOLE = 5

/** Which page a sign-in came through; none for the token endpoint. */
export type SignInVia = 'login_page' | 'signup_page'

/** What a sign-in made (`start`'s result), for whom, and the device cookie for the account. */
export interface SignedIn<T> {
  started: T
  user: VerifiedUser
  deviceCookie: string
}

export function createAuthService(deps: {
  users: UserService
  sessions: SessionService
  tokens: TokenService
  throttle: Throttle
  audit: AuditLog
  /** The second factor: a user who enrolled one signs in in two steps. */
  mfa: MfaService
  /** Passwordless sign-in with a passkey. */
  passkeys: PasskeyService
  /** An optional address at sign-up, verified by mail. */
  email: EmailService
  /** Counts outcomes for the metrics; none by default. */
  meter?: Meter
}) {
  const { users, sessions, tokens, throttle, audit, mfa, passkeys, email, meter = noMeter } = deps
  const where = (client: Client) => ({ ip: client.ip, userAgent: client.userAgent })

  /**
   * The throttle's verdict on an attempt: a refusal is metered and audited (only counted per
   * address beyond the first, audit-summary.ts), then thrown on.
   */
  async function admitted<T>(
    begin: () => Promise<T>,
    refused: { type: 'login.throttled' | 'register.throttled'; username: string; client: Client },
  ): Promise<T> {
    try {
      return await begin()
    } catch (err) {
      if (err instanceof Throttled) {
        if (refused.type === 'login.throttled') meter.login('throttled')
        else meter.registration('throttled')
        const { type, username, client } = refused
        audit.recordRepeated({ type, outcome: 'failure', username, ...where(client) }, { key: client.ip })
      }
      throw err
    }
  }

  async function register(
    username: string,
    password: string,
    client: Client,
    address?: string,
  ): Promise<User> {
    // An address is checked before anything is made: a bad one is a 422 and no account.
    if (address !== undefined) {
      if (!email.available()) throw new DomainError(ErrorCode.mailUnavailable, MAIL_UNAVAILABLE)
      email.check(address)
    }
    await admitted(() => throttle.beginRegistration(client.ip), {
      type: 'register.throttled',
      username,
      client,
    })
    let user: User
    try {
      user = await users.register(username, password)
    } catch (err) {
      if (err instanceof ValidationError) meter.registration('validation_error')
      else if (err instanceof DomainError && err.code === ErrorCode.usernameTaken)
        meter.registration('username_taken')
      throw err
    }
    meter.registration('success')
    audit.record({
      type: 'user.registered',
      outcome: 'success',
      userId: user.id,
      username,
      ...where(client),
    })
    if (address !== undefined) await email.attach(user.id, address, client)
    return user
  }

  /**
   * The one password check behind every door: the token endpoint's password grant and the login
   * and sign-up pages. A guess through the page is a guess: counted on the same throttling
   * counters (per address, account and device) before any hashing, audited and metered alike, and
   * taken back off the counters only once `start` has made what the login was for (a token
   * session, a browser session). Unknown users and wrong passwords get the same error in the same
   * time (OWASP ASVS 5.0 6.3.8): users.authenticate verifies against a dummy hash for the former.
   */
  async function signIn<T>(
    username: string,
    password: string,
    client: Client,
    start: (user: VerifiedUser) => Promise<T | undefined>,
    via?: SignInVia,
  ): Promise<SignedIn<T>> {
    const account = accountKey(username)
    const reservation = await admitted(
      () => throttle.beginLogin({ ip: client.ip, account, deviceCookie: client.deviceCookie }),
      { type: 'login.throttled', username, client },
    )
    const user = await users.authenticate(username, password)
    if (!user) {
      meter.login('invalid_credentials')
      audit.recordRepeated(
        { type: 'login.failed', outcome: 'failure', username, ...where(client) },
        { key: client.ip, keepFirst: FAILURES_KEPT_WHOLE },
      )
      throw new DomainError(ErrorCode.invalidCredentials, INCORRECT_CREDENTIALS)
    }
    if (await mfa.required(user.id)) {
      // The password was right, so it is no failure; but nobody is signed in until the second
      // step (NIST SP 800-63B §4.2: AAL2 takes two factors). No device cookie yet either.
      await throttle.passwordConfirmed(reservation)
      const mfaToken = await mfa.challenge(user, {
        channel: via === 'login_page' ? 'page' : 'token',
        clientId: null,
        device: reservation.device ?? null,
      })
      meter.login('mfa_required')
      audit.record({
        type: 'login.mfa_required',
        outcome: 'success',
        userId: user.id,
        username: user.username,
        ...where(client),
        ...(via ? { detail: { via } } : {}),
      })
      throw new MfaRequired(mfaToken)
    }
    return finish(user, reservation, client, start, { amr: ['pwd'], via })
  }

  /**
   * What every sign-in ends with once each factor is proved: `start` makes what it was for, the
   * throttle takes the attempt back and trusts the device, and the success is metered and audited.
   */
  async function finish<T>(
    user: VerifiedUser,
    reservation: Reservation,
    client: Client,
    start: (user: VerifiedUser) => Promise<T | undefined>,
    how: { amr: string[]; via?: SignInVia | undefined },
  ): Promise<SignedIn<T>> {
    const { via } = how
    const started = await start(user)
    if (started === undefined) {
      // The password was changed, or the account deleted, while this login verified it: the
      // change won (issue 9 item 2), and the attempt counts as the failure it now is.
      meter.login('invalid_credentials')
      audit.record({
        type: 'login.failed',
        outcome: 'failure',
        username: user.username,
        ...where(client),
      })
      throw new DomainError(ErrorCode.invalidCredentials, INCORRECT_CREDENTIALS)
    }
    const deviceCookie = await throttle.loginSucceeded(reservation, user)
    meter.login('success')
    audit.record({
      type: 'login.succeeded',
      outcome: 'success',
      userId: user.id,
      username: user.username,
      ...where(client),
      detail: {
        trustedDevice: reservation.trustedDevice,
        ...(via ? { via } : {}),
        ...(how.amr.join(' ') === 'pwd' ? {} : { amr: how.amr.join(' ') }),
      },
    })
    return { started, user, deviceCookie }
  }

  /**
   * The second step of a sign-in that answered mfa_required: the mfa_token and a code (mfa.ts
   * checks, throttles and spends them), then the same `start` and bookkeeping as a one-step
   * sign-in. A password changed since the first step voids it: `start` refuses the old epoch.
   */
  async function completeSignIn<T>(
    mfaToken: string,
    proof: { otp: string } | { recoveryCode: string },
    client: Client,
    start: (user: VerifiedUser, amr: AuthMethod[]) => Promise<T | undefined>,
    via?: SignInVia,
  ): Promise<SignedIn<T>> {
    const passed = await mfa.complete(
      mfaToken,
      proof,
      { channel: via === 'login_page' ? 'page' : 'token', clientId: null },
      where(client),
    )
    const profile = await users.profile(passed.userId)
    if (!profile) throw new DomainError(ErrorCode.invalidCredentials, INCORRECT_CREDENTIALS)
    const user: VerifiedUser = { id: profile.id, username: profile.username, epoch: passed.epoch }
    const reservation: Reservation = {
      keys: [],
      trustedDevice: passed.device !== null,
      device: passed.device ?? undefined,
    }
    return finish(user, reservation, client, (u) => start(u, passed.amr), { amr: passed.amr, via })
  }

  /**
   * A passwordless sign-in (issue 13 item 2): the passkey's assertion, checked by passkeys.ts, in
   * place of the password and the second factor both (a passkey with user verification is two
   * factors already); then the same `start` and bookkeeping as every sign-in.
   */
  async function passkeySignIn<T>(
    response: Parameters<PasskeyService['signIn']>[0],
    client: Client,
    start: (user: VerifiedUser, amr: AuthMethod[]) => Promise<T | undefined>,
    via?: SignInVia,
  ): Promise<SignedIn<T>> {
    const passed = await passkeys.signIn(response, where(client))
    const reservation: Reservation = { keys: [], trustedDevice: false }
    return finish(passed.user, reservation, client, (u) => start(u, passed.amr), { amr: passed.amr, via })
  }

  return {
    register,
    signIn,
    completeSignIn,
    passkeySignIn,

    /** POST /auth/webauthn/login/verify: a passkey's assertion for a token pair. */
    async passkeyLogin(
      response: Parameters<PasskeyService['signIn']>[0],
      client: Client,
    ): Promise<{ pair: TokenPair; deviceCookie: string }> {
      const { started, deviceCookie } = await passkeySignIn(response, client, (user, amr) =>
        sessions.start(user, client, undefined, amr),
      )
      const { accessToken, expiresIn, refreshToken } = started
      if (refreshToken === undefined)
        throw new Error('a passkey login started a session without a refresh token')
      return { pair: { accessToken, expiresIn, refreshToken }, deviceCookie }
    },

    /** RFC 6749 §4.3: a password login starts a session. Also returns a device cookie for the account. */
    async passwordLogin(
      username: string,
      password: string,
      client: Client,
    ): Promise<{ pair: TokenPair; deviceCookie: string }> {
      const { started, deviceCookie } = await signIn(username, password, client, (user) =>
        sessions.start(user, client),
      )
      // A session without an origin always has a refresh token (SessionOrigin.refresh).
      const { accessToken, expiresIn, refreshToken } = started
      if (refreshToken === undefined)
        throw new Error('a password login started a session without a refresh token')
      return { pair: { accessToken, expiresIn, refreshToken }, deviceCookie }
    },

    /** The password grant's second step (grant_type=urn:authgate:grant-type:mfa-otp / mfa-recovery-code). */
    async completePasswordLogin(
      mfaToken: string,
      proof: { otp: string } | { recoveryCode: string },
      client: Client,
    ): Promise<{ pair: TokenPair; deviceCookie: string }> {
      const { started, deviceCookie } = await completeSignIn(mfaToken, proof, client, (user, amr) =>
        sessions.start(user, client, undefined, amr),
      )
      const { accessToken, expiresIn, refreshToken } = started
      if (refreshToken === undefined)
        throw new Error('a password login started a session without a refresh token')
      return { pair: { accessToken, expiresIn, refreshToken }, deviceCookie }
    },

    /**
     * The sign-up page: registers (throttled as POST /auth/ is), then signs the new user in
     * through signIn like any login, so the sign-in is counted and audited as one.
     */
    async registerAndSignIn<T>(
      username: string,
      password: string,
      client: Client,
      start: (user: VerifiedUser) => Promise<T | undefined>,
    ): Promise<SignedIn<T>> {
      await register(username, password, client)
      return signIn(username, password, client, start, 'signup_page')
    },

    /**
     * RFC 6749 §6. Failed refreshes count against the client IP. `clientId`: the OAuth client the
     * request authenticated, if any (a client's refresh token needs it; the seed's clients send none).
     */
    async refresh(refreshToken: string, client: Client, clientId?: string): Promise<TokenPair> {
      try {
        const { userId, sessionId, ...pair } = await sessions.refresh(refreshToken, clientId)
        meter.refresh('success')
        audit.record({
          type: 'token.refreshed',
          outcome: 'success',
          userId,
          ...where(client),
          detail: { sessionId },
        })
        return pair
      } catch (err) {
        if (!(err instanceof InvalidGrant)) throw err
        try {
          await throttle.refreshFailed(client.ip)
        } catch (refused) {
          if (refused instanceof Throttled) meter.refresh('throttled')
          throw refused
        }
        meter.refresh(err.reuseDetected ? 'reuse_detected' : 'invalid_grant')
        throw err
      }
    },

    /**
     * RFC 7009: ends the session of a refresh token, or of an access token; silent when unknown.
     * An access token without a sid (the seed app's) is voided as a logout with it would.
     * `callerClientId`: the client the request authenticated, null without one. First-party
     * tokens name no client, so an authenticated client revokes none of them (RFC 7009 §2.1, §2.2:
     * silently), and a client's refresh token is revoked only by its client.
     */
    async revoke(token: string, client: Client, callerClientId: string | null = null): Promise<void> {
      const access = tokens.verify(token)
      if (access !== undefined && callerClientId !== null) return
      if (access !== undefined && access.sid === undefined) {
        if (await sessions.endSidless(access)) {
          audit.record({
            type: 'session.revoked',
            outcome: 'success',
            userId: access.id,
            username: access.username,
            ...where(client),
            detail: { sidless: true, jti: access.jti ?? null },
          })
        }
        return
      }
      const ended =
        access?.sid !== undefined
          ? {
              userId: access.id,
              sessionId: access.sid,
              count: await sessions.end(access.id, 'revoked', [access.sid]),
            }
          : await sessions.revokeRefreshToken(token, callerClientId)
      if (ended && ended.count > 0) {
        audit.record({
          type: 'session.revoked',
          outcome: 'success',
          userId: ended.userId,
          ...where(client),
          detail: { sessionId: ended.sessionId },
        })
      }
    },
  }
}

export type AuthService = ReturnType<typeof createAuthService>
