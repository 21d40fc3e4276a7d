// SQL for authgate_authorization_codes: rows to the domain's codes and back (amr as JSON text),
// and the conditional UPDATEs that make a code single use and a replay revoke what it issued.
import type { AuthorizationCodesRepository, StoredAuthorizationCode } from '../domain/authorization-codes.js'
import type { Db } from './database.js'
import type { AuthorizationCodeRow } from './tables.js'

const orNull = (value: number | null): number | null => (value === null ? null : Number(value))

function toCode(row: AuthorizationCodeRow): StoredAuthorizationCode {
  return {
    codeHash: row.code_hash,
    clientId: row.client_id,
    userId: Number(row.user_id),
    redirectUri: row.redirect_uri,
    scope: row.scope,
    codeChallenge: row.code_challenge,
    nonce: row.nonce,
    authTime: Number(row.auth_time),
    amr: JSON.parse(row.amr) as string[],
    browserSessionId: row.browser_session_id,
    createdAt: Number(row.created_at),
    expiresAt: Number(row.expires_at),
    consumedAt: orNull(row.consumed_at),
    issuedSessionId: row.issued_session_id,
    replayedAt: orNull(row.replayed_at),
  }
}

function toRow(code: StoredAuthorizationCode): AuthorizationCodeRow {
  return {
    code_hash: code.codeHash,
    client_id: code.clientId,
    user_id: code.userId,
    redirect_uri: code.redirectUri,
    scope: code.scope,
    code_challenge: code.codeChallenge,
    nonce: code.nonce,
    auth_time: code.authTime,
    amr: JSON.stringify(code.amr),
    browser_session_id: code.browserSessionId,
    created_at: code.createdAt,
    expires_at: code.expiresAt,
    consumed_at: code.consumedAt,
    issued_session_id: code.issuedSessionId,
    replayed_at: code.replayedAt,
  }
}

// The code hash is hex (SHA-256 of whatever was presented), so every lookup can be stored as is.
export function createAuthorizationCodesRepository(db: Db): AuthorizationCodesRepository {
  return {
    async insert(code) {
      await db.insertInto('authgate_authorization_codes').values(toRow(code)).execute()
    },

    async consume(codeHash, at) {
      // The conditional UPDATE is the whole race: one statement, atomic on both dialects (on
      // PostgreSQL a concurrent one waits for the row lock, then re-checks the WHERE against the
      // committed row and matches nothing). RETURNING hands the winner the row in the same step.
      const row = await db
        .updateTable('authgate_authorization_codes')
        .set({ consumed_at: at })
        .where('code_hash', '=', codeHash)
        .where('consumed_at', 'is', null)
        .returningAll()
        .executeTakeFirst()
      return row && toCode(row)
    },

    async find(codeHash) {
      const row = await db
        .selectFrom('authgate_authorization_codes')
        .selectAll()
        .where('code_hash', '=', codeHash)
        .executeTakeFirst()
      return row && toCode(row)
    },

    async markReplayed(codeHash, at) {
      // RETURNING reads issued_session_id after the row lock, so an exchange that recorded its
      // session first is seen here; one that records it later sees replayed_at (setIssuedSession).
      const row = await db
        .updateTable('authgate_authorization_codes')
        .set({ replayed_at: at })
        .where('code_hash', '=', codeHash)
        .where('consumed_at', 'is not', null)
        .where('replayed_at', 'is', null)
        .returningAll()
        .executeTakeFirst()
      return row && toCode(row)
    },

    async setIssuedSession(codeHash, sessionId) {
      // The other half of markReplayed's race: RETURNING reads replayed_at after the row lock.
      const row = await db
        .updateTable('authgate_authorization_codes')
        .set({ issued_session_id: sessionId })
        .where('code_hash', '=', codeHash)
        .where('consumed_at', 'is not', null)
        .where('issued_session_id', 'is', null)
        .returningAll()
        .executeTakeFirst()
      return row && toCode(row)
    },

    async deleteExpired(now) {
      const result = await db
        .deleteFrom('authgate_authorization_codes')
        .where('expires_at', '<=', now)
        .executeTakeFirst()
      return Number(result.numDeletedRows)
    },
  }
}
