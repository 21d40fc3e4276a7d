// SQL for the users table, as domain/users.ts asks for it.
import type { UsersRepository } from '../domain/users.js'
import type { Db } from './database.js'
import { canBeStored, dialectOf, isUniqueViolation } from './database.js'

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

/** Compare-and-swap on one column of user `id`: sets it to `next` only if it still holds `expected`. */
async function swapColumn(
  db: Db,
  id: number,
  column: 'password' | 'username_canonical',
  expected: string | null,
  next: string,
): Promise<boolean> {
  const result = await db
    .updateTable('users')
    .set(column === 'password' ? { password: next } : { username_canonical: next })
    .where('id', '=', id)
    .where(column, expected === null ? 'is' : '=', expected)
    .executeTakeFirst()
  return result.numUpdatedRows === 1n
}

export function createUsersRepository(db: Db): UsersRepository {
  return {
    async findByUsername(username) {
      if (!canBeStored(db, username)) return undefined
      return db.selectFrom('users').selectAll().where('username', '=', username).executeTakeFirst()
    },

    async findByCanonicalName(canonical) {
      if (!canBeStored(db, canonical)) return undefined
      return db.selectFrom('users').selectAll().where('username_canonical', '=', canonical).executeTakeFirst()
    },

    async findById(id) {
      return db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst()
    },

    async findBySubject(subject) {
      return db.selectFrom('users').selectAll().where('subject', '=', subject).executeTakeFirst()
    },

    async insert(user) {
      try {
        const row = await db
          .insertInto('users')
          .values({
            username: user.username,
            username_canonical: user.canonical,
            password: user.passwordHash,
            created_at: user.createdAt,
            subject: user.subject,
          })
          .returning('id')
          .executeTakeFirstOrThrow()
        return row.id
      } catch (err) {
        if (isUniqueViolation(err)) return undefined
        throw err
      }
    },

    // A rehash of the same password, so the credential epoch stays; changes go through
    // credentials.repository.ts.
    replacePasswordHash: (id, expected, next) => swapColumn(db, id, 'password', expected, next),

    async list() {
      return db.selectFrom('users').selectAll().orderBy('id').execute()
    },

    async listWithoutCanonicalName() {
      return db
        .selectFrom('users')
        .select(['id', 'username'])
        .where('username_canonical', 'is', null)
        .where('username', 'is not', null)
        .orderBy('id')
        .execute()
    },

    async claimCanonicalName(id, canonical) {
      try {
        return await swapColumn(db, id, 'username_canonical', null, canonical)
      } catch (err) {
        if (isUniqueViolation(err)) return false
        throw err
      }
    },
  }
}
