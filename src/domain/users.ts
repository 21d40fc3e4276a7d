// Registration and password login: the rules, given a repository, a hasher and a clock.
import type { Clock } from '../lib/clock.js'
import { randomId } from '../lib/random.js'
import { DomainError, ErrorCode, ValidationError } from './errors.js'
import { BCRYPT_PREFIX, checkPasswordPolicy, type PasswordHasher, type PasswordPolicy } from './passwords.js'
import { canonicalUsername } from './usernames.js'

/** A stored user as the repository returns it. */
export interface StoredUser {
  id: number
  username: string
  password: string | null
  username_canonical: string | null
  created_at: string | null
}

export interface UsersRepository {
  findByUsername(username: string): Promise<StoredUser | undefined>
  findByCanonicalName(canonical: string): Promise<StoredUser | undefined>
  findById(id: number): Promise<StoredUser | undefined>
  insert(user: {
    username: string
    canonical: string
    passwordHash: string
    createdAt: string
  }): Promise<number | undefined>
  replacePasswordHash(id: number, expected: string, next: string): Promise<boolean>
  setPasswordHash(id: number, hash: string): Promise<boolean>
  list(): Promise<StoredUser[]>
  delete(id: number): Promise<boolean>
  listWithoutCanonicalName(): Promise<{ id: number; username: string }[]>
  claimCanonicalName(id: number, canonical: string): Promise<boolean>
}

export interface User {
  id: number
  username: string
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
  authenticate(username: string, password: string): Promise<User | undefined>
  /** Gives canonical names to rows without one (seed rows, rows the seed app added). */
  claimCanonicalNames(): Promise<number>
  list(): Promise<UserSummary[]>
  /** Deletes the user found by exact, then canonical, name; false when there is none. */
  delete(username: string): Promise<boolean>
  /** An operator's password reset; the policy applies. False when there is no such user. */
  setPassword(username: string, password: string): Promise<boolean>
  profile(id: number): Promise<(User & { createdAt: string | null }) | undefined>
  /** The user's own change: the current password must be right, the new one meet the policy. */
  changePassword(id: number, current: string, next: string): Promise<void>
  /** Throws wrong_password unless `password` is the user's. */
  checkPassword(id: number, password: string): Promise<void>
  removeById(id: number): Promise<boolean>
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
    // The exact name first: seed rows that collide after canonicalisation keep logging in with
    // the name they registered. Then the canonical form, so `Alice` finds `alice`.
    const exact = await users.findByUsername(username)
    if (exact) return exact
    const canonical = canonicalUsername(username)
    if (!canonical.ok) return undefined
    const found = await users.findByCanonicalName(canonical.canonical)
    if (found) return found
    // A row the seed app inserted since we started has no canonical name yet: claim, look again.
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
      const id = await users.insert({ username, canonical: name.canonical, passwordHash, createdAt })
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
      return { id: user.id, username: user.username }
    },

    async list() {
      return (await users.list()).map((u) => ({
        id: u.id,
        username: u.username,
        createdAt: u.created_at,
        hashScheme: hashScheme(u.password),
      }))
    },

    async delete(username) {
      const user = await findForLogin(username)
      return user ? users.delete(user.id) : false
    },

    async setPassword(username, password) {
      const user = await findForLogin(username)
      if (!user) return false
      const failures = checkPasswordPolicy(password, policy, user.username)
      if (failures.length > 0) throw new ValidationError(failures)
      return users.setPasswordHash(user.id, await hasher.hash(password))
    },

    claimCanonicalNames: () => claimCanonicalNames(),

    async profile(id) {
      const user = await users.findById(id)
      return user && { id: user.id, username: user.username, createdAt: user.created_at }
    },

    async changePassword(id, current, next) {
      const user = await requireCorrectPassword(id, current)
      const failures = checkPasswordPolicy(next, policy, user.username)
      if (failures.length > 0)
        throw new ValidationError(failures.map((f) => ({ ...f, loc: ['body', 'new_password'] })))
      await users.setPasswordHash(id, await hasher.hash(next))
    },

    async checkPassword(id, password) {
      await requireCorrectPassword(id, password)
    },

    removeById: (id) => users.delete(id),
  }

  async function requireCorrectPassword(id: number, password: string): Promise<StoredUser> {
    const user = await users.findById(id)
    const stored = user?.password ?? null
    const ok = await hasher.verify(stored ?? dummyHash, password)
    // The account may be gone since the token was issued: same answer as a wrong password.
    if (!user || stored === null || !ok) throw new DomainError(ErrorCode.wrongPassword, WRONG_PASSWORD)
    return user
  }
}
