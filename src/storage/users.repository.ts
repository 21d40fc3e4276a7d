// SQL for the users table. Functions take the database (or a transaction) first and return rows.
import type { Db } from './database.js'
import { canBeStored, dialectOf, isUniqueViolation } from './database.js'
import type { UserRow } from './tables.js'

export async function findUserByUsername(db: Db, username: string): Promise<UserRow | undefined> {
  if (!canBeStored(db, username)) return undefined
  return db.selectFrom('users').selectAll().where('username', '=', username).executeTakeFirst()
}

export async function findUserByCanonicalName(db: Db, canonical: string): Promise<UserRow | undefined> {
  if (!canBeStored(db, canonical)) return undefined
  return db.selectFrom('users').selectAll().where('username_canonical', '=', canonical).executeTakeFirst()
}

export async function findUserById(db: Db, id: number): Promise<UserRow | undefined> {
  return db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst()
}

/** The user's credential epoch, read FOR SHARE on PostgreSQL (why: credentials.repository.ts); undefined when there is no such user. */
export async function credentialEpoch(trx: Db, userId: number): Promise<number | undefined> {
  const row = await trx
    .selectFrom('users')
    .select('authgate_credential_epoch as epoch')
    .where('id', '=', userId)
    .$if(dialectOf(trx) === 'postgres', (q) => q.forShare())
    .executeTakeFirst()
  return row === undefined ? undefined : Number(row.epoch)
}

/** Inserts a user; returns its id, or undefined when the name or canonical name is taken. */
export async function insertUser(
  db: Db,
  user: { username: string; canonical: string; passwordHash: string; createdAt: string },
): Promise<number | undefined> {
  try {
    const row = await db
      .insertInto('users')
      .values({
        username: user.username,
        username_canonical: user.canonical,
        password: user.passwordHash,
        created_at: user.createdAt,
      })
      .returning('id')
      .executeTakeFirstOrThrow()
    return row.id
  } catch (err) {
    if (isUniqueViolation(err)) return undefined
    throw err
  }
}

/**
 * Compare-and-swap: replaces the hash only if it is still `expected`. True when it did. A rehash of
 * the same password, so the credential epoch stays; changes go through credentials.repository.ts.
 */
export async function replacePasswordHash(
  db: Db,
  id: number,
  expected: string,
  next: string,
): Promise<boolean> {
  const result = await db
    .updateTable('users')
    .set({ password: next })
    .where('id', '=', id)
    .where('password', '=', expected)
    .executeTakeFirst()
  return result.numUpdatedRows === 1n
}

export async function listUsers(db: Db): Promise<UserRow[]> {
  return db.selectFrom('users').selectAll().orderBy('id').execute()
}

export async function listUsersWithoutCanonicalName(db: Db): Promise<Pick<UserRow, 'id' | 'username'>[]> {
  return db
    .selectFrom('users')
    .select(['id', 'username'])
    .where('username_canonical', 'is', null)
    .where('username', 'is not', null)
    .orderBy('id')
    .execute()
}

/** Gives a row its canonical name unless another row holds it already. True when it did. */
export async function claimCanonicalName(db: Db, id: number, canonical: string): Promise<boolean> {
  try {
    const result = await db
      .updateTable('users')
      .set({ username_canonical: canonical })
      .where('id', '=', id)
      .where('username_canonical', 'is', null)
      .executeTakeFirst()
    return result.numUpdatedRows === 1n
  } catch (err) {
    if (isUniqueViolation(err)) return false
    throw err
  }
}

/** The functions above bound to one database, in the shape domain/users.ts asks for. */
export function createUsersRepository(db: Db) {
  return {
    findByUsername: (username: string) => findUserByUsername(db, username),
    findByCanonicalName: (canonical: string) => findUserByCanonicalName(db, canonical),
    findById: (id: number) => findUserById(db, id),
    insert: (user: Parameters<typeof insertUser>[1]) => insertUser(db, user),
    replacePasswordHash: (id: number, expected: string, next: string) =>
      replacePasswordHash(db, id, expected, next),
    list: () => listUsers(db),
    listWithoutCanonicalName: () => listUsersWithoutCanonicalName(db),
    claimCanonicalName: (id: number, canonical: string) => claimCanonicalName(db, id, canonical),
  }
}
