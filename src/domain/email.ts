// Email, optional (issue 13 item 3): an address given at sign-up, verified by a link; and password
// reset by a link sent to a verified address.
//
// - Links carry 256 random bits, stored as SHA-256, single use (a compare-and-swap), for 24 h
//   (verification) or 1 h (reset) (OWASP ASVS 5.0 6.4.1, NIST SP 800-63B §6.1.2.3).
// - A reset request answers the same, at once, whether or not the account or address exists: the
//   lookup and the mail happen after the answer (OWASP ASVS 5.0 6.3.8, the Forgot Password cheat
//   sheet: "return a consistent message ... in consistent time").
// - Mail is throttled per account and per client address, silently (the answer stays the same).
// - A reset sets the password under the policy and ends every session (OWASP ASVS 5.0 6.4.2,
//   7.4.3), in the credential change's own transaction.
import type { Clock } from '../lib/clock.js'
import { randomToken, sha256Hex } from '../lib/crypto.js'
import type { AuditLog } from './audit.js'
import { DomainError, ErrorCode, ValidationError } from './errors.js'
import type { SessionService } from './sessions.js'
import type { UserService, VerifiedUser } from './users.js'

export const VERIFY_LINK_TTL_MS = 24 * 60 * 60_000
export const RESET_LINK_TTL_MS = 60 * 60_000
export const INVALID_LINK = 'The link is invalid, expired or already used'
export const EMAIL_TAKEN = 'That email address is verified on another account'
export const MAIL_UNAVAILABLE =
  'Email is not available on this server: SMTP_URL is not set (and NODE_ENV=production)'
/** The one answer to a reset request, whatever came of it. */
export const FORGOT_ANSWER = 'If an account with a verified email matches, a reset link is on its way'
// At most this many mails per account, and per client address, an hour.
const MAILS_PER_ACCOUNT_PER_HOUR = 5
const MAILS_PER_ADDRESS_PER_HOUR = 30
const HOUR_MS = 60 * 60_000
const EMAIL_MAX = 254 // RFC 5321 §4.5.3.1.3 (a path of 256 octets, less the brackets)

/**
 * The form addresses are compared in: Unicode NFKC, trimmed, lower case. Undefined when it is
 * not an address (one @, something on both sides, a dot in the domain, no spaces).
 */
export function normalizeEmail(typed: string): string | undefined {
  const email = typed.normalize('NFKC').trim().toLowerCase()
  if (email.length > EMAIL_MAX || !/^[^\s@]+@[^\s@]+\.[^\s@.]+$/.test(email)) return undefined
  return email
}

export interface Mail {
  to: string
  subject: string
  text: string
}

/** Sends a mail (nodemailer to SMTP_URL; in development without it, the log). */
export interface Mailer {
  send(mail: Mail): Promise<void>
}

export type LinkPurpose = 'verify' | 'reset'

export interface StoredEmail {
  userId: number
  email: string
  normalized: string
  verifiedAt: number | null
}

export interface EmailRepository {
  /** The user's address, replacing an earlier one (and its verification). */
  setEmail(userId: number, email: string, normalized: string, at: number): Promise<void>
  findByUser(userId: number): Promise<StoredEmail | undefined>
  /** The account whose verified address this is. */
  findVerified(normalized: string): Promise<StoredEmail | undefined>
  insertToken(t: {
    tokenHash: string
    userId: number
    purpose: LinkPurpose
    normalized: string
    createdAt: number
    expiresAt: number
  }): Promise<void>
  /** The unspent, unexpired token's user and address, without spending it. */
  peekToken(
    tokenHash: string,
    purpose: LinkPurpose,
    at: number,
  ): Promise<{ userId: number; normalized: string } | undefined>
  /** Spends it (compare-and-swap); its user and address, or undefined when it was not there to spend. */
  consumeToken(
    tokenHash: string,
    purpose: LinkPurpose,
    at: number,
  ): Promise<{ userId: number; normalized: string } | undefined>
  /** Marks the address verified if it is still `normalized`; 'taken' when another account has it verified. */
  markVerified(userId: number, normalized: string, at: number): Promise<'verified' | 'changed' | 'taken'>
  deleteExpiredTokens(before: number): Promise<number>
}

/** Counts mails against a key in an hour-long window: false past `limit` (domain/throttle.ts's store). */
export type MailAllowance = (key: string, limit: number, windowMs: number) => Promise<boolean>

export function createEmailService(deps: {
  repository: EmailRepository
  /** Undefined: the flows are off (production without SMTP_URL). */
  mailer: Mailer | undefined
  users: Pick<UserService, 'find' | 'profile' | 'hashNewPassword'>
  sessions: Pick<SessionService, 'replaceCredential'>
  /** The user at the current credential epoch. */
  userById: (id: number) => Promise<VerifiedUser | undefined>
  allowance: MailAllowance
  audit: AuditLog
  clock: Clock
  /** PUBLIC_URL: the links point at its pages. */
  publicUrl: string
  /** A mail that could not be sent, after the answer went: for the log. */
  onError?: (err: unknown) => void
}) {
  const { repository, mailer, users, sessions, userById, allowance, audit, clock, publicUrl } = deps
  const onError = deps.onError ?? (() => {})
  const requireMailer = (): Mailer => {
    if (!mailer) throw new DomainError(ErrorCode.mailUnavailable, MAIL_UNAVAILABLE)
    return mailer
  }
  const link = (path: string, token: string) => `${publicUrl}${path}?${new URLSearchParams({ token })}`

  async function issue(userId: number, purpose: LinkPurpose, normalized: string): Promise<string> {
    const token = randomToken()
    const now = clock.now()
    await repository.insertToken({
      tokenHash: sha256Hex(token),
      userId,
      purpose,
      normalized,
      createdAt: now,
      expiresAt: now + (purpose === 'verify' ? VERIFY_LINK_TTL_MS : RESET_LINK_TTL_MS),
    })
    return token
  }

  /** Whether a mail to `userId`'s address, asked from `ip`, is within the hourly allowances. */
  const mayMail = async (userId: number, ip: string) =>
    (await allowance(`mail-account:${userId}`, MAILS_PER_ACCOUNT_PER_HOUR, HOUR_MS)) &&
    (await allowance(`mail-ip:${ip}`, MAILS_PER_ADDRESS_PER_HOUR, HOUR_MS))

  async function sendVerification(userId: number, email: string, normalized: string, ip: string) {
    if (!(await mayMail(userId, ip))) return
    const token = await issue(userId, 'verify', normalized)
    await requireMailer().send({
      to: email,
      subject: 'Verify your email address',
      text:
        'Someone, probably you, gave this address to an AuthGate account. To verify it, open this ' +
        `link within 24 hours:\n\n${link('/email/verify', token)}\n\nIf it was not you, ignore this mail.`,
    })
  }

  /** Throws a ValidationError (field `email`) unless `typed` is an address. */
  function check(typed: string): string {
    const normalized = normalizeEmail(typed)
    if (normalized === undefined)
      throw new ValidationError([
        { loc: ['body', 'email'], msg: 'Enter an email address', type: 'value_error' },
      ])
    return normalized
  }

  return {
    available: () => mailer !== undefined,
    check,

    /**
     * Gives the user an (unverified) address and sends its verification link, after the answer:
     * a failed send is logged, not thrown (the account exists either way).
     */
    async attach(userId: number, email: string, from: { ip: string }): Promise<void> {
      requireMailer()
      const normalized = check(email)
      await repository.setEmail(userId, email.trim(), normalized, clock.now())
      void sendVerification(userId, email.trim(), normalized, from.ip).catch(onError)
    },

    /** A verification link's token: the address it was sent to is verified (once). */
    async verify(token: string, from: { ip: string; userAgent: string | null }): Promise<void> {
      const spent = await repository.consumeToken(sha256Hex(token), 'verify', clock.now())
      if (!spent) throw new DomainError(ErrorCode.invalidLink, INVALID_LINK)
      const outcome = await repository.markVerified(spent.userId, spent.normalized, clock.now())
      if (outcome === 'changed') throw new DomainError(ErrorCode.invalidLink, INVALID_LINK)
      if (outcome === 'taken') throw new DomainError(ErrorCode.emailTaken, EMAIL_TAKEN)
      audit.record({ type: 'email.verified', outcome: 'success', userId: spent.userId, ...from })
    },

    /**
     * A reset request by address or username: returns at once, the same for every request; the
     * lookup, the allowance and the mail happen afterwards. An account is mailed only at a
     * verified address.
     */
    forgot(
      who: { email: string } | { username: string },
      from: { ip: string; userAgent: string | null },
    ): void {
      requireMailer()
      void (async () => {
        let target: { userId: number; email: string; normalized: string } | undefined
        if ('email' in who) {
          const normalized = normalizeEmail(who.email)
          const found = normalized === undefined ? undefined : await repository.findVerified(normalized)
          if (found) target = { userId: found.userId, email: found.email, normalized: found.normalized }
        } else {
          const user = await users.find(who.username)
          const found = user ? await repository.findByUser(user.id) : undefined
          if (found?.verifiedAt)
            target = { userId: found.userId, email: found.email, normalized: found.normalized }
        }
        if (!target || !(await mayMail(target.userId, from.ip))) return
        const token = await issue(target.userId, 'reset', target.normalized)
        audit.record({ type: 'password.reset_requested', outcome: 'success', userId: target.userId, ...from })
        await requireMailer().send({
          to: target.email,
          subject: 'Reset your password',
          text:
            'Someone, probably you, asked to reset the password of your AuthGate account. To choose ' +
            `a new one, open this link within an hour:\n\n${link('/password/reset', token)}\n\n` +
            'If it was not you, ignore this mail: your password stays as it is.',
        })
      })().catch(onError)
    },

    /** Whether a reset link's token can still be used (for the page, before the form). */
    async resetLinkUsable(token: string): Promise<boolean> {
      return (await repository.peekToken(sha256Hex(token), 'reset', clock.now())) !== undefined
    },

    /**
     * A reset link's token and the new password: the policy applies (422), the link is spent, the
     * password set and every session ended, all or nothing for the credential change.
     */
    async reset(
      token: string,
      password: string,
      from: { ip: string; userAgent: string | null },
    ): Promise<void> {
      const tokenHash = sha256Hex(token)
      const pending = await repository.peekToken(tokenHash, 'reset', clock.now())
      const user = pending ? await userById(pending.userId) : undefined
      if (!pending || !user) throw new DomainError(ErrorCode.invalidLink, INVALID_LINK)
      const passwordHash = await users.hashNewPassword(user.username, password, 'new_password')
      if (!(await repository.consumeToken(tokenHash, 'reset', clock.now())))
        throw new DomainError(ErrorCode.invalidLink, INVALID_LINK)
      const ended = await sessions.replaceCredential(user, { passwordHash })
      // The credential changed between the check and the change (another reset, a deletion).
      if (ended === undefined) throw new DomainError(ErrorCode.invalidLink, INVALID_LINK)
      audit.record({
        type: 'password.reset_by_email',
        outcome: 'success',
        userId: user.id,
        username: user.username,
        ...from,
        detail: { endedSessions: ended },
      })
    },

    async status(userId: number): Promise<{ email: string; verified: boolean } | undefined> {
      const found = await repository.findByUser(userId)
      return found && { email: found.email, verified: found.verifiedAt !== null }
    },

    prune: (before: number) => repository.deleteExpiredTokens(before),
  }
}

export type EmailService = ReturnType<typeof createEmailService>
