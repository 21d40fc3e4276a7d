// A process of its own redeeming one authorization code many times at once, for the
// cross-process race in test/integration/authorization-codes.test.ts (startRedeemer).
// argv[2]: JSON { code, clientId, redirectUri, codeVerifier, count }; env DATABASE_URL.
// Prints "ready" once its connection is open, waits for a line on stdin (so every process starts
// together), runs `count` redemptions concurrently, prints one JSON line { won, lost, other }.
import { createInterface } from 'node:readline'
import { noAudit } from '../../src/domain/audit.js'
import {
  createAuthorizationCodeService,
  InvalidAuthorizationCode,
} from '../../src/domain/authorization-codes.js'
import { systemClock } from '../../src/lib/clock.js'
import { createAuthorizationCodesRepository } from '../../src/storage/authorization-codes.repository.js'
import { createDatabase } from '../../src/storage/database.js'

const { count, ...redemption } = JSON.parse(process.argv[2] ?? '{}') as {
  code: string
  clientId: string
  redirectUri: string
  codeVerifier: string
  count: number
}
const db = createDatabase(process.env.DATABASE_URL ?? '')
const service = createAuthorizationCodeService({
  codes: createAuthorizationCodesRepository(db),
  clock: systemClock,
  audit: noAudit,
  revokeIssued: async () => {},
})
// Opens the connections (on PostgreSQL, `count` of them at most) before the start signal.
await Promise.all(Array.from({ length: count }, () => db.selectFrom('users').select('id').limit(1).execute()))
const lines = createInterface({ input: process.stdin })
process.stdout.write('ready\n')
await new Promise((resolve) => lines.once('line', resolve))
lines.close()
const results = await Promise.allSettled(Array.from({ length: count }, () => service.redeem(redemption)))
const lost = results.filter((r) => r.status === 'rejected' && r.reason instanceof InvalidAuthorizationCode)
const won = results.filter((r) => r.status === 'fulfilled')
process.stdout.write(
  `${JSON.stringify({ won: won.length, lost: lost.length, other: count - won.length - lost.length })}\n`,
)
await db.destroy()
