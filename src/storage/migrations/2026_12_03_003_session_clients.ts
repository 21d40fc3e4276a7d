// Sessions learn their kind and origin (issue 12 items 3 and 6): AuthGate's own browser (single
// sign-on) sessions live in authgate_sessions beside the token sessions, so every end a session
// has (logout, a credential change, account deletion, the cap, an operator) and the revocation
// feed apply to them unchanged; a token session records the OAuth client it was issued to and
// the browser session whose authorization code led to it. Existing rows are first-party token
// sessions of the password grant: kind 'token', every new column NULL.
import { type Kysely, sql } from 'kysely'

const TABLE = 'authgate_sessions'

// One column per ALTER TABLE: SQLite takes no more.
const COLUMNS = ['client_id', 'browser_session_id', 'kind', 'secret_hash', 'auth_time', 'amr', 'scope']

export async function up(db: Kysely<unknown>): Promise<void> {
  const table = () => db.schema.alterTable(TABLE)
  // No foreign key to the client: its deletion revokes these sessions (into the feed) and the
  // revoked rows keep saying whose they were; a cascade would delete them before they are revoked.
  await table().addColumn('client_id', 'text').execute()
  // The browser session (a row of this table) whose code led here; ending it ends this one too.
  await table().addColumn('browser_session_id', 'text').execute()
  await table()
    .addColumn('kind', 'text', (c) => c.notNull().defaultTo('token').check(sql`kind IN ('token', 'browser')`))
    .execute()
  // Browser sessions: SHA-256 of the cookie value, hex (the cookie itself is never stored).
  await table().addColumn('secret_hash', 'text').execute()
  // Epoch ms of the authentication the session rests on (OIDC Core §2 auth_time), and how it was
  // made (RFC 8176 amr values, a JSON array); the scope granted to the client, space-separated.
  await table().addColumn('auth_time', 'bigint').execute()
  await table().addColumn('amr', 'text').execute()
  await table().addColumn('scope', 'text').execute()
  // A cookie names one session; NULLs (token sessions) are distinct on both dialects.
  await db.schema
    .createIndex('authgate_sessions_secret_hash')
    .on(TABLE)
    .column('secret_hash')
    .unique()
    .execute()
  // What ending a browser session, and deleting a client, look up.
  await db.schema
    .createIndex('authgate_sessions_browser_session_id')
    .on(TABLE)
    .column('browser_session_id')
    .execute()
  await db.schema.createIndex('authgate_sessions_client_id').on(TABLE).column('client_id').execute()
}

export async function down(db: Kysely<unknown>): Promise<void> {
  // SQLite drops no indexed column: the indexes go first.
  for (const index of [
    'authgate_sessions_client_id',
    'authgate_sessions_browser_session_id',
    'authgate_sessions_secret_hash',
  ])
    await db.schema.dropIndex(index).execute()
  // Browser sessions have no meaning without their columns; their rows would read as token sessions.
  await sql`DELETE FROM authgate_sessions WHERE kind = 'browser'`.execute(db)
  for (const column of [...COLUMNS].reverse()) await db.schema.alterTable(TABLE).dropColumn(column).execute()
}
