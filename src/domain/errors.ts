// The registry of error codes that clients may rely on, and the errors domain code throws.
// The HTTP layer maps each code to a status (http/plugins/errors.ts); messages never carry secrets.

export const ErrorCode = {
  validation: 'validation_error',
  usernameTaken: 'username_taken',
  invalidCredentials: 'invalid_credentials',
  notAuthenticated: 'not_authenticated',
  invalidToken: 'invalid_token',
  invalidGrant: 'invalid_grant',
  invalidRequest: 'invalid_request',
  unsupportedGrantType: 'unsupported_grant_type',
  // RFC 6749 §5.2: the client could not be authenticated; it may not use this grant; the scope asked for.
  invalidClient: 'invalid_client',
  unauthorizedClient: 'unauthorized_client',
  invalidScope: 'invalid_scope',
  // RFC 6750 §3.1: the bearer token lacks a scope the resource needs (UserInfo: openid).
  insufficientScope: 'insufficient_scope',
  wrongPassword: 'wrong_password',
  // The second factor (domain/mfa.ts): the password grant's answer for a user with TOTP, a wrong
  // or reused code, enrolment in the wrong state, and a server without MFA_ENCRYPTION_KEY.
  mfaRequired: 'mfa_required',
  invalidOtp: 'invalid_otp',
  mfaAlreadyEnabled: 'mfa_already_enabled',
  mfaNotEnrolled: 'mfa_not_enrolled',
  mfaUnavailable: 'mfa_unavailable',
  // Passkeys (domain/passkeys.ts): an assertion or attestation refused, a credential registered
  // twice, a PUBLIC_URL without a domain name.
  invalidPasskey: 'invalid_passkey',
  passkeyExists: 'passkey_exists',
  webauthnUnavailable: 'webauthn_unavailable',
  // Email (domain/email.ts): a link that is spent or expired, an address verified elsewhere, and a
  // server that cannot send mail.
  invalidLink: 'invalid_link',
  emailTaken: 'email_taken',
  mailUnavailable: 'mail_unavailable',
  tooManyRequests: 'too_many_requests',
  sessionNotFound: 'session_not_found',
  unsupportedMediaType: 'unsupported_media_type',
  payloadTooLarge: 'payload_too_large',
  headersTooLarge: 'headers_too_large',
  uriTooLong: 'uri_too_long',
  requestTimeout: 'request_timeout',
  notFound: 'not_found',
  methodNotAllowed: 'method_not_allowed',
  badRequest: 'bad_request',
  unavailable: 'service_unavailable',
  internal: 'internal_error',
} as const

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode]

/** One failed field, in FastAPI's shape: where, what was wrong, and a pydantic-style type. */
export interface FieldError {
  loc: (string | number)[]
  msg: string
  type: string
}

export class DomainError extends Error {
  override name = 'DomainError'
  constructor(
    readonly code: ErrorCode,
    readonly detail: string,
  ) {
    super(detail)
  }
}

/**
 * RFC 6749 §5.2 invalid_client: client authentication failed (unknown client, wrong secret, none
 * sent, or a method the client may not use). `basicChallenge`: answer with `WWW-Authenticate:
 * Basic`, which §5.2 requires when the client tried the Authorization header.
 */
export class InvalidClient extends DomainError {
  constructor(
    detail: string,
    readonly basicChallenge: boolean,
  ) {
    super(ErrorCode.invalidClient, detail)
  }
}

/** Input that passed the schema but broke a rule (password policy, username form). */
export class ValidationError extends Error {
  override name = 'ValidationError'
  readonly code = ErrorCode.validation
  constructor(readonly errors: FieldError[]) {
    super(errors.map((e) => e.msg).join('; '))
  }
}
