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

export type UsersTable = WithGenerated<StoredUser, 'id' | 'authgate_credential_epoch'>

export interface SettingsTable {
  key: string
  value: string
}

export type SessionsTable = SessionRecord
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
}

export type AuditLogRow = Selectable<AuditLogTable>
