// The reviewed migration files, in order. A static list works the same from src/ (tsx) and dist/.
import type { Migration } from 'kysely'
import * as adoptSeedUsers from './2026_11_28_001_adopt_seed_users.js'
import * as sessions from './2026_11_28_002_sessions.js'

export const migrations: Record<string, Migration> = {
  '2026_11_28_001_adopt_seed_users': adoptSeedUsers,
  '2026_11_28_002_sessions': sessions,
}
