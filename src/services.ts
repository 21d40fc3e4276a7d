// Opens the database, migrates it, and wires the domain services; shared by the app and the CLI.
import type { Config } from './config.js'
import { type AccountService, createAccountService } from './domain/account.js'
import { resolveSigningSecret } from './domain/keys.js'
import { createPasswordHasher, type PasswordHasher } from './domain/passwords.js'
import { createRevocationView, type RevocationView } from './domain/revocations.js'
import { createSessionService, type SessionEvents, type SessionService } from './domain/sessions.js'
import { createTokenService, type TokenService } from './domain/tokens.js'
import { createUserService, type UserService } from './domain/users.js'
import { type Clock, systemClock } from './lib/clock.js'
import { createDatabase, type Db } from './storage/database.js'
import { migrateToLatest } from './storage/migrate.js'
import { createRevocationFeed, createSessionsRepository } from './storage/sessions.repository.js'
import { getOrInsertSetting } from './storage/settings.repository.js'
import { createUsersRepository } from './storage/users.repository.js'

export interface ServiceDeps {
  /** Tests that are not about hashing inject cheaper argon2 parameters here. */
  hasher?: PasswordHasher
  clock?: Clock
  /** How often the revocation view reads the feed that other processes write to. */
  revocationPollMs?: number
  onRevocationPollError?: (err: unknown) => void
  sessionEvents?: SessionEvents
}

export interface Services {
  db: Db
  users: UserService
  tokens: TokenService
  sessions: SessionService
  account: AccountService
  /** Not yet polling: the app starts it when it starts serving. */
  revocations: RevocationView
}

const DAY_MS = 86_400_000

export async function openServices(config: Config, deps: ServiceDeps = {}): Promise<Services> {
  const clock = deps.clock ?? systemClock
  const db = createDatabase(config.databaseUrl)
  try {
    await migrateToLatest(db)
    const users = await createUserService({
      users: createUsersRepository(db),
      hasher: deps.hasher ?? createPasswordHasher(),
      policy: { minLength: config.passwordMinLength, maxLength: config.passwordMaxLength },
      clock,
    })
    await users.claimCanonicalNames()
    const secret = await resolveSigningSecret(config.secretKey, {
      getOrInsert: (key, value) => getOrInsertSetting(db, key, value),
    })
    const tokens = createTokenService({ secret, expiresInMinutes: config.accessTokenExpireMinutes, clock })
    const revocations = createRevocationView(createRevocationFeed(db), clock, {
      ...(deps.revocationPollMs === undefined ? {} : { pollMs: deps.revocationPollMs }),
      ...(deps.onRevocationPollError ? { onError: deps.onRevocationPollError } : {}),
    })
    const sessions = createSessionService({
      sessions: createSessionsRepository(db),
      tokens,
      revocations,
      clock,
      policy: {
        refreshIdleMs: config.refreshTokenExpireDays * DAY_MS,
        sessionMaxMs: config.sessionMaxDays * DAY_MS,
        reuseGraceMs: config.refreshReuseGraceSeconds * 1000,
      },
      accessTtlMs: config.accessTokenExpireMinutes * 60_000,
      ...(deps.sessionEvents ? { events: deps.sessionEvents } : {}),
    })
    const account = createAccountService({ users, sessions })
    return { db, users, tokens, sessions, account, revocations }
  } catch (err) {
    await db.destroy()
    throw err
  }
}
