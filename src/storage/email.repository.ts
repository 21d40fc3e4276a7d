// SQL for email addresses and their links: the conditional UPDATE that spends a link once, and
// the partial unique index that keeps a verified address on one account.
import type { EmailRepository, LinkPurpose, StoredEmail } from '../domain/email.js'
import { type Db, isUniqueViolation } from './database.js'

const toEmail = (row: {
  user_id: number
  email: string
  email_normalized: string
  verified_at: number | null
}): StoredEmail => ({
  userId: Number(row.user_id),
  email: row.email,
  normalized: row.email_normalized,
  verifiedAt: row.verified_at === null ? null : Number(row.verified_at),
})

export function createEmailRepository(db: Db): EmailRepository {
  const live = (tokenHash: string, purpose: LinkPurpose, at: number) =>
    db
      .selectFrom('authgate_email_tokens')
      .select(['user_id', 'email_normalized'])
      .where('token_hash', '=', tokenHash)
      .where('purpose', '=', purpose)
      .where('consumed_at', 'is', null)
      .where('expires_at', '>', at)
  return {
    async setEmail(userId, email, normalized, at) {
      await db
        .insertInto('authgate_emails')
        .values({ user_id: userId, email, email_normalized: normalized, created_at: at, verified_at: null })
        .onConflict((oc) =>
          oc
            .column('user_id')
            .doUpdateSet({ email, email_normalized: normalized, created_at: at, verified_at: null }),
        )
        .execute()
    },

    async findByUser(userId) {
      const row = await db
        .selectFrom('authgate_emails')
        .selectAll()
        .where('user_id', '=', userId)
        .executeTakeFirst()
      return row && toEmail(row)
    },

    async findVerified(normalized) {
      const row = await db
        .selectFrom('authgate_emails')
        .selectAll()
        .where('email_normalized', '=', normalized)
        .where('verified_at', 'is not', null)
        .executeTakeFirst()
      return row && toEmail(row)
    },

    async insertToken(t) {
      await db
        .insertInto('authgate_email_tokens')
        .values({
          token_hash: t.tokenHash,
          user_id: t.userId,
          purpose: t.purpose,
          email_normalized: t.normalized,
          created_at: t.createdAt,
          expires_at: t.expiresAt,
          consumed_at: null,
        })
        .execute()
    },

    async peekToken(tokenHash, purpose, at) {
      const row = await live(tokenHash, purpose, at).executeTakeFirst()
      return row && { userId: Number(row.user_id), normalized: row.email_normalized }
    },

    async consumeToken(tokenHash, purpose, at) {
      // One statement: of two requests with one link, exactly one matches.
      const row = await db
        .updateTable('authgate_email_tokens')
        .set({ consumed_at: at })
        .where('token_hash', '=', tokenHash)
        .where('purpose', '=', purpose)
        .where('consumed_at', 'is', null)
        .where('expires_at', '>', at)
        .returning(['user_id', 'email_normalized'])
        .executeTakeFirst()
      return row && { userId: Number(row.user_id), normalized: row.email_normalized }
    },

    async markVerified(userId, normalized, at) {
      try {
        const done = await db
          .updateTable('authgate_emails')
          .set({ verified_at: at })
          .where('user_id', '=', userId)
          .where('email_normalized', '=', normalized)
          .executeTakeFirst()
        return done.numUpdatedRows > 0n ? 'verified' : 'changed'
      } catch (err) {
        if (isUniqueViolation(err)) return 'taken'
        throw err
      }
    },

    async deleteExpiredTokens(before) {
      const result = await db
        .deleteFrom('authgate_email_tokens')
        .where('expires_at', '<', before)
        .executeTakeFirst()
      return Number(result.numDeletedRows)
    },
  }
}
