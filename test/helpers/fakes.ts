// Stand-ins for services not built yet, for the tests that need one.
import type { AuthMethod, BrowserSession, BrowserSessionService } from '../../src/domain/browser-sessions.js'
import type { ClientInfo } from '../../src/domain/sessions.js'
import { randomToken, sha256Hex } from '../../src/lib/crypto.js'
import { randomId } from '../../src/lib/random.js'

export interface FakeBrowserSessions extends BrowserSessionService {
  /** Every session started, live or ended, in order, with the facts it was started with. */
  readonly started: (BrowserSession & { client: ClientInfo; ended: boolean })[]
}

/**
 * An in-memory BrowserSessionService for the page tests only, until the real one (issue 12, the
 * session store) is wired into services.ts: cookies are random, stored hashed, and live until
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
