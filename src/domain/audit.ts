// The audit trail's interface: what happened, to whom, from where, and how it ended. Never a secret.
// The tamper-evident, hash-chained store behind it lives in storage/; see docs/security.md.
import { DomainError, ValidationError } from './errors.js'

export type AuditEventType =
  | 'user.registered'
  | 'login.succeeded'
  | 'login.failed'
  | 'login.throttled'
  | 'register.throttled'
  | 'token.refreshed'
  | 'token.reuse_detected'
  | 'session.logged_out'
  | 'session.revoked'
  | 'password.changed'
  | 'account.deleted'
  | 'key.rotated'
  // An operator's actions (the CLI), each with the operator in its detail (OperatorDetail).
  | 'user.created'
  | 'password.reset'
  | 'user.deleted'
  | 'user.unlocked'
  | 'database.migrated'
  | 'audit.pruned'
  // The OAuth client registry (domain/clients.ts), also an operator's: never the secret itself.
  | 'client.created'
  | 'client.secret_rotated'
  | 'client.deleted'
  // A used authorization code presented again; what its first use issued is revoked (RFC 6749 §4.1.2).
  | 'authorization_code.replayed'
  // A code traded for tokens at the token endpoint: client, session and scope (domain/code-exchange.ts).
  | 'authorization_code.exchanged'
  // A user's "allow" on the consent page, and its withdrawal (domain/consents.ts): client and scope.
  | 'consent.granted'
  | 'consent.withdrawn'
  // Machine clients (domain/client-auth.ts, domain/client-tokens.ts): never a secret or a token.
  | 'client.authentication_failed'
  | 'client.token_issued'
  | 'client.token_revoked'
  // The second factor (domain/mfa.ts): never a secret, a code or an mfa_token.
  | 'login.mfa_required'
  | 'mfa.totp_enrolment_started'
  | 'mfa.totp_enabled'
  | 'mfa.totp_removed'
  | 'mfa.recovery_code_used'
  | 'mfa.failed'
  | 'mfa.throttled'
  // An operator's `authgate user mfa-reset`.
  | 'mfa.reset'
  // Passkeys (domain/passkeys.ts): never a key, a challenge or an assertion.
  | 'webauthn.registered'
  | 'webauthn.removed'
  | 'webauthn.failed'
  | 'webauthn.counter_regressed'
  // Email (domain/email.ts): never an address's link or token.
  | 'email.verified'
  | 'password.reset_requested'
  | 'password.reset_by_email'

export interface AuditEvent {
  type: AuditEventType
  outcome: 'success' | 'failure'
  userId?: number | undefined
  /** The name as typed (login attempts) or as registered; never a password or token. */
  username?: string | undefined
  ip?: string | null | undefined
  userAgent?: string | null | undefined
  /** Small, non-secret facts: a session id, a reason, a key id. */
  detail?: Record<string, string | number | boolean | null> | undefined
}

/**
 * Who did an operator's action: the tool (`cli`) and the account it ran under on the host. Goes
 * into the event's detail as `actor` and `osUser` (OWASP ASVS 5.0 16.2.1: each entry says who).
 */
export interface Operator {
  actor: 'cli'
  osUser: string
}

export const operatorDetail = (operator: Operator) => ({ actor: operator.actor, osUser: operator.osUser })

/** What an operator's failed action records: the error's code, never its message (it may echo input). */
export function failureReason(err: unknown): string {
  if (err instanceof ValidationError || err instanceof DomainError) return err.code
  return 'error'
}

/** What repeated events are counted per (besides their type), and how many are kept whole. */
export interface RepeatedEventGroup {
  /** The client address: what bounds the log's growth per attacker. */
  key: string
  /** Recorded whole per key and window before the rest are only counted; default 0. */
  keepFirst?: number
}

export interface AuditLog {
  /**
   * Records an event. Never throws and never makes the caller wait for the write to succeed:
   * a failed write is reported by the implementation (logged), and the request still answers.
   */
  record(event: AuditEvent): void
  /**
   * Records an event a client can repeat at will (a throttled or failed attempt) within a bound:
   * per type, group key and window, the first `keepFirst` as they are, the rest as one summary
   * entry (detail `summary`, `count`, `firstAt`, `lastAt`), written when the window ends or on
   * flush. Never throws either.
   */
  recordRepeated(event: AuditEvent, group: RepeatedEventGroup): void
}

export const noAudit: AuditLog = { record() {}, recordRepeated() {} }
