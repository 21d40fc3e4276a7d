// A credential epoch on each user, which logins verify against and credential changes bump (issue 9
// item 2), user ids that are never handed out twice (item 3), and the devices whose cookies hold
// their own login allowance (item 5).
import { type Kysely, sql } from 'kysely'
import { dialectOf } from '../database.js'

const EPOCH = 'authgate_credential_epoch'

interface ColumnInfo {
  name: string
  type: string
  notnull: number
  dflt_value: string | null
  pk: number
}

const quoted = (name: string) => `"${name.replaceAll('"', '""')}"`

/**
 * SQLite gives a new row max(rowid) + 1 unless the key is AUTOINCREMENT, so deleting the newest
 * user handed its id to the next one, the seed app's inserts included. The table is rebuilt with
 * AUTOINCREMENT (sqlite_sequence then remembers the highest id ever used), the procedure of
 * https://www.sqlite.org/lang_altertable.html#otheralter: every column, index and trigger is kept,
 * and the seed's SQLAlchemy model (id, username, password) reads and inserts as before. Foreign
 * keys must be off around it (migrate.ts), or dropping the old table would cascade to sessions.
 */
async function rebuildSqliteUsers(db: Kysely<unknown>): Promise<void> {
  const columns = (await sql<ColumnInfo>`PRAGMA table_info(users)`.execute(db)).rows
  const id = columns.find((c) => c.name === 'id')
  if (id?.pk !== 1 || id.type.toUpperCase() !== 'INTEGER' || columns.some((c) => c.pk > 1)) {
    throw new Error('users.id is not an INTEGER PRIMARY KEY: this database is not the seed schema')
  }
  const kept = (
    await sql<{ type: string; sql: string }>`SELECT type, sql FROM sqlite_master
      WHERE tbl_name = 'users' AND type IN ('index', 'trigger') AND sql IS NOT NULL`.execute(db)
  ).rows
  const definitions = columns.map((c) =>
    c.name === 'id'
      ? 'id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT'
      : `${quoted(c.name)} ${c.type}${c.notnull ? ' NOT NULL' : ''}${c.dflt_value === null ? '' : ` DEFAULT ${c.dflt_value}`}`,
  )
  const names = columns.map((c) => quoted(c.name)).join(', ')
  // UNIQUE (username) is the seed's own table constraint; the other indexes are re-created below.
  await sql
    .raw(
      `CREATE TABLE authgate_users_rebuild (${definitions.join(', ')}, ${EPOCH} INTEGER NOT NULL DEFAULT 0, UNIQUE (username))`,
    )
    .execute(db)
  await sql.raw(`INSERT INTO authgate_users_rebuild (${names}) SELECT ${names} FROM users`).execute(db)
  await sql`DROP TABLE users`.execute(db)
  await sql`ALTER TABLE authgate_users_rebuild RENAME TO users`.execute(db)
  for (const k of kept) await sql.raw(k.sql).execute(db)
  // Step 10 of the procedure: the sessions still point at users that exist.
  const broken = (await sql`PRAGMA foreign_key_check`.execute(db)).rows
  if (broken.length > 0)
    throw new Error(`foreign keys broken by the users rebuild: ${JSON.stringify(broken)}`)
}

export async function up(db: Kysely<unknown>): Promise<void> {
  if (dialectOf(db) === 'postgres') {
    // SERIAL's sequence never goes back, so PostgreSQL needs only the epoch. NOT NULL DEFAULT 0:
    // rows the seed app inserts (naming only its own columns) start at epoch 0.
    await sql.raw(`ALTER TABLE users ADD COLUMN ${EPOCH} INTEGER NOT NULL DEFAULT 0`).execute(db)
  } else {
    await rebuildSqliteUsers(db)
  }
  await db.schema
    .createTable('authgate_devices')
    // The random part of a device cookie (domain/throttle.ts); the cookie itself is signed.
    .addColumn('nonce', 'text', (c) => c.primaryKey())
    .addColumn('user_id', 'integer', (c) => c.notNull().references('users.id').onDelete('cascade'))
    // Epoch ms of the device's last successful login: the most recent few keep their allowance.
    .addColumn('last_login_at', 'bigint', (c) => c.notNull())
    .execute()
  await db.schema
    .createIndex('authgate_devices_user_id')
    .on('authgate_devices')
    .columns(['user_id', 'last_login_at'])
    .execute()
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('authgate_devices').execute()
  // SQLite keeps AUTOINCREMENT: ids that are never reused are harmless to the seed app.
  await db.schema.alterTable('users').dropColumn(EPOCH).execute()
}
