// Row types, one interface per table, as Kysely sees them. Domain types live in domain/.
import type { Generated, Insertable, Selectable } from 'kysely'

export interface UsersTable {
  // The seed's three columns, unchanged: its app keeps reading and writing this table.
  id: Generated<number>
  username: string
  /** A PHC string: `$argon2id$...` for ours, `$2b$...` for the seed's passlib bcrypt. */
  password: string | null
  // Added by AuthGate, nullable so rows the seed app inserts stay valid.
  username_canonical: string | null
  created_at: string | null
  /** Bumped by every password change and by deletion; a login stores a session only at the epoch it verified. */
  authgate_credential_epoch: Generated<number>
}

export interface SettingsTable {
  key: string
  value: string
}

export interface SessionsTable {
  id: string
  user_id: number
  created_at: number
  last_used_at: number
  expires_at: number
  user_agent: string | null
  ip: string | null
  revoked_at: number | null
  revoked_reason: string | null
}

export interface RefreshTokensTable {
  id: string
  session_id: string
  /** SHA-256 of the token, hex; the token itself is never stored. */
  token_hash: string
  created_at: number
  expires_at: number
  spent_at: number | null
  successor: string | null
}

export interface RevocationsTable {
  seq: Generated<number>
  kind: 'session' | 'token' | 'user'
  subject: string
  at: number
  expires_at: number
}

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

export interface SigningKeysTable {
  kid: string
  alg: string
  /** PKCS#8 PEM. */
  private_key: string
  /** The public JWK, JSON. */
  public_jwk: string
  created_at: number
  /** Epoch ms from which it signs; NULL (keys made before issue 10): since created_at. */
  activates_at: number | null
  /** Epoch ms from which it no longer signs; may lie ahead, when a next key is scheduled. */
  retired_at: number | null
  /** Epoch ms from which it no longer verifies either (`keys rotate --now`). */
  revoked_at: number | null
}

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
}

export type UserRow = Selectable<UsersTable>
export type NewUserRow = Insertable<UsersTable>
export type SessionRow = Selectable<SessionsTable>
export type RefreshTokenRow = Selectable<RefreshTokensTable>
export type RevocationRow = Selectable<RevocationsTable>
export type SigningKeyRow = Selectable<SigningKeysTable>
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
