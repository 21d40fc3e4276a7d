// SQL for passkeys: the credentials, and the challenges with the conditional UPDATEs that spend a
// challenge once and move a signature counter only forward.
import type { PasskeysRepository, StoredPasskey } from '../domain/passkeys.js'
import type { Db } from './database.js'
import type { WebAuthnCredentialRow } from './tables.js'

const toPasskey = (row: WebAuthnCredentialRow): StoredPasskey => ({
  id: row.id,
  userId: Number(row.user_id),
  publicKey: row.public_key,
  counter: Number(row.counter),
  transports: JSON.parse(row.transports) as string[],
  deviceType: row.device_type,
  backedUp: Number(row.backed_up) === 1,
  name: row.name,
  createdAt: Number(row.created_at),
  lastUsedAt: row.last_used_at === null ? null : Number(row.last_used_at),
})

export function createPasskeysRepository(db: Db): PasskeysRepository {
  return {
    async insertChallenge(c) {
      await db
        .insertInto('authgate_webauthn_challenges')
        .values({
          challenge: c.challenge,
          purpose: c.purpose,
          user_id: c.userId,
          created_at: c.createdAt,
          expires_at: c.expiresAt,
          consumed_at: null,
        })
        .execute()
    },

    async spendLoginChallenge(challenge, at, expiresAt) {
      // The primary key decides: of racing requests, exactly one inserts (PostgreSQL's unique
      // index; SQLite serialises writers). Kept, spent, until it expires and is pruned.
      const inserted = await db
        .insertInto('authgate_webauthn_challenges')
        .values({
          challenge,
          purpose: 'login',
          user_id: null,
          created_at: at,
          expires_at: expiresAt,
          consumed_at: at,
        })
        .onConflict((oc) => oc.column('challenge').doNothing())
        .executeTakeFirst()
      return (inserted.numInsertedOrUpdatedRows ?? 0n) > 0n
    },

    async consumeChallenge(challenge, purpose, userId, at) {
      // One statement: of two requests with one challenge, exactly one matches (PostgreSQL's row
      // lock re-checks the WHERE; SQLite serialises writers).
      const spent = await db
        .updateTable('authgate_webauthn_challenges')
        .set({ consumed_at: at })
        .where('challenge', '=', challenge)
        .where('purpose', '=', purpose)
        .where((eb) => (userId === null ? eb('user_id', 'is', null) : eb('user_id', '=', userId)))
        .where('consumed_at', 'is', null)
        .where('expires_at', '>', at)
        .executeTakeFirst()
      return spent.numUpdatedRows > 0n
    },

    async insert(p) {
      const inserted = await db
        .insertInto('authgate_webauthn_credentials')
        .values({
          id: p.id,
          user_id: p.userId,
          public_key: p.publicKey,
          counter: p.counter,
          transports: JSON.stringify(p.transports),
          device_type: p.deviceType,
          backed_up: p.backedUp ? 1 : 0,
          name: p.name,
          created_at: p.createdAt,
          last_used_at: p.lastUsedAt,
        })
        .onConflict((oc) => oc.column('id').doNothing())
        .returning('id')
        .executeTakeFirst()
      return inserted !== undefined
    },

    async find(id) {
      const row = await db
        .selectFrom('authgate_webauthn_credentials')
        .selectAll()
        .where('id', '=', id)
        .executeTakeFirst()
      return row && toPasskey(row)
    },

    async list(userId) {
      const rows = await db
        .selectFrom('authgate_webauthn_credentials')
        .selectAll()
        .where('user_id', '=', userId)
        .orderBy('created_at')
        .orderBy('id')
        .execute()
      return rows.map(toPasskey)
    },

    async recordUse(id, counter, backedUp, at) {
      const used = await db
        .updateTable('authgate_webauthn_credentials')
        .set({ counter, backed_up: backedUp ? 1 : 0, last_used_at: at })
        .where('id', '=', id)
        // A counter of 0 stays 0 for an authenticator that keeps none (WebAuthn §6.1.1).
        .where('counter', counter === 0 ? '=' : '<', counter)
        .executeTakeFirst()
      return used.numUpdatedRows > 0n
    },

    async delete(userId, id) {
      const removed = await db
        .deleteFrom('authgate_webauthn_credentials')
        .where('user_id', '=', userId)
        .where('id', '=', id)
        .executeTakeFirst()
      return removed.numDeletedRows > 0n
    },

    async deleteExpiredChallenges(before) {
      const result = await db
        .deleteFrom('authgate_webauthn_challenges')
        .where('expires_at', '<', before)
        .executeTakeFirst()
      return Number(result.numDeletedRows)
    },
  }
}
