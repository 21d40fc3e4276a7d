// POST /auth/ (sign up) and POST /auth/token (password and refresh grants), where the seed has
// them, and the client credentials grant; POST /auth/revoke (RFC 7009). POST /auth/introspect
// (RFC 7662) is in introspection.ts.
import fastifyCookie, { type CookieSerializeOptions } from '@fastify/cookie'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyRequest } from 'fastify'
import { Type } from 'typebox'
import type { AuthService, Client } from '../../domain/auth.js'
import type { ClientAuthenticator } from '../../domain/client-auth.js'
import type { ClientTokenService } from '../../domain/client-tokens.js'
import type { CodeExchange } from '../../domain/code-exchange.js'
import type { EmailService } from '../../domain/email.js'
import { DomainError, ErrorCode, type FieldError, ValidationError } from '../../domain/errors.js'
import { MfaRequired } from '../../domain/mfa.js'
import type { PasskeyService } from '../../domain/passkeys.js'
import type { TokenPair } from '../../domain/sessions.js'
import type { TokenRevocation } from '../../domain/token-revocation.js'
import { presentedCredentials } from '../client-credentials.js'
import { AUTH_BODY_LIMIT, noStore, requireForm } from '../forms.js'
import { CreateUserRequest, RevokeRequest, TokenRequest, TokenResponse } from '../schemas/auth.js'
import {
  errorAnswer,
  invalidClientAnswer,
  MessageResponse,
  oauthErrorAnswer,
  serviceUnavailable,
  tokenUnauthorizedAnswer,
  tooManyRequests,
  validationErrorRef,
} from '../schemas/common.js'
import { emailRoutes } from './email.js'
import { routeFamily } from './family.js'
import { passkeyLoginRoutes } from './webauthn.js'

const UNSUPPORTED_GRANT =
  'grant_type must be password, authorization_code, refresh_token, client_credentials, ' +
  'urn:authgate:grant-type:mfa-otp or urn:authgate:grant-type:mfa-recovery-code'
// The second step of a password login that answered mfa_required (issue 13). Not registered
// names (RFC 6749 §4.5 lets an extension grant be any absolute URI); ours, under urn:authgate.
const MFA_OTP_GRANT = 'urn:authgate:grant-type:mfa-otp'
const MFA_RECOVERY_GRANT = 'urn:authgate:grant-type:mfa-recovery-code'

export interface AuthRoutesOptions {
  auth: AuthService
  /** Passwordless sign-in with a passkey (routes/webauthn.ts). */
  passkeys: PasskeyService
  /** Email verification and password reset links (routes/email.ts). */
  email: EmailService
  /** Machine clients: client authentication, the client credentials grant, revocation. */
  clients: {
    auth: ClientAuthenticator
    tokens: ClientTokenService
    revocation: TokenRevocation
    /** The authorization_code grant. */
    codes: CodeExchange
  }
  /** Mark the device cookie Secure (the server is reached over https). */
  secureCookies: boolean
  /** The device cookie's SameSite (DEVICE_COOKIE_SAMESITE); Strict when omitted. */
  sameSite?: SameSite
}

export type SameSite = 'Strict' | 'Lax' | 'None'

// The device cookie (see domain/throttle.ts): sent back only to /auth, never readable by scripts.
export const DEVICE_COOKIE = 'authgate_device'
const DEVICE_COOKIE_MAX_AGE = 365 * 86_400

/**
 * The device cookie's attributes, for reply.setCookie. OWASP ASVS 5.0 3.3.1, 3.3.2, 3.3.4: Secure
 * over https, HttpOnly, and SameSite as strict as the deployment allows. Strict by default, which a
 * same-site CORS origin (app.example.com calling auth.example.com) still gets. A CORS origin on
 * another site needs None (DEVICE_COOKIE_SAMESITE=none), which browsers honour only with Secure
 * (RFC 6265bis §4.1.2.7), and, where third-party cookies are blocked (Chromium's default here:
 * "UserPreferences"), only when Partitioned (CHIPS, draft-cutler-httpbis-partitioned-cookies): the
 * browser then keeps one cookie per top-level site, the app's, which is all a device cookie needs.
 * A browser that does not know Partitioned ignores it (RFC 6265 §5.2).
 */
export function deviceCookieOptions(secure: boolean, sameSite: SameSite = 'Strict'): CookieSerializeOptions {
  return {
    maxAge: DEVICE_COOKIE_MAX_AGE,
    path: '/auth',
    httpOnly: true,
    sameSite: sameSite === 'Strict' ? 'strict' : sameSite === 'Lax' ? 'lax' : 'none',
    secure: secure || sameSite === 'None',
    partitioned: sameSite === 'None',
  }
}

export function client(request: FastifyRequest): Client {
  return {
    ip: request.ip,
    userAgent: request.headers['user-agent'] ?? null,
    deviceCookie: request.cookies[DEVICE_COOKIE],
  }
}

const origin = (request: FastifyRequest) => ({
  ip: request.ip,
  userAgent: request.headers['user-agent'] ?? null,
})

const missing = (field: string): FieldError => ({
  loc: ['body', field],
  msg: 'Field required',
  type: 'missing',
})

const routes: FastifyPluginAsyncTypebox<AuthRoutesOptions> = async (
  app,
  { auth, passkeys, email, clients, secureCookies, sameSite },
) => {
  // Registered here, in this plugin's own context: only these routes parse cookies, not GET /.
  await app.register(fastifyCookie)
  const deviceCookieAttributes = deviceCookieOptions(secureCookies, sameSite)
  emailRoutes(app, email, origin)
  passkeyLoginRoutes(app, {
    auth,
    passkeys,
    client,
    setDeviceCookie: (reply, cookie) => reply.setCookie(DEVICE_COOKIE, cookie, deviceCookieAttributes),
  })
  app.post(
    '/auth/',
    {
      bodyLimit: AUTH_BODY_LIMIT,
      schema: {
        tags: ['auth'],
        summary: 'Create User',
        description:
          'Registers a user. The username is unique after Unicode NFKC normalisation and case folding; ' +
          'the password must meet the policy (length, not a common password).',
        body: CreateUserRequest,
        response: {
          201: {
            ...MessageResponse,
            description: 'The user was created.',
            examples: [{ message: 'User created successfully' }],
          },
          409: errorAnswer('The username is taken.', ErrorCode.usernameTaken),
          422: {
            ...validationErrorRef,
            description: 'The body is invalid or the password breaks the policy.',
          },
          429: tooManyRequests('Too many sign-ups from this address (REGISTRATIONS_PER_IP_PER_HOUR).'),
          503: serviceUnavailable,
        },
      },
    },
    async (request, reply) => {
      await auth.register(request.body.username, request.body.password, client(request), request.body.email)
      return reply.code(201).send({ message: 'User created successfully' })
    },
  )

  app.post(
    '/auth/token',
    {
      bodyLimit: AUTH_BODY_LIMIT,
      schema: {
        tags: ['auth'],
        summary: 'Login For Access Token',
        description:
          'OAuth2 token endpoint, as a form. `grant_type=password` (the default, RFC 6749 §4.3) logs in ' +
          'and starts a session; unknown users and wrong passwords get the same answer in the same time. ' +
          '`grant_type=authorization_code` (§4.1.3, OpenID Connect Core §3.1.3) trades a code from ' +
          '/authorize, with its `redirect_uri` and PKCE `code_verifier`, for an access token (RFC 9068, ' +
          '`typ: at+jwt`), an ID token with `openid`, and a refresh token with `offline_access` or for a ' +
          'first-party client; a code works once, and presenting it again revokes what it issued. ' +
          '`grant_type=refresh_token` (§6) trades a refresh token for a new pair; each refresh token ' +
          "works once, and presenting a spent one ends the session; a client's refresh token needs that " +
          'client (authenticated, or named with `client_id` if public). `grant_type=client_credentials` ' +
          '(§4.4) gives a confidential client registered for it an access token for itself (RFC 9068, ' +
          '`typ: at+jwt`, no refresh token); it authenticates with HTTP Basic (`client_secret_basic`) ' +
          'or `client_id` and `client_secret` in the form (`client_secret_post`), not both; a public ' +
          'client sends `client_id` alone (`none`). For an account with TOTP, the password grant ' +
          'answers 401 `mfa_required` with an `mfa_token`; `grant_type=urn:authgate:grant-type:mfa-otp` ' +
          'with `mfa_token` and `otp` (or `urn:authgate:grant-type:mfa-recovery-code` with ' +
          '`recovery_code`) then answers the token pair. A code is accepted once; wrong codes are ' +
          'limited to 10 per account per window, then 429.',
        consumes: ['application/x-www-form-urlencoded'],
        body: TokenRequest,
        response: {
          200: {
            ...TokenResponse,
            description:
              'An access token and a refresh token; for client_credentials, an access token and its ' +
              'scope; for a code, an access token, its scope, and an ID token and refresh token as granted.',
          },
          400: oauthErrorAnswer(
            'A bad refresh token or code, an unsupported grant type, or a client request refused.',
            [ErrorCode.invalidGrant, 'The refresh token is invalid, expired or revoked'],
            [ErrorCode.invalidGrant, 'The authorization code is invalid, expired or already used'],
            [ErrorCode.invalidGrant, 'The code is incorrect'],
            [ErrorCode.invalidGrant, 'The mfa_token is invalid, expired or already used'],
            [ErrorCode.invalidRequest, 'refresh_token is required for grant_type=refresh_token'],
            [ErrorCode.unsupportedGrantType, UNSUPPORTED_GRANT],
            [ErrorCode.unauthorizedClient, 'This client is not registered for grant_type=client_credentials'],
            [ErrorCode.invalidScope, 'The client is not registered for the scope reports:write'],
          ),
          401: tokenUnauthorizedAnswer(
            'Incorrect username or password; a second factor due (`mfa_required`, with an ' +
              '`mfa_token`); or a client grant without a client that authenticates.',
          ),
          415: errorAnswer('The body is not a form.', ErrorCode.unsupportedMediaType),
          422: { ...validationErrorRef, description: 'A form field is missing or invalid.' },
          429: tooManyRequests(
            'Too many failed logins or wrong second-factor codes for this account, or failed logins ' +
              'and refreshes from this address.',
          ),
          503: serviceUnavailable,
        },
      },
      preValidation: requireForm,
    },
    async (request, reply) => {
      const body = request.body
      const grant = body.grant_type ?? 'password'
      let pair: TokenPair
      if (grant === 'password') {
        if (body.username === undefined || body.password === undefined) {
          throw new ValidationError(
            [
              body.username === undefined && missing('username'),
              body.password === undefined && missing('password'),
            ].filter((e): e is FieldError => e !== false),
          )
        }
        let login: Awaited<ReturnType<AuthService['passwordLogin']>>
        try {
          login = await auth.passwordLogin(body.username, body.password, client(request))
        } catch (err) {
          if (!(err instanceof MfaRequired)) throw err
          noStore(reply)
          return reply
            .code(401)
            .send({ detail: err.detail, code: ErrorCode.mfaRequired, mfa_token: err.mfaToken })
        }
        pair = login.pair
        reply.setCookie(DEVICE_COOKIE, login.deviceCookie, deviceCookieAttributes)
      } else if (grant === MFA_OTP_GRANT || grant === MFA_RECOVERY_GRANT) {
        const field = grant === MFA_OTP_GRANT ? 'otp' : 'recovery_code'
        const proof = grant === MFA_OTP_GRANT ? body.otp : body.recovery_code
        if (body.mfa_token === undefined || proof === undefined) {
          throw new DomainError(
            ErrorCode.invalidRequest,
            `mfa_token and ${field} are required for grant_type=${grant}`,
          )
        }
        const login = await auth.completePasswordLogin(
          body.mfa_token,
          grant === MFA_OTP_GRANT ? { otp: proof } : { recoveryCode: proof },
          client(request),
        )
        pair = login.pair
        reply.setCookie(DEVICE_COOKIE, login.deviceCookie, deviceCookieAttributes)
      } else if (grant === 'refresh_token') {
        if (body.refresh_token === undefined) {
          throw new DomainError(
            ErrorCode.invalidRequest,
            'refresh_token is required for grant_type=refresh_token',
          )
        }
        // RFC 6749 §6: a client's refresh token is bound to it; the seed's clients send nothing.
        const caller = await clients.auth.authenticate(
          presentedCredentials(request.headers.authorization, body),
          origin(request),
        )
        pair = await auth.refresh(body.refresh_token, client(request), caller?.client.clientId)
      } else if (grant === 'authorization_code') {
        const issued = await clients.codes.exchange({
          presented: presentedCredentials(request.headers.authorization, body),
          code: body.code,
          redirectUri: body.redirect_uri,
          codeVerifier: body.code_verifier,
          from: origin(request),
        })
        noStore(reply)
        return {
          access_token: issued.accessToken,
          token_type: 'bearer' as const,
          expires_in: issued.expiresIn,
          ...(issued.refreshToken === undefined ? {} : { refresh_token: issued.refreshToken }),
          scope: issued.scope,
          ...(issued.idToken === undefined ? {} : { id_token: issued.idToken }),
        }
      } else if (grant === 'client_credentials') {
        const from = origin(request)
        const caller = await clients.auth.authenticateConfidential(
          presentedCredentials(request.headers.authorization, body),
          from,
        )
        const issued = clients.tokens.grant(caller.client, body.scope, from)
        noStore(reply)
        return {
          access_token: issued.accessToken,
          token_type: 'bearer' as const,
          expires_in: issued.expiresIn,
          scope: issued.scope,
        }
      } else {
        throw new DomainError(ErrorCode.unsupportedGrantType, UNSUPPORTED_GRANT)
      }
      // RFC 6749 §5.1: token responses must not be cached.
      noStore(reply)
      return {
        access_token: pair.accessToken,
        token_type: 'bearer' as const,
        expires_in: pair.expiresIn,
        refresh_token: pair.refreshToken,
      }
    },
  )

  app.post(
    '/auth/revoke',
    {
      bodyLimit: AUTH_BODY_LIMIT,
      schema: {
        tags: ['auth'],
        summary: 'Revoke Token',
        description:
          'RFC 7009 token revocation, as a form. Revoking a refresh token (or an access token) ends its ' +
          'whole session at once. A token the seed app issued ends as at POST /auth/logout (with no `jti`, ' +
          "so do the user's other sessionless tokens issued before now). These tokens of the first-party " +
          'flow need no client authentication. A client access token (client_credentials) is revoked ' +
          'only by its own client, authenticated (HTTP Basic or client_id and client_secret); another ' +
          "client's token is left alone. Answers 200 whether or not the token was known or revoked (§2.2).",
        consumes: ['application/x-www-form-urlencoded'],
        body: RevokeRequest,
        response: {
          200: Type.Object({}, { description: 'Revoked, or there was nothing to revoke.' }),
          400: oauthErrorAnswer('Contradictory client credentials.', [
            ErrorCode.invalidRequest,
            'Authenticate with one method: the Authorization header or client_secret in the body, not both',
          ]),
          401: invalidClientAnswer(
            "Client credentials that fail, or a client's token without its client's credentials.",
          ),
          415: errorAnswer('The body is not a form.', ErrorCode.unsupportedMediaType),
          422: { ...validationErrorRef, description: 'The `token` field is missing.' },
          503: serviceUnavailable,
        },
      },
      preValidation: requireForm,
    },
    async (request) => {
      const { body } = request
      await clients.revocation.revoke(
        body.token,
        presentedCredentials(request.headers.authorization, body),
        client(request),
      )
      return {}
    },
  )
}

// The token and revocation endpoints take forms (RFC 6749 §4.3.2, RFC 7009 §2.1).
export const authRoutes = routeFamily({ name: 'authgate-auth-routes', needs: ['@fastify/formbody'] }, routes)
