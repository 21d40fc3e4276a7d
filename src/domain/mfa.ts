// The second factor (issue 13 item 1): TOTP enrolment and removal, recovery codes, and the
// mfa_token a password sign-in hands out while the second step is pending. The rules of the codes
// themselves are totp.ts's; this file decides when they are asked for, what a use spends, and what
// is recorded.
//
// - A code is accepted once (RFC 6238 §5.2): accepting it advances the user's last accepted time
//   step in the same statement that spends the mfa_token, a compare-and-swap, so neither a replay
//   nor two requests racing each other get two sign-ins from one code or one mfa_token.
// - Wrong codes are throttled per account (NIST SP 800-63B §5.2.2; OWASP ASVS 5.0 6.3.1): six
//   digits are a million guesses, so at most 10 per window, counted before the code is checked.
// - The secret is sealed under MFA_ENCRYPTION_KEY, which the database does not hold (OWASP ASVS
//   5.0 11.2.2 / 6.5.x: authenticator secrets protected at rest), and bound to its user.
// - Recovery codes are stored as SHA-256 and burnt on use (NIST SP 800-63B §5.1.2; totp.ts).
import { createHash, hkdfSync } from 'node:crypto'
import type { Clock } from '../lib/clock.js'
import { openWithKey, randomToken, sealWithKey, sha256Hex } from '../lib/crypto.js'
import { type AuditLog, failureReason, type Operator, operatorDetail } from './audit.js'
import type { AuthMethod } from './browser-sessions.js'
import { DomainError, ErrorCode } from './errors.js'
import type { Reservation, Throttle } from './throttle.js'
import {
  matchTotp,
  newRecoveryCode,
  newTotpSecret,
  otpauthUri,
  RECOVERY_CODE_COUNT,
  recoveryCodeHash,
} from './totp.js'
import type { User, VerifiedUser } from './users.js'

/**
 * How long an mfa_token may be spent after the password step: long enough to open the app and
 * type a code, short enough that a leaked token is soon worthless (NIST SP 800-63B §7.1: a
 * session secret before full authentication is short-lived).
 */
export const MFA_TOKEN_TTL_MS = 5 * 60_000

export const MFA_REQUIRED = 'Multi-factor authentication required'
export const INVALID_MFA_TOKEN = 'The mfa_token is invalid, expired or already used'
export const WRONG_CODE = 'The code is incorrect'
const USED_CODE = 'The code was already used; wait for the next one'
export const MFA_NOT_CONFIGURED = 'TOTP is not available on this server: MFA_ENCRYPTION_KEY is not set'
export const MFA_ALREADY_ENABLED = 'TOTP is already enabled; remove it first'
export const MFA_NOT_PENDING = 'No TOTP enrolment is waiting to be confirmed'

/** Where an mfa_token is to be spent: the token endpoint's mfa grants, or the login page's second step. */
export type MfaChannel = 'token' | 'page'

/** The password was right and a second factor is due: answer with this token (never logged). */
export class MfaRequired extends DomainError {
  constructor(readonly mfaToken: string) {
    super(ErrorCode.mfaRequired, MFA_REQUIRED)
  }
}

/** A TOTP enrolment as the repository stores it. */
export interface StoredTotp {
  userId: number
  /** `<key id>.<sealed secret>` (TotpSealer). */
  secret: string
  createdAt: number
  confirmedAt: number | null
  lastStep: number | null
}

export interface StoredMfaChallenge {
  tokenHash: string
  userId: number
  /** The credential epoch the password was verified at. */
  epoch: number
  clientId: string | null
  channel: MfaChannel
  device: string | null
  createdAt: number
  expiresAt: number
  consumedAt: number | null
}

/** Why a completion changed nothing: the mfa_token was spent (or expired), or the code's step was. */
export type CompletionOutcome = 'completed' | 'challenge_spent' | 'code_spent'

export interface MfaRepository {
  findTotp(userId: number): Promise<StoredTotp | undefined>
  /** Stores a new unconfirmed enrolment, replacing an unconfirmed one; false when a confirmed one exists. */
  beginTotp(userId: number, sealed: string, at: number): Promise<boolean>
  /**
   * Confirms the enrolment whose sealed secret is `sealed`, if still unconfirmed, accepting `step`,
   * and replaces the user's recovery codes with `codeHashes`, in one transaction; false when it
   * changed nothing (confirmed meanwhile, or replaced by a newer enrolment).
   */
  confirmTotp(
    userId: number,
    sealed: string,
    step: number,
    at: number,
    codeHashes: string[],
  ): Promise<boolean>
  /** Advances the confirmed enrolment's last step to `step` if it is later (compare-and-swap). */
  acceptStep(userId: number, step: number): Promise<boolean>
  /** Deletes the enrolment and the recovery codes; whether there was an enrolment. */
  removeTotp(userId: number): Promise<boolean>
  unusedRecoveryCodes(userId: number): Promise<number>
  insertChallenge(challenge: StoredMfaChallenge): Promise<void>
  findChallenge(tokenHash: string): Promise<StoredMfaChallenge | undefined>
  /**
   * In one transaction: spends the challenge (unspent and unexpired at `at`), then advances the
   * user's confirmed last step to `step` (only if later). Nothing changes unless both do.
   */
  completeWithTotp(tokenHash: string, at: number, step: number): Promise<CompletionOutcome>
  /** The same with a recovery code: spends the challenge and burns the unused code `codeHash`. */
  completeWithRecoveryCode(tokenHash: string, at: number, codeHash: string): Promise<CompletionOutcome>
  /** Deletes the challenges expired before `before`; how many. */
  deleteExpiredChallenges(before: number): Promise<number>
}

/**
 * Seals TOTP secrets under the keys of MFA_ENCRYPTION_KEY: the first seals, every one opens (so
 * a new key can be put first while secrets sealed under the old one still open). Each key is
 * stretched with HKDF-SHA-256 and named by a short fingerprint, stored with what it sealed.
 */
export interface TotpSealer {
  seal(userId: number, secret: string): string
  /** The secret, or undefined when no configured key opens it (or it was altered or moved). */
  open(userId: number, sealed: string): string | undefined
}

export function createTotpSealer(keys: readonly string[]): TotpSealer | undefined {
  if (keys.length === 0) return undefined
  const derived = keys.map((key) => {
    const bytes = Buffer.from(hkdfSync('sha256', key, 'authgate', 'totp-secret', 32))
    return { id: createHash('sha256').update(bytes).digest('hex').slice(0, 8), bytes }
  })
  const current = derived[0] as (typeof derived)[number]
  // The user id is the AAD: a sealed secret copied onto another user's row does not open there.
  const aad = (userId: number) => `totp:${userId}`
  return {
    seal: (userId, secret) => `${current.id}.${sealWithKey(current.bytes, secret, aad(userId))}`,
    open(userId, sealed) {
      const dot = sealed.indexOf('.')
      const key = derived.find((k) => k.id === sealed.slice(0, dot))
      return key && openWithKey(key.bytes, sealed.slice(dot + 1), aad(userId))
    },
  }
}

/** Whom a request acts for: the signed-in user, and where the request came from. */
export interface MfaCaller {
  id: number
  username: string
  ip: string
  userAgent: string | null
  /** The device cookie the client sent, for the password check's throttle (throttle.ts). */
  deviceCookie?: string | undefined
}

/** What completing the second step gives back: whom to sign in, and the device to trust. */
export interface SecondFactorPassed {
  userId: number
  epoch: number
  /** The trusted device the password step came with, kept as the device signing in. */
  device: string | null
  /** RFC 8176 method values: `otp` for a TOTP code, `mfa` for a recovery code (no value of its own). */
  amr: AuthMethod[]
}

export interface MfaStatus {
  totp: 'enabled' | 'pending' | 'off'
  recoveryCodesLeft: number
}

export function createMfaService(deps: {
  repository: MfaRepository
  /** Undefined without MFA_ENCRYPTION_KEY: nobody can enrol, and an enrolled user cannot finish. */
  sealer: TotpSealer | undefined
  throttle: Throttle
  audit: AuditLog
  clock: Clock
  /** The account name authenticator apps show above the code: the issuer's host. */
  issuerName: () => string
  /** The caller's password, checked and throttled as a login checks it (account.ts). */
  reauthenticate: (caller: MfaCaller, password: string) => Promise<VerifiedUser>
  /** For the operator's commands: the user a name means (exact, then canonical). */
  findUser: (username: string) => Promise<User | undefined>
  /** Ends every session of the user (an operator's reset); how many ended. */
  endSessions: (userId: number) => Promise<number>
}) {
  const { repository, sealer, throttle, audit, clock, issuerName, reauthenticate, findUser, endSessions } =
    deps
  const where = (caller: MfaCaller) => ({
    userId: caller.id,
    username: caller.username,
    ip: caller.ip,
    userAgent: caller.userAgent,
  })
  const requireSealer = (): TotpSealer => {
    if (!sealer) throw new DomainError(ErrorCode.mfaUnavailable, MFA_NOT_CONFIGURED)
    return sealer
  }

  /** The confirmed secret of `userId`, opened; undefined when TOTP is not (or no longer) enrolled. */
  async function confirmedSecret(userId: number): Promise<string | undefined> {
    const totp = await repository.findTotp(userId)
    if (!totp || totp.confirmedAt === null) return undefined
    const secret = requireSealer().open(userId, totp.secret)
    if (secret === undefined)
      throw new DomainError(
        ErrorCode.mfaUnavailable,
        'The TOTP secret cannot be opened: MFA_ENCRYPTION_KEY does not hold the key it was sealed with',
      )
    return secret
  }

  /** Counts a code attempt against the account before it is checked: 429 past the limit. */
  const admitCode = (userId: number): Promise<Reservation> => throttle.beginSecondFactor(userId)

  return {
    /** Whether a password sign-in of `userId` needs a second step: a confirmed TOTP enrolment. */
    async required(userId: number): Promise<boolean> {
      const totp = await repository.findTotp(userId)
      return totp !== undefined && totp.confirmedAt !== null
    },

    /** A new mfa_token for a user whose password was just verified; only its hash is kept. */
    async challenge(
      user: VerifiedUser,
      binding: { channel: MfaChannel; clientId: string | null; device: string | null },
    ): Promise<string> {
      const token = randomToken()
      const now = clock.now()
      await repository.insertChallenge({
        tokenHash: sha256Hex(token),
        userId: user.id,
        epoch: user.epoch,
        clientId: binding.clientId,
        channel: binding.channel,
        device: binding.device,
        createdAt: now,
        expiresAt: now + MFA_TOKEN_TTL_MS,
        consumedAt: null,
      })
      return token
    },

    /**
     * The second step: `mfaToken` from the password step, spent with a TOTP code (`otp`) or a
     * recovery code. The token must be unspent, unexpired, and meant for this channel and client;
     * whatever fails is invalid_grant, and a wrong code counts against the account.
     */
    async complete(
      mfaToken: string,
      proof: { otp: string } | { recoveryCode: string },
      binding: { channel: MfaChannel; clientId: string | null },
      from: { ip: string; userAgent: string | null },
    ): Promise<SecondFactorPassed> {
      const tokenHash = sha256Hex(mfaToken)
      const now = clock.now()
      const challenge = await repository.findChallenge(tokenHash)
      if (
        !challenge ||
        challenge.consumedAt !== null ||
        challenge.expiresAt <= now ||
        challenge.channel !== binding.channel ||
        challenge.clientId !== binding.clientId
      )
        throw new DomainError(ErrorCode.invalidGrant, INVALID_MFA_TOKEN)
      const { userId } = challenge
      const reservation = await admitCode(userId).catch((err: unknown) => {
        audit.recordRepeated(
          { type: 'mfa.throttled', outcome: 'failure', userId, ...from },
          { key: `mfa:${userId}`, keepFirst: 1 },
        )
        throw err
      })
      const failed = (reason: string, detail: string): never => {
        audit.recordRepeated(
          { type: 'mfa.failed', outcome: 'failure', userId, ...from, detail: { reason } },
          { key: `mfa:${userId}`, keepFirst: 5 },
        )
        throw new DomainError(ErrorCode.invalidGrant, detail)
      }
      let outcome: CompletionOutcome
      let amr: AuthMethod[]
      if ('otp' in proof) {
        const secret = await confirmedSecret(userId)
        if (secret === undefined) return failed('not_enrolled', INVALID_MFA_TOKEN)
        const step = matchTotp(secret, proof.otp, now)
        if (step === undefined) return failed('wrong_code', WRONG_CODE)
        outcome = await repository.completeWithTotp(tokenHash, now, step)
        amr = ['pwd', 'otp']
      } else {
        const hash = recoveryCodeHash(proof.recoveryCode)
        if (hash === undefined) return failed('wrong_recovery_code', WRONG_CODE)
        outcome = await repository.completeWithRecoveryCode(tokenHash, now, hash)
        if (outcome === 'code_spent') return failed('wrong_recovery_code', WRONG_CODE)
        amr = ['pwd', 'mfa']
      }
      if (outcome === 'challenge_spent') {
        // Lost a race for the same token: not a guess.
        await throttle.secondFactorPassed(reservation)
        throw new DomainError(ErrorCode.invalidGrant, INVALID_MFA_TOKEN)
      }
      if (outcome === 'code_spent') return failed('replayed_code', USED_CODE)
      await throttle.secondFactorPassed(reservation)
      if ('recoveryCode' in proof) {
        audit.record({
          type: 'mfa.recovery_code_used',
          outcome: 'success',
          userId,
          ...from,
          detail: { left: await repository.unusedRecoveryCodes(userId) },
        })
      }
      return { userId, epoch: challenge.epoch, device: challenge.device, amr }
    },

    /** Starts (or restarts) an enrolment: a new secret, shown once, active only once confirmed. */
    async beginTotp(caller: MfaCaller, password: string): Promise<{ secret: string; otpauthUri: string }> {
      const seal = requireSealer()
      await reauthenticate(caller, password)
      const secret = newTotpSecret()
      if (!(await repository.beginTotp(caller.id, seal.seal(caller.id, secret), clock.now())))
        throw new DomainError(ErrorCode.mfaAlreadyEnabled, MFA_ALREADY_ENABLED)
      audit.record({ type: 'mfa.totp_enrolment_started', outcome: 'success', ...where(caller) })
      return {
        secret,
        otpauthUri: otpauthUri({ secret, issuer: issuerName(), account: caller.username }),
      }
    },

    /** The unconfirmed enrolment's secret and URI again (the account page, after a wrong first code). */
    async pending(caller: MfaCaller): Promise<{ secret: string; otpauthUri: string } | undefined> {
      const totp = await repository.findTotp(caller.id)
      if (!totp || totp.confirmedAt !== null) return undefined
      const secret = requireSealer().open(caller.id, totp.secret)
      return secret === undefined
        ? undefined
        : { secret, otpauthUri: otpauthUri({ secret, issuer: issuerName(), account: caller.username }) }
    },

    /** The first code from the app turns the enrolment on; answers the recovery codes, shown once. */
    async confirmTotp(caller: MfaCaller, code: string): Promise<string[]> {
      const seal = requireSealer()
      const totp = await repository.findTotp(caller.id)
      if (!totp || totp.confirmedAt !== null) throw new DomainError(ErrorCode.mfaNotEnrolled, MFA_NOT_PENDING)
      const reservation = await admitCode(caller.id)
      const secret = seal.open(caller.id, totp.secret)
      const step = secret === undefined ? undefined : matchTotp(secret, code, clock.now())
      if (step === undefined) {
        audit.record({
          type: 'mfa.failed',
          outcome: 'failure',
          ...where(caller),
          detail: { reason: 'wrong_code' },
        })
        throw new DomainError(ErrorCode.invalidOtp, WRONG_CODE)
      }
      const codes = Array.from({ length: RECOVERY_CODE_COUNT }, newRecoveryCode)
      const hashes = codes.map((c) => recoveryCodeHash(c) as string)
      if (!(await repository.confirmTotp(caller.id, totp.secret, step, clock.now(), hashes)))
        throw new DomainError(ErrorCode.mfaNotEnrolled, MFA_NOT_PENDING)
      await throttle.secondFactorPassed(reservation)
      audit.record({ type: 'mfa.totp_enabled', outcome: 'success', ...where(caller) })
      return codes
    },

    /** Removes TOTP and the recovery codes, proved with the password or a current code. */
    async removeTotp(caller: MfaCaller, proof: { password: string } | { code: string }): Promise<void> {
      if ('password' in proof) await reauthenticate(caller, proof.password)
      else {
        const reservation = await admitCode(caller.id)
        const secret = await confirmedSecret(caller.id)
        const step = secret === undefined ? undefined : matchTotp(secret, proof.code, clock.now())
        if (step === undefined || !(await repository.acceptStep(caller.id, step))) {
          audit.record({
            type: 'mfa.failed',
            outcome: 'failure',
            ...where(caller),
            detail: { reason: step === undefined ? 'wrong_code' : 'replayed_code' },
          })
          throw new DomainError(ErrorCode.invalidOtp, step === undefined ? WRONG_CODE : USED_CODE)
        }
        await throttle.secondFactorPassed(reservation)
      }
      if (!(await repository.removeTotp(caller.id)))
        throw new DomainError(ErrorCode.mfaNotEnrolled, 'TOTP is not enabled')
      audit.record({ type: 'mfa.totp_removed', outcome: 'success', ...where(caller) })
    },

    async status(userId: number): Promise<MfaStatus> {
      const totp = await repository.findTotp(userId)
      return {
        totp: !totp ? 'off' : totp.confirmedAt === null ? 'pending' : 'enabled',
        recoveryCodesLeft: totp?.confirmedAt ? await repository.unusedRecoveryCodes(userId) : 0,
      }
    },

    /**
     * An operator's `authgate user mfa-reset`: removes the user's TOTP and recovery codes and ends
     * every session (the factor may have been stolen along with them); audited. The user, or
     * undefined when there is none by that name.
     */
    async resetByOperator(
      operator: Operator,
      username: string,
    ): Promise<{ user: User; removed: boolean; endedSessions: number } | undefined> {
      const failed = (reason: string) =>
        audit.record({
          type: 'mfa.reset',
          outcome: 'failure',
          username,
          detail: { ...operatorDetail(operator), reason },
        })
      try {
        const user = await findUser(username)
        if (!user) {
          failed('no_such_user')
          return undefined
        }
        const removed = await repository.removeTotp(user.id)
        const endedSessions = await endSessions(user.id)
        audit.record({
          type: 'mfa.reset',
          outcome: 'success',
          userId: user.id,
          username: user.username,
          detail: { ...operatorDetail(operator), removed, endedSessions },
        })
        return { user, removed, endedSessions }
      } catch (err) {
        failed(failureReason(err))
        throw err
      }
    },

    /** Forgets the mfa_tokens that expired before `before`. */
    prune: (before: number) => repository.deleteExpiredChallenges(before),
  }
}

export type MfaService = ReturnType<typeof createMfaService>
