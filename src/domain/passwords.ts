// Password hashing (argon2id; the seed's bcrypt verified only) and the password policy.
import { availableParallelism } from 'node:os'
import * as argon2 from '@node-rs/argon2'
import { dictionary } from '@zxcvbn-ts/language-common'
import bcrypt from 'bcrypt'
import type { FieldError } from './errors.js'

export interface Argon2Params {
  memoryCost: number
  timeCost: number
  parallelism: number
}

// OWASP Password Storage Cheat Sheet, argon2id: m=19456 KiB (19 MiB), t=2, p=1 is the minimum.
export const OWASP_ARGON2ID: Argon2Params = Object.freeze({ memoryCost: 19456, timeCost: 2, parallelism: 1 })

export interface PasswordHasher {
  /** A PHC string for a new password. */
  hash(password: string): Promise<string>
  /** True only when `password` is exactly the one `stored` was made from. */
  verify(stored: string, password: string): Promise<boolean>
  /** True when `stored` is not an argon2id hash with the current parameters. */
  needsRehash(stored: string): boolean
}

export const BCRYPT_PREFIX = /^\$2[aby]\$\d\d\$/
// bcrypt reads at most 72 bytes (OWASP Password Storage Cheat Sheet, "Input Limits of bcrypt"),
// and passlib cut longer passwords to 72 bytes before hashing. A seed hash therefore stands for
// the first 72 bytes, and only those can be checked against it. That lasts one login: a
// successful login rehashes the full password with argon2id, which compares it exactly.
const BCRYPT_MAX_BYTES = 72

/**
 * How many hashes and verifications may run at once in this process; the rest wait their turn.
 * They run on libuv's thread pool (4 threads): with 4 at once on a 2-core machine, argon2 took
 * both cores from the event loop, and under a login flood GET / waited for CPU (p99 20-70 ms in
 * bench/run.mjs). Leaving one core free brought that p99 under 10 ms with as many logins per
 * second, since the cores were the limit either way.
 */
export const HASH_CONCURRENCY = Math.max(1, availableParallelism() - 1)

/** Runs tasks at most `limit` at a time, the others in arrival order; `depth()` counts both. */
function createLimiter(limit: number): {
  run: <T>(task: () => Promise<T>) => Promise<T>
  depth: () => number
} {
  let running = 0
  const waiting: (() => void)[] = []
  const run = async <T>(task: () => Promise<T>): Promise<T> => {
    if (running < limit) running++
    else await new Promise<void>((resolve) => waiting.push(resolve))
    try {
      return await task()
    } finally {
      // Hand the slot straight to the next waiter, or give it back.
      const next = waiting.shift()
      if (next) next()
      else running--
    }
  }
  return { run, depth: () => running + waiting.length }
}

// One limit for every hasher: they share the same cores.
const limiter = createLimiter(HASH_CONCURRENCY)
const limited = limiter.run

/** Hashes and verifications running or waiting for a slot in this process (the metrics' gauge). */
export const hashQueueDepth = (): number => limiter.depth()

/**
 * Hashing and verification run on libuv's thread pool (napi async workers), never on the
 * event loop, and at most HASH_CONCURRENCY at a time, so logins do not stall other requests.
 */
export function createPasswordHasher(params: Argon2Params = OWASP_ARGON2ID): PasswordHasher {
  const options = { algorithm: argon2.Algorithm.Argon2id, ...params }
  return {
    hash: (password) => limited(() => argon2.hash(password, options)),
    async verify(stored, password) {
      if (stored.startsWith('$argon2')) {
        try {
          return await limited(() => argon2.verify(stored, password))
        } catch {
          return false // a malformed stored hash never matches
        }
      }
      if (BCRYPT_PREFIX.test(stored)) {
        // Python's bcrypt refuses NUL bytes, so no seed password has one; C bcrypt would stop there.
        if (password.includes('\0')) return false
        // $2y$ is PHP crypt_blowfish's name for the same fixed algorithm as OpenBSD's $2b$
        // (crypt_blowfish 1.1 notes); the C library here knows only $2a$ and $2b$.
        const spelled = stored.startsWith('$2y$') ? `$2b$${stored.slice(4)}` : stored
        const bytes = Buffer.from(password).subarray(0, BCRYPT_MAX_BYTES)
        try {
          return await limited(() => bcrypt.compare(bytes, spelled))
        } catch {
          return false // a malformed stored hash never matches
        }
      }
      return false
    },
    needsRehash(stored) {
      if (!stored.startsWith('$argon2id$')) return true
      try {
        const p = argon2.parseOptions(stored)
        return (
          p.memoryCost !== params.memoryCost ||
          p.timeCost !== params.timeCost ||
          p.parallelism !== params.parallelism
        )
      } catch {
        return true
      }
    },
  }
}

export interface PasswordPolicy {
  minLength: number
  maxLength: number
}

let commonPasswords: Set<string> | undefined

/** True for a password on zxcvbn-ts's list of ~49k common passwords (case-insensitive). */
export function isCommonPassword(password: string): boolean {
  commonPasswords ??= new Set(dictionary['passwords-common'])
  return commonPasswords.has(password) || commonPasswords.has(password.toLowerCase())
}

/**
 * NIST SP 800-63B §5.1.1.2 and OWASP ASVS 2.1: a length range counted in code points, no
 * composition rules, no truncation, and no password from a list of common or breached ones.
 * Returns the failures in FastAPI's error shape; empty when the password is acceptable.
 */
export function checkPasswordPolicy(
  password: string,
  policy: PasswordPolicy,
  username: string,
): FieldError[] {
  const loc = ['body', 'password']
  const length = [...password].length
  if (length < policy.minLength) {
    return [
      { loc, type: 'string_too_short', msg: `Password should have at least ${policy.minLength} characters` },
    ]
  }
  if (length > policy.maxLength) {
    return [
      { loc, type: 'string_too_long', msg: `Password should have at most ${policy.maxLength} characters` },
    ]
  }
  if (isCommonPassword(password)) {
    return [
      { loc, type: 'password_too_common', msg: 'Password is too common; choose a less predictable one' },
    ]
  }
  if (password.toLowerCase() === username.toLowerCase()) {
    return [{ loc, type: 'password_matches_username', msg: 'Password must not be the same as the username' }]
  }
  return []
}
