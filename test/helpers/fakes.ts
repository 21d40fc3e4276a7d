// In-memory fakes of the domain's repositories, for unit tests of the domain on a frozen clock,
// and a stand-in browser-session service for the page tests.
import type { AuthMethod, BrowserSession, BrowserSessionService } from '../../src/domain/browser-sessions.js'
import type { KeysRepository, SettingsStore, SigningKeyRecord } from '../../src/domain/keys.js'
import type { ClientInfo } from '../../src/domain/sessions.js'
import { randomToken, sha256Hex } from '../../src/lib/crypto.js'
import { randomId } from '../../src/lib/random.js'

/** A settings table in a Map. */
export function memorySettings(
  initial: Record<string, string> = {},
): SettingsStore & { values: Map<string, string> } {
  const values = new Map(Object.entries(initial))
  return {
    values,
    get: async (key) => values.get(key),
    async getOrInsert(key, value) {
      if (!values.has(key)) values.set(key, value)
      return values.get(key) as string
    },
  }
}

/**
 * A signing-key table in an array, scheduling as storage/keys.repository.ts scheduleSigningKey
 * does; `reads` counts listKeys calls.
 */
export function memoryKeys(): KeysRepository & { rows: SigningKeyRecord[]; reads: number } {
  const repo = {
    rows: [] as SigningKeyRecord[],
    reads: 0,
    async listKeys() {
      repo.reads++
      return repo.rows.map((r) => ({ ...r }))
    },
    currentKey: async () => repo.rows.find((r) => r.retired_at === null),
    async schedule(
      key: SigningKeyRecord,
      {
        activatesAt,
        keepIfAlg,
        revokeOthersAt,
      }: { activatesAt: number; keepIfAlg?: string; revokeOthersAt?: number },
    ) {
      const current = repo.rows.find((r) => r.retired_at === null)
      if (current && current.alg === keepIfAlg) return { current, retired: undefined }
      for (const r of repo.rows) {
        if (r.retired_at === null || r.retired_at > activatesAt) r.retired_at = activatesAt
        if (revokeOthersAt !== undefined && r.revoked_at === null) r.revoked_at = revokeOthersAt
      }
      const row = { ...key, activates_at: activatesAt, revoked_at: null }
      repo.rows.push(row)
      return { current: row, retired: current?.kid }
    },
  }
  return repo
}

export interface FakeBrowserSessions extends BrowserSessionService {
  /** Every session started, live or ended, in order, with the facts it was started with. */
  readonly started: (BrowserSession & { client: ClientInfo; ended: boolean })[]
}

/**
 * An in-memory BrowserSessionService for page tests that inspect what the pages started (the app
 * serves services.ts's real one otherwise): cookies are random, stored hashed, and live until
 * ended. It does not check the credential epoch (the real one does).
 */
export function inMemoryBrowserSessions(now: () => number = Date.now): FakeBrowserSessions {
  const byHash = new Map<string, BrowserSession & { client: ClientInfo; ended: boolean }>()
  const started: (BrowserSession & { client: ClientInfo; ended: boolean })[] = []
  return {
    started,
    async start(user, facts: { amr: AuthMethod[]; client: ClientInfo }) {
      const cookie = randomToken()
      const session = {
        id: randomId(),
        userId: user.id,
        username: user.username,
        authTime: now(),
        amr: facts.amr,
        client: facts.client,
        ended: false,
      }
      byHash.set(sha256Hex(cookie), session)
      started.push(session)
      return { session, cookie }
    },
    async resolve(cookie) {
      if (cookie === undefined) return undefined
      const session = byHash.get(sha256Hex(cookie))
      return session && !session.ended ? session : undefined
    },
    async end(cookie) {
      const session = byHash.get(sha256Hex(cookie))
      if (!session || session.ended) return 0
      session.ended = true
      return 1
    },
  }
}
