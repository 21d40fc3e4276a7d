// SQL for authgate_oauth_clients, the OAuth client registry: rows to the domain's clients and
// back (lists as JSON text, flags as 0/1), the compare-and-swap that makes rotation safe, and the
// deletion that voids the client's access tokens with it.
import type { ClientsRepository, GrantType, StoredClient } from '../domain/clients.js'
import { canBeStored, type Db } from './database.js'
import { insertClientCutoff } from './sessions.repository.js'
import type { OAuthClientRow } from './tables.js'

const strings = (text: string): string[] => JSON.parse(text) as string[]

function toClient(row: OAuthClientRow): StoredClient {
  return {
    clientId: row.client_id,
    name: row.name,
    secretHash: row.secret_hash,
    public: Number(row.public) === 1,
    firstParty: Number(row.first_party) === 1,
    redirectUris: strings(row.redirect_uris),
    postLogoutRedirectUris: strings(row.post_logout_redirect_uris),
    // Written only by the domain, from GRANT_TYPES.
    grantTypes: strings(row.grant_types) as GrantType[],
    scopes: strings(row.scopes),
    createdAt: Number(row.created_at),
    secretRotatedAt: row.secret_rotated_at === null ? null : Number(row.secret_rotated_at),
  }
}

function toRow(client: StoredClient): OAuthClientRow {
  return {
    client_id: client.clientId,
    name: client.name,
    secret_hash: client.secretHash,
    public: client.public ? 1 : 0,
    first_party: client.firstParty ? 1 : 0,
    redirect_uris: JSON.stringify(client.redirectUris),
    post_logout_redirect_uris: JSON.stringify(client.postLogoutRedirectUris),
    grant_types: JSON.stringify(client.grantTypes),
    scopes: JSON.stringify(client.scopes),
    created_at: client.createdAt,
    secret_rotated_at: client.secretRotatedAt,
  }
}

export function createClientsRepository(db: Db): ClientsRepository {
  return {
    async insert(client) {
      await db.insertInto('authgate_oauth_clients').values(toRow(client)).execute()
    },

    async find(clientId) {
      // An id PostgreSQL cannot hold (U+0000) names no client, rather than failing the query.
      if (!canBeStored(db, clientId)) return undefined
      const row = await db
        .selectFrom('authgate_oauth_clients')
        .selectAll()
        .where('client_id', '=', clientId)
        .executeTakeFirst()
      return row && toClient(row)
    },

    async list() {
      const rows = await db
        .selectFrom('authgate_oauth_clients')
        .selectAll()
        .orderBy('created_at')
        .orderBy('client_id')
        .execute()
      return rows.map(toClient)
    },

    async replaceSecretHash(clientId, expected, next, at) {
      // The conditional UPDATE is the whole race: one statement, atomic on both dialects (on
      // PostgreSQL a concurrent one waits for the row lock, then re-checks the WHERE against the
      // committed row, so the second of two rotations from the same hash matches nothing).
      const result = await db
        .updateTable('authgate_oauth_clients')
        .set({ secret_hash: next, secret_rotated_at: at })
        .where('client_id', '=', clientId)
        .where('secret_hash', '=', expected)
        .executeTakeFirst()
      return result.numUpdatedRows === 1n
    },

    // The row and the cutoff of its access tokens in one transaction: no process can see the
    // client gone and its tokens still good, nor a cutoff of a client that still authenticates.
    async delete(clientId, tokensCutoff) {
      if (!canBeStored(db, clientId)) return false
      return db.transaction().execute(async (trx) => {
        const result = await trx
          .deleteFrom('authgate_oauth_clients')
          .where('client_id', '=', clientId)
          .executeTakeFirst()
        if (result.numDeletedRows !== 1n) return false
        await insertClientCutoff(trx, clientId, tokensCutoff.at, tokensCutoff.expires_at)
        return true
      })
    },
  }
}
