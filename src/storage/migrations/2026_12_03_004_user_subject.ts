// Issue 12 item 4: a stable subject for each user, the `sub` of ID tokens (OpenID Connect Core §2:
// "never reassigned"). Not the username (an account can be deleted and the name registered again)
// nor the id (SQLite reused ids before 2026_12_02_002, and a restored backup can too): 128 random
// bits, hex, unique. Our own inserts bring one (domain/users.ts); a row the seed app inserts
// (naming only its own columns) gets one from the database: a default on PostgreSQL, a trigger on
// SQLite (whose ALTER TABLE cannot add a column with a non-constant default).
import { type Kysely, sql } from 'kysely'
import { dialectOf } from '../database.js'

export async function up(db: Kysely<unknown>): Promise<void> {
  if (dialectOf(db) === 'postgres') {
    // A volatile default is evaluated for each existing row, so every one gets its own.
    await sql`ALTER TABLE users ADD COLUMN subject text NOT NULL
      DEFAULT replace(gen_random_uuid()::text, '-', '')`.execute(db)
  } else {
    await sql`ALTER TABLE users ADD COLUMN subject TEXT`.execute(db)
    await sql`UPDATE users SET subject = lower(hex(randomblob(16))) WHERE subject IS NULL`.execute(db)
    // In the inserting statement itself: no reader ever sees the row without its subject.
    await sql`CREATE TRIGGER users_subject_default AFTER INSERT ON users
      FOR EACH ROW WHEN NEW.subject IS NULL
      BEGIN UPDATE users SET subject = lower(hex(randomblob(16))) WHERE id = NEW.id; END`.execute(db)
  }
  await db.schema.createIndex('users_subject_key').on('users').column('subject').unique().execute()
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropIndex('users_subject_key').execute()
  if (dialectOf(db) !== 'postgres') await sql`DROP TRIGGER users_subject_default`.execute(db)
  await db.schema.alterTable('users').dropColumn('subject').execute()
}
