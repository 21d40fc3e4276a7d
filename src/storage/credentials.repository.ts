// SQL for credential changes (a new password, a deleted account) and the credential epoch that
// makes them linearisable against logins (issue 9 item 2).
//
// Every user row has an epoch. A login reads it with the hash, verifies the password (slow), then
// stores its session in a transaction that first reads the epoch again, row-locked, and stores
// nothing unless it is unchanged (sessions.repository.ts insertSession, users.repository.ts credentialEpoch). A change bumps
// the epoch and revokes every live session in ONE transaction, whose first statement is the
// conditional UPDATE of the user row. Why no session made under the old epoch can outlive it:
// - SQLite: every transaction is BEGIN IMMEDIATE, so they run one at a time, on any number of
//   processes sharing the file. A login's transaction runs wholly before the change (its session
//   is committed, and the change's revoke sees it) or wholly after (it reads the new epoch).
// - PostgreSQL, READ COMMITTED: the login reads the row `FOR SHARE`, the change's UPDATE takes it
//   `FOR NO KEY UPDATE`; the two conflict, so one waits for the other to commit. If the login
//   locked first, the UPDATE waits until the login's session is committed, and the change's next
//   statement (a new snapshot under READ COMMITTED) lists it and revokes it. If the change locked
//   first, the login's FOR SHARE waits, then re-reads the row as committed (PostgreSQL re-checks
//   a locked row's latest version): the new epoch, or no row at all after a deletion, so the login
//   stores nothing and answers 401. Without the lock the login would read its own snapshot, see
//   the old epoch, and insert after the change had listed the sessions: the bug this fixes.
// The foreign key's own lock (FOR KEY SHARE) does not conflict with an UPDATE of non-key columns,
// which is why the login takes FOR SHARE itself.
import { sql } from 'kysely'
import type { CredentialsRepository } from '../domain/sessions.js'
import { canBeStored, type Db } from './database.js'
import { insertUserCutoff, revokeSessionsIn } from './sessions.repository.js'

export function createCredentialsRepository(db: Db): CredentialsRepository {
  return {
    async commitCredentialChange(change) {
      const { userId, epoch, passwordHash, keepSession, at, reason, feedExpiresAt, cutoffExpiresAt } = change
      return db.transaction().execute(async (trx) => {
        // First, so it holds the row lock that logins' conditional inserts wait on (see above).
        const bumped = await trx
          .updateTable('users')
          .set({
            authgate_credential_epoch: sql`authgate_credential_epoch + 1`,
            ...(passwordHash === undefined ? {} : { password: passwordHash }),
          })
          .where('id', '=', userId)
          .where('authgate_credential_epoch', '=', epoch)
          .executeTakeFirst()
        if (bumped.numUpdatedRows !== 1n) return undefined
        const revoked = await revokeSessionsIn(
          trx,
          userId,
          { at, reason, feedExpiresAt },
          { except: keepSession },
        )
        // Tokens without a sid (the seed app's) issued before now end too.
        await insertUserCutoff(trx, userId, at, cutoffExpiresAt)
        // No device cookie issued under the old credential keeps an allowance of its own (item 5).
        await trx.deleteFrom('authgate_devices').where('user_id', '=', userId).execute()
        // The revocations are recorded before the cascade removes the session rows they name.
        if (passwordHash === undefined) await trx.deleteFrom('users').where('id', '=', userId).execute()
        return revoked
      })
    },

    // The routes that read or change account data ask this of the database, so no instance acts
    // on a token whose session another instance ended a moment ago.
    async tokenIsCurrent(token, now) {
      if (token.sid === undefined) {
        return (
          (await db.selectFrom('users').select('id').where('id', '=', token.id).executeTakeFirst()) !==
          undefined
        )
      }
      if (!canBeStored(db, token.sid)) return false
      const row = await db
        .selectFrom('authgate_sessions')
        .select('id')
        .where('id', '=', token.sid)
        .where('user_id', '=', token.id)
        .where('revoked_at', 'is', null)
        .where('expires_at', '>', now)
        .executeTakeFirst()
      return row !== undefined
    },
  }
}
