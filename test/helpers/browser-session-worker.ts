// A process of its own that resolves browser-session cookies on a shared database, for the
// cross-process case in test/integration/browser-sessions.test.ts (startResolver). env
// DATABASE_URL. Prints "ready" once its revocation view has made its first read; then, for each
// cookie read from stdin (one a line), one JSON line { live }.
// Its view reads the feed once, at start: what it refuses later, it learns from the database.
import { createInterface } from 'node:readline'
import { createBrowserSessionService } from '../../src/domain/browser-sessions.js'
import { createRevocationView } from '../../src/domain/revocations.js'
import { systemClock } from '../../src/lib/clock.js'
import { createDatabase } from '../../src/storage/database.js'
import { createRevocationFeed, createSessionsRepository } from '../../src/storage/sessions.repository.js'

const db = createDatabase(process.env.DATABASE_URL ?? '')
const revocations = createRevocationView(createRevocationFeed(db), systemClock)
await revocations.refresh()
const service = createBrowserSessionService({
  sessions: createSessionsRepository(db),
  revocations,
  clock: systemClock,
  policy: { sessionMaxMs: 30 * 86_400_000, maxPerUser: 100 },
  accessTtlMs: 30 * 60_000,
})
const lines = createInterface({ input: process.stdin })
process.stdout.write('ready\n')
for await (const cookie of lines) {
  process.stdout.write(`${JSON.stringify({ live: (await service.resolve(cookie)) !== undefined })}\n`)
}
await db.destroy()
