// Adopts the seed's `users` table in place (or creates it with the seed's exact DDL), and adds
// what AuthGate needs beside it. New columns are nullable, so the seed app keeps inserting rows.
import { type Kysely, sql } from 'kysely'
import { dialectOf } from '../database.js'

export async function up(db: Kysely<unknown>): Promise<void> {
  // The DDL SQLAlchemy emits for the seed's models.User, so a fresh database is interchangeable.
  // On SQLite an INTEGER PRIMARY KEY is the rowid and numbers itself; on PostgreSQL SQLAlchemy
  // emits SERIAL for the same model, so a users table it made there is adopted as it is.
  if (dialectOf(db) === 'postgres') {
    await sql`CREATE TABLE IF NOT EXISTS users (
    id SERIAL NOT NULL,
    username VARCHAR,
    password VARCHAR,
    PRIMARY KEY (id),
    UNIQUE (username)
  )`.execute(db)
  } else {
    await sql`CREATE TABLE IF NOT EXISTS users (
    id INTEGER NOT NULL,
    username VARCHAR,
    password VARCHAR,
    PRIMARY KEY (id),
    UNIQUE (username)
  )`.execute(db)
  }
  await sql`CREATE INDEX IF NOT EXISTS ix_users_id ON users (id)`.execute(db)
  await db.schema.alterTable('users').addColumn('username_canonical', 'text').execute()
  await db.schema.alterTable('users').addColumn('created_at', 'text').execute()
  // Several NULLs are allowed: seed rows whose names collide after canonicalisation keep NULL.
  await db.schema
    .createIndex('users_username_canonical_key')
    .on('users')
    .column('username_canonical')
    .unique()
    .execute()
  await db.schema
    .createTable('authgate_settings')
    .addColumn('key', 'text', (c) => c.primaryKey())
    .addColumn('value', 'text', (c) => c.notNull())
    .execute()
}

export async function down(db: Kysely<unknown>): Promise<void> {
  // The users table and its rows belong to the seed; only our additions go.
  await db.schema.dropTable('authgate_settings').execute()
  await db.schema.dropIndex('users_username_canonical_key').execute()
  await db.schema.alterTable('users').dropColumn('created_at').execute()
  await db.schema.alterTable('users').dropColumn('username_canonical').execute()
}
