// Opens the database, migrates it, and wires the domain services; shared by the app and the CLI.
import type { Config } from './config.js'
import { resolveSigningSecret } from './domain/keys.js'
import { createPasswordHasher, type PasswordHasher } from './domain/passwords.js'
import { createTokenService, type TokenService } from './domain/tokens.js'
import { createUserService, type UserService } from './domain/users.js'
import { type Clock, systemClock } from './lib/clock.js'
import { createDatabase, type Db } from './storage/database.js'
import { migrateToLatest } from './storage/migrate.js'
import { getOrInsertSetting } from './storage/settings.repository.js'
import { createUsersRepository } from './storage/users.repository.js'

export interface ServiceDeps {
  /** Tests that are not about hashing inject cheaper argon2 parameters here. */
  hasher?: PasswordHasher
  clock?: Clock
}

export interface Services {
  db: Db
  users: UserService
  tokens: TokenService
}

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
    return { db, users, tokens }
  } catch (err) {
    await db.destroy()
    throw err
  }
}
