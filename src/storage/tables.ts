// Row types, one per table, as Kysely sees them. A row the domain reads whole is declared there
// (the domain imports no storage) and only wrapped here: a column the database fills in is
// Generated, so an insert may leave it out.
import type { Generated, Selectable } from 'kysely'
import type { SigningKeyRecord } from '../domain/keys.js'
import type { RevocationEntry } from '../domain/revocations.js'
import type { RefreshTokenRecord, SessionRecord } from '../domain/sessions.js'
import type { StoredUser } from '../domain/users.js'

/** `T` with the columns `K` filled in by the database (an identity or a default). */
type WithGenerated<T, K extends keyof T> = Omit<T, K> & { [P in K]: Generated<T[P]> }

// subject: the seed app's inserts leave it to the database (migration 2026_12_03_004).
export type UsersTable = WithGenerated<StoredUser, 'id' | 'authgate_credential_epoch' | 'subject'>

export interface SettingsTable {
  key: string
  value: string
}

// kind: 'token' unless said (rows from before 2026_12_03_003 are token sessions).
export type SessionsTable = WithGenerated<SessionRecord, 'kind'>
export type RefreshTokensTable = RefreshTokenRecord
export type RevocationsTable = WithGenerated<RevocationEntry, 'seq'>

export interface ThrottleTable {
  key: string
  window_start: number
  count: number
}

export interface DevicesTable {
  nonce: string
  user_id: number
  /** Epoch ms. */
  last_login_at: number
}

export type SigningKeysTable = SigningKeyRecord

export interface AuditLogTable {
  seq: Generated<number>
  /** Epoch ms. */
  at: number
  type: string
  outcome: string
  /** No foreign key: entries outlive deleted users. */
  user_id: number | null
  username: string | null
  ip: string | null
  user_agent: string | null
  /** Canonical JSON text. */
  detail: string | null
  prev_hash: string
  hash: string
}

export interface Database {
  users: UsersTable
  authgate_settings: SettingsTable
  authgate_sessions: SessionsTable
  authgate_refresh_tokens: RefreshTokensTable
  authgate_revocations: RevocationsTable
  authgate_signing_keys: SigningKeysTable
  authgate_throttle: ThrottleTable
  authgate_devices: DevicesTable
  authgate_audit_log: AuditLogTable
  authgate_oauth_clients: OAuthClientsTable
  authgate_authorization_codes: AuthorizationCodesTable
  authgate_consents: ConsentsTable
  authgate_totp: TotpTable
  authgate_recovery_codes: RecoveryCodesTable
  authgate_mfa_challenges: MfaChallengesTable
  authgate_webauthn_credentials: WebAuthnCredentialsTable
  authgate_webauthn_challenges: WebAuthnChallengesTable
  authgate_emails: EmailsTable
  authgate_email_tokens: EmailTokensTable
}

export type AuditLogRow = Selectable<AuditLogTable>

export interface OAuthClientsTable {
  client_id: string
  name: string
  /** SHA-256 of the client secret, hex; NULL for a public client. */
  secret_hash: string | null
  /** 0 or 1, on both dialects. */
  public: number
  first_party: number
  /** JSON arrays of strings. */
  redirect_uris: string
  post_logout_redirect_uris: string
  grant_types: string
  scopes: string
  /** Epoch ms. */
  created_at: number
  secret_rotated_at: number | null
}

export type OAuthClientRow = Selectable<OAuthClientsTable>

export interface AuthorizationCodesTable {
  /** SHA-256 of the code, hex; the code itself is never stored. */
  code_hash: string
  client_id: string
  user_id: number
  redirect_uri: string
  /** Space-separated scope tokens. */
  scope: string
  /** BASE64URL(SHA-256(code_verifier)): S256 only. */
  code_challenge: string
  nonce: string | null
  /** Epoch ms. */
  auth_time: number
  /** A JSON array of strings. */
  amr: string
  browser_session_id: string | null
  /** Epoch ms. */
  created_at: number
  expires_at: number
  consumed_at: number | null
  issued_session_id: string | null
  replayed_at: number | null
}

export type AuthorizationCodeRow = Selectable<AuthorizationCodesTable>

export interface ConsentsTable {
  user_id: number
  client_id: string
  /** A JSON array of scope tokens. */
  scopes: string
  /** Epoch ms. */
  granted_at: number
}

export type ConsentRow = Selectable<ConsentsTable>

export interface TotpTable {
  user_id: number
  /** `<key id>.<sealed secret>` (domain/mfa.ts). */
  secret: string
  /** Epoch ms. */
  created_at: number
  confirmed_at: number | null
  /** RFC 6238 time step of the last accepted code. */
  last_step: number | null
}

export type TotpRow = Selectable<TotpTable>

export interface RecoveryCodesTable {
  user_id: number
  /** SHA-256 of the normalised code, hex. */
  code_hash: string
  /** Epoch ms. */
  created_at: number
  used_at: number | null
}

export interface MfaChallengesTable {
  /** SHA-256 of the mfa_token, hex. */
  token_hash: string
  user_id: number
  epoch: number
  client_id: string | null
  /** 'token' (the token endpoint) or 'page' (the login page). */
  channel: string
  device: string | null
  /** Epoch ms. */
  created_at: number
  expires_at: number
  consumed_at: number | null
}

export type MfaChallengeRow = Selectable<MfaChallengesTable>

export interface WebAuthnCredentialsTable {
  /** base64url credential ID. */
  id: string
  user_id: number
  /** base64url COSE public key. */
  public_key: string
  counter: number
  /** JSON array of strings. */
  transports: string
  device_type: string
  /** 0 or 1. */
  backed_up: number
  name: string
  /** Epoch ms. */
  created_at: number
  last_used_at: number | null
}

export type WebAuthnCredentialRow = Selectable<WebAuthnCredentialsTable>

export interface WebAuthnChallengesTable {
  challenge: string
  /** 'register' or 'login'. */
  purpose: string
  user_id: number | null
  /** Epoch ms. */
  created_at: number
  expires_at: number
  consumed_at: number | null
}

export interface EmailsTable {
  user_id: number
  email: string
  email_normalized: string
  /** Epoch ms. */
  created_at: number
  verified_at: number | null
}

export interface EmailTokensTable {
  /** SHA-256 of the token, hex. */
  token_hash: string
  user_id: number
  /** 'verify' or 'reset'. */
  purpose: string
  email_normalized: string
  /** Epoch ms. */
  created_at: number
  expires_at: number
  consumed_at: number | null
}
