// SQL for the second factor: TOTP enrolments, recovery codes and mfa_tokens, and the conditional
// UPDATEs that make a code and a token count once.
import type {
  CompletionOutcome,
  MfaChannel,
  MfaRepository,
  StoredMfaChallenge,
  StoredTotp,
} from '../domain/mfa.js'
import type { Db } from './database.js'
import type { MfaChallengeRow, TotpRow } from './tables.js'

const orNull = (value: number | null): number | null => (value === null ? null : Number(value))

const toTotp = (row: TotpRow): StoredTotp => ({
  userId: Number(row.user_id),
  secret: row.secret,
  createdAt: Number(row.created_at),
  confirmedAt: orNull(row.confirmed_at),
  lastStep: orNull(row.last_step),
})

const toChallenge = (row: MfaChallengeRow): StoredMfaChallenge => ({
  tokenHash: row.token_hash,
  userId: Number(row.user_id),
  epoch: Number(row.epoch),
  clientId: row.client_id,
  channel: row.channel as MfaChannel,
  device: row.device,
  createdAt: Number(row.created_at),
  expiresAt: Number(row.expires_at),
  consumedAt: orNull(row.consumed_at),
})

/** Thrown inside a transaction to roll it back with an outcome. */
class Unchanged extends Error {
  constructor(readonly outcome: Exclude<CompletionOutcome, 'completed'>) {
    super(outcome)
  }
}

async function rollbackAs(run: () => Promise<void>): Promise<CompletionOutcome> {
  try {
    await run()
    return 'completed'
  } catch (err) {
    if (err instanceof Unchanged) return err.outcome
    throw err
  }
}

export function createMfaRepository(db: Db): MfaRepository {
  /**
   * Spends the challenge inside `trx`: one conditional UPDATE, so of two requests racing with the
   * same token exactly one matches (on PostgreSQL the second waits for the row lock, then re-checks
   * the WHERE against the committed row; SQLite's writers are serialised by BEGIN IMMEDIATE).
   */
  async function spend(trx: Db, tokenHash: string, at: number): Promise<number> {
    const spent = await trx
      .updateTable('authgate_mfa_challenges')
      .set({ consumed_at: at })
      .where('token_hash', '=', tokenHash)
      .where('consumed_at', 'is', null)
      .where('expires_at', '>', at)
      .returning('user_id')
      .executeTakeFirst()
    if (!spent) throw new Unchanged('challenge_spent')
    return Number(spent.user_id)
  }

  return {
    async findTotp(userId) {
      const row = await db
        .selectFrom('authgate_totp')
        .selectAll()
        .where('user_id', '=', userId)
        .executeTakeFirst()
      return row && toTotp(row)
    },

    async beginTotp(userId, sealed, at) {
      return db.transaction().execute(async (trx) => {
        // The confirmed enrolment stays: replacing it takes a removal, proved on its own.
        await trx
          .deleteFrom('authgate_totp')
          .where('user_id', '=', userId)
          .where('confirmed_at', 'is', null)
          .execute()
        const inserted = await trx
          .insertInto('authgate_totp')
          .values({ user_id: userId, secret: sealed, created_at: at, confirmed_at: null, last_step: null })
          .onConflict((oc) => oc.column('user_id').doNothing())
          .returning('user_id')
          .executeTakeFirst()
        // DO NOTHING returns no row: a confirmed enrolment is there.
        return inserted !== undefined
      })
    },

    async confirmTotp(userId, sealed, step, at, codeHashes) {
      return db.transaction().execute(async (trx) => {
        const confirmed = await trx
          .updateTable('authgate_totp')
          .set({ confirmed_at: at, last_step: step })
          .where('user_id', '=', userId)
          .where('secret', '=', sealed)
          .where('confirmed_at', 'is', null)
          .executeTakeFirst()
        if (confirmed.numUpdatedRows === 0n) return false
        await trx.deleteFrom('authgate_recovery_codes').where('user_id', '=', userId).execute()
        await trx
          .insertInto('authgate_recovery_codes')
          .values(
            codeHashes.map((code_hash) => ({ user_id: userId, code_hash, created_at: at, used_at: null })),
          )
          .execute()
        return true
      })
    },

    async acceptStep(userId, step) {
      const result = await db
        .updateTable('authgate_totp')
        .set({ last_step: step })
        .where('user_id', '=', userId)
        .where('confirmed_at', 'is not', null)
        .where((eb) => eb.or([eb('last_step', 'is', null), eb('last_step', '<', step)]))
        .executeTakeFirst()
      return result.numUpdatedRows > 0n
    },

    async removeTotp(userId) {
      return db.transaction().execute(async (trx) => {
        await trx.deleteFrom('authgate_recovery_codes').where('user_id', '=', userId).execute()
        const removed = await trx.deleteFrom('authgate_totp').where('user_id', '=', userId).executeTakeFirst()
        return removed.numDeletedRows > 0n
      })
    },

    async unusedRecoveryCodes(userId) {
      const row = await db
        .selectFrom('authgate_recovery_codes')
        .select((eb) => eb.fn.countAll().as('n'))
        .where('user_id', '=', userId)
        .where('used_at', 'is', null)
        .executeTakeFirstOrThrow()
      return Number(row.n)
    },

    async insertChallenge(c) {
      await db
        .insertInto('authgate_mfa_challenges')
        .values({
          token_hash: c.tokenHash,
          user_id: c.userId,
          epoch: c.epoch,
          client_id: c.clientId,
          channel: c.channel,
          device: c.device,
          created_at: c.createdAt,
          expires_at: c.expiresAt,
          consumed_at: c.consumedAt,
        })
        .execute()
    },

    async findChallenge(tokenHash) {
      const row = await db
        .selectFrom('authgate_mfa_challenges')
        .selectAll()
        .where('token_hash', '=', tokenHash)
        .executeTakeFirst()
      return row && toChallenge(row)
    },

    completeWithTotp(tokenHash, at, step) {
      return rollbackAs(() =>
        db.transaction().execute(async (trx) => {
          const userId = await spend(trx, tokenHash, at)
          // RFC 6238 §5.2: the step must be later than the last accepted one, checked and set in
          // one statement; an enrolment removed meanwhile matches nothing either.
          const advanced = await trx
            .updateTable('authgate_totp')
            .set({ last_step: step })
            .where('user_id', '=', userId)
            .where('confirmed_at', 'is not', null)
            .where((eb) => eb.or([eb('last_step', 'is', null), eb('last_step', '<', step)]))
            .executeTakeFirst()
          if (advanced.numUpdatedRows === 0n) throw new Unchanged('code_spent')
        }),
      )
    },

    completeWithRecoveryCode(tokenHash, at, codeHash) {
      return rollbackAs(() =>
        db.transaction().execute(async (trx) => {
          const userId = await spend(trx, tokenHash, at)
          const burnt = await trx
            .updateTable('authgate_recovery_codes')
            .set({ used_at: at })
            .where('user_id', '=', userId)
            .where('code_hash', '=', codeHash)
            .where('used_at', 'is', null)
            .executeTakeFirst()
          if (burnt.numUpdatedRows === 0n) throw new Unchanged('code_spent')
        }),
      )
    },

    async deleteExpiredChallenges(before) {
      const result = await db
        .deleteFrom('authgate_mfa_challenges')
        .where('expires_at', '<', before)
        .executeTakeFirst()
      return Number(result.numDeletedRows)
    },
  }
}
