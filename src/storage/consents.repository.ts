// SQL for authgate_consents: a user's remembered consent per client (scopes as JSON text), and
// the list a user sees, with each client's name.
import type { ConsentsRepository, StoredConsent } from '../domain/consents.js'
import { canBeStored, type Db } from './database.js'
import type { ConsentRow } from './tables.js'

const toConsent = (row: ConsentRow): StoredConsent => ({
  userId: Number(row.user_id),
  clientId: row.client_id,
  scopes: JSON.parse(row.scopes) as string[],
  grantedAt: Number(row.granted_at),
})

export function createConsentsRepository(db: Db): ConsentsRepository {
  return {
    async find(userId, clientId) {
      // A client id PostgreSQL cannot hold (U+0000) names no client, rather than failing the query.
      if (!canBeStored(db, clientId)) return undefined
      const row = await db
        .selectFrom('authgate_consents')
        .selectAll()
        .where('user_id', '=', userId)
        .where('client_id', '=', clientId)
        .executeTakeFirst()
      return row && toConsent(row)
    },

    async save(consent) {
      const row = {
        user_id: consent.userId,
        client_id: consent.clientId,
        scopes: JSON.stringify(consent.scopes),
        granted_at: consent.grantedAt,
      }
      // One statement on both dialects: an insert, or the row replaced.
      await db
        .insertInto('authgate_consents')
        .values(row)
        .onConflict((oc) =>
          oc
            .columns(['user_id', 'client_id'])
            .doUpdateSet({ scopes: row.scopes, granted_at: row.granted_at }),
        )
        .execute()
    },

    async list(userId) {
      const rows = await db
        .selectFrom('authgate_consents as c')
        .innerJoin('authgate_oauth_clients as o', 'o.client_id', 'c.client_id')
        .select(['c.user_id', 'c.client_id', 'c.scopes', 'c.granted_at', 'o.name'])
        .where('c.user_id', '=', userId)
        .orderBy('c.granted_at')
        .orderBy('c.client_id')
        .execute()
      return rows.map((row) => ({ ...toConsent(row), clientName: row.name }))
    },

    async delete(userId, clientId) {
      if (!canBeStored(db, clientId)) return false
      const result = await db
        .deleteFrom('authgate_consents')
        .where('user_id', '=', userId)
        .where('client_id', '=', clientId)
        .executeTakeFirst()
      return result.numDeletedRows === 1n
    },
  }
}
