// What the domain counts for operators (logins, refreshes, sign-ups, throttling), as plain calls:
// src/metrics.ts turns them into Prometheus metrics; without METRICS_PORT nothing listens.
import type { EndReason } from './sessions.js'

/** How a password login ended (POST /auth/token, grant_type=password). */
export type LoginResult = 'success' | 'invalid_credentials' | 'throttled' | 'mfa_required'

/**
 * How a refresh ended (RFC 6749 §6): `invalid_grant` is §5.2's error; `reuse_detected` is the
 * invalid_grant of a spent token that came back, which ended its session (RFC 9700 §4.14);
 * `throttled` an invalid one past the client address's failure limit (a 429).
 */
export type RefreshResult = 'success' | 'invalid_grant' | 'reuse_detected' | 'throttled'

/** How a sign-up ended (POST /auth/). */
export type RegistrationResult = 'success' | 'username_taken' | 'validation_error' | 'throttled'

/** The throttle's counters (domain/throttle.ts), named by their key's prefix. */
export type ThrottleScope =
  | 'login-ip'
  | 'login-account'
  | 'login-device'
  | 'register-ip'
  | 'refresh-ip'
  | 'mfa-account'

export interface Meter {
  login(result: LoginResult): void
  refresh(result: RefreshResult): void
  registration(result: RegistrationResult): void
  /** `count` sessions (or sid-less seed tokens) ended, for `reason`. */
  revoked(reason: EndReason, count: number): void
  /** A throttle limit refused an attempt. */
  throttled(scope: ThrottleScope): void
}

export const noMeter: Meter = { login() {}, refresh() {}, registration() {}, revoked() {}, throttled() {} }
