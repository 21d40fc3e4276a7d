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
}

export interface SettingsTable {
  key: string
  value: string
}

export interface Database {
  users: UsersTable
  authgate_settings: SettingsTable
}

export type UserRow = Selectable<UsersTable>
export type NewUserRow = Insertable<UsersTable>
