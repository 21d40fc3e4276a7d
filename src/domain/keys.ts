// The HS256 signing secret: SECRET_KEY when set, else one generated once and shared through the database.
import { randomSecret } from '../lib/random.js'

export interface SettingsStore {
  getOrInsert(key: string, value: string): Promise<string>
}

const GENERATED_SECRET_KEY = 'jwt_hs256_secret'

/**
 * Never a hard-coded default (the seed's fatal flaw). A generated key lives in the database so a
 * restart, or another process on the same database, keeps accepting tokens; the first writer wins.
 */
export async function resolveSigningSecret(
  configured: string | undefined,
  settings: SettingsStore,
): Promise<string> {
  if (configured !== undefined) return configured
  return settings.getOrInsert(GENERATED_SECRET_KEY, randomSecret())
}
