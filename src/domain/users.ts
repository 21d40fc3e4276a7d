// Registration and password login: the rules, given a repository, a hasher and a clock.
import type { Clock } from '../lib/clock.js'
import { randomId } from '../lib/random.js'
import { DomainError, ErrorCode, ValidationError } from './errors.js'
import { BCRYPT_PREFIX, checkPasswordPolicy, type PasswordHasher, type PasswordPolicy } from './passwords.js'
import { canonicalUsername } from './usernames.js'

/** A row of the users table, as the repository returns it (storage/tables.ts wraps it). */
export interface StoredUser {
  // The seed's three columns, unchanged: its app keeps reading and writing this table.
  id: number
  username: string
  /** A PHC string: `$argon2id$...` for ours, `$2b$...` for the seed's passlib bcrypt. */
  password: string | null
  // Added by AuthGate, nullable so rows the seed app inserts stay valid.
  username_canonical: string | null
  created_at: string | null
  /** Bumped by every change of the credential (see storage/credentials.repository.ts). */
  authgate_credential_epoch: number
  /**
   * The user's subject: the `sub` of ID tokens (OpenID Connect Core §2), 128 random bits in hex,
   * unique and never reassigned, unlike the username (deleted and registered again) or the id.
   * The database fills it in for rows the seed app inserts.
   */
  subject: string
}

/** storage/users.repository.ts. */
export interface UsersRepository {
  findByUsername(username: string): Promise<StoredUser | undefined>
  findByCanonicalName(canonical: string): Promise<StoredUser | undefined>
  findById(id: number): Promise<StoredUser | undefined>
  /** The user whose subject (the `sub` of ID and client access tokens) this is. */
  findBySubject(subject: string): Promise<StoredUser | undefined>
  /** Inserts a user; its id, or undefined when the name or canonical name is taken. */
  insert(user: {
    username: string
    canonical: string
    passwordHash: string
    createdAt: string
    subject: string
  }): Promise<number | undefined>
  /** Compare-and-swap: replaces the hash only if it is still `expected`. True when it did. */
  replacePasswordHash(id: number, expected: string, next: string): Promise<boolean>
  /** Every user, by id. */
  list(): Promise<StoredUser[]>
  listWithoutCanonicalName(): Promise<{ id: number; username: string }[]>
  /** Gives a row its canonical name unless another row holds it already. True when it did. */
  claimCanonicalName(id: number, canonical: string): Promise<boolean>
}

export interface User {
  id: number
  username: string
}

/** A user whose password was just verified, and the credential epoch it was verified at. */
export interface VerifiedUser extends User {
  epoch: number
}

/** What an operator may see of a user: never the hash, only its scheme. */
export interface UserSummary extends User {
  createdAt: string | null
  hashScheme: 'argon2id' | 'bcrypt' | 'other' | 'none'
}

function hashScheme(stored: string | null): UserSummary['hashScheme'] {
  if (stored === null) return 'none'
  if (stored.startsWith('$argon2id$')) return 'argon2id'
  return BCRYPT_PREFIX.test(stored) ? 'bcrypt' : 'other'
}

export interface UserServiceDeps {
  users: UsersRepository
  hasher: PasswordHasher
  policy: PasswordPolicy
  clock: Clock
}

export const USERNAME_TAKEN = 'Username already registered'
export const WRONG_PASSWORD = 'Incorrect password'
export const INCORRECT_CREDENTIALS = 'Incorrect username or password'

export interface UserService {
  register(username: string, password: string): Promise<User>
  /** The user whose exact password this is, or undefined; equally slow for unknown users. */
  authenticate(username: string, password: string): Promise<VerifiedUser | undefined>
  /** Gives canonical names to rows without one (seed rows, rows the seed app added). */
  claimCanonicalNames(): Promise<number>
  list(): Promise<UserSummary[]>
  /** The user found by exact, then canonical, name (for operators), with its current epoch. */
  find(username: string): Promise<VerifiedUser | undefined>
  profile(id: number): Promise<(User & { createdAt: string | null }) | undefined>
  /** Throws wrong_password unless `password` is the user's; the epoch it was verified at. */
  checkPassword(id: number, password: string): Promise<VerifiedUser>
  /**
   * The hash of a new password for `username`, if it meets the policy (else a ValidationError
   * naming `field`). Storing it is a credential change: SessionService.replaceCredential.
   */
  hashNewPassword(username: string, password: string, field: string): Promise<string>
}

/**
 * The user a name means, reading only: the exact name first (seed rows that collide after
 * canonicalisation keep logging in with the name they registered), then the canonical form, so
 * `Alice` finds `alice`. UserService.find also claims a canonical name the seed app left unset.
 */
export async function findUserByName(
  users: Pick<UsersRepository, 'findByUsername' | 'findByCanonicalName'>,
  username: string,
): Promise<StoredUser | undefined> {
  const exact = await users.findByUsername(username)
  if (exact) return exact
  const canonical = canonicalUsername(username)
  return canonical.ok ? users.findByCanonicalName(canonical.canonical) : undefined
}

export async function createUserService({
  users,
  hasher,
  policy,
  clock,
}: UserServiceDeps): Promise<UserService> {
  // OWASP Authentication Cheat Sheet: an unknown user costs one verify too, against a hash made
  // with the current algorithm, so response time does not reveal whether the account exists.
  const dummyHash = await hasher.hash(randomId(32))

  async function findForLogin(username: string): Promise<StoredUser | undefined> {
    const found = await findUserByName(users, username)
    if (found) return found
    // A row the seed app inserted since we started has no canonical name yet: claim, look again.
    const canonical = canonicalUsername(username)
    if (!canonical.ok) return undefined
    return (await claimCanonicalNames(canonical.canonical)) > 0
      ? users.findByCanonicalName(canonical.canonical)
      : undefined
  }

  /** Claims canonical names for rows without one; only `only` when given (writes only on a match). */
  async function claimCanonicalNames(only?: string): Promise<number> {
    let claimed = 0
    for (const row of await users.listWithoutCanonicalName()) {
      const name = canonicalUsername(row.username)
      if (!name.ok || (only !== undefined && name.canonical !== only)) continue
      if (await users.claimCanonicalName(row.id, name.canonical)) claimed++
    }
    return claimed
  }

  return {
    async register(username, password) {
      const name = canonicalUsername(username)
      if (!name.ok)
        throw new ValidationError([{ loc: ['body', 'username'], msg: name.reason, type: 'value_error' }])
      const failures = checkPasswordPolicy(password, policy, username)
      if (failures.length > 0) throw new ValidationError(failures)
      // Rows the seed app inserted meanwhile must hold their canonical names before we check.
      await claimCanonicalNames(name.canonical)
      // Cheap early answer before paying for a hash; the unique indexes decide races.
      if ((await users.findByCanonicalName(name.canonical)) || (await users.findByUsername(username))) {
        throw new DomainError(ErrorCode.usernameTaken, USERNAME_TAKEN)
      }
      const passwordHash = await hasher.hash(password)
      const createdAt = new Date(clock.now()).toISOString()
      // 128 random bits: a subject nobody else ever had (the unique index makes sure of it).
      const subject = randomId(16, 'hex')
      const id = await users.insert({ username, canonical: name.canonical, passwordHash, createdAt, subject })
      if (id === undefined) throw new DomainError(ErrorCode.usernameTaken, USERNAME_TAKEN)
      return { id, username }
    },

    async authenticate(username, password) {
      const user = await findForLogin(username)
      const stored = user?.password ?? null
      const ok = await hasher.verify(stored ?? dummyHash, password)
      if (!user || stored === null || !ok) return undefined
      if (hasher.needsRehash(stored)) {
        // Upgrade bcrypt (or weaker argon2) to the current argon2id. Compare-and-swap: if another
        // login or a password change wrote a newer hash meanwhile, theirs stays.
        await users.replacePasswordHash(user.id, stored, await hasher.hash(password))
      }
      return { id: user.id, username: user.username, epoch: user.authgate_credential_epoch }
    },

    async list() {
      return (await users.list()).map((u) => ({
        id: u.id,
        username: u.username,
        createdAt: u.created_at,
        hashScheme: hashScheme(u.password),
      }))
    },

    async find(username) {
      const user = await findForLogin(username)
      return user && { id: user.id, username: user.username, epoch: user.authgate_credential_epoch }
    },

    claimCanonicalNames: () => claimCanonicalNames(),

    async profile(id) {
      const user = await users.findById(id)
      return user && { id: user.id, username: user.username, createdAt: user.created_at }
    },

    async checkPassword(id, password) {
      const user = await users.findById(id)
      const stored = user?.password ?? null
      const ok = await hasher.verify(stored ?? dummyHash, password)
      // The account may be gone since the token was issued: same answer as a wrong password.
      if (!user || stored === null || !ok) throw new DomainError(ErrorCode.wrongPassword, WRONG_PASSWORD)
      return { id: user.id, username: user.username, epoch: user.authgate_credential_epoch }
    },

    async hashNewPassword(username, password, field) {
      const failures = checkPasswordPolicy(password, policy, username)
      if (failures.length > 0)
        throw new ValidationError(failures.map((f) => ({ ...f, loc: ['body', field] })))
      return hasher.hash(password)
    },
  }
}
