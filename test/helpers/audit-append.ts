// A second (third...) audit writer in its own process, for tests that several processes appending
// to one database keep one unbroken chain. Usage: audit-append.ts <DATABASE_URL> <count> <tag>
// It prints "ready" once loaded and starts writing when a line arrives on stdin, so that several
// writers begin together however long each took to start.
import { once } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import { createAuditService } from '../../src/domain/audit-writer.js'
import { systemClock } from '../../src/lib/clock.js'
import { createAuditStore } from '../../src/storage/audit.repository.js'
import { createDatabase } from '../../src/storage/database.js'

const [dbUrl, count, tag] = process.argv.slice(2)
const db = createDatabase(dbUrl ?? '')
let failures = 0
// One event per transaction: as many chances as possible for the writers to interleave.
const audit = createAuditService({
  store: createAuditStore(db),
  clock: systemClock,
  retentionDays: 0,
  batchSize: 1,
  onError: (err) => {
    failures++
    console.error(err)
  },
})
process.stdout.write('ready\n')
await once(process.stdin, 'data')
process.stdin.pause()
for (let i = 0; i < Number(count); i++) {
  audit.record({
    type: 'login.failed',
    outcome: 'failure',
    username: `${tag}-${i}`,
    detail: { writer: tag ?? '' },
  })
  // A pause between events lets the other writers take the lock in between.
  await sleep(1)
}
await audit.flush()
await db.destroy()
process.exitCode = failures === 0 ? 0 : 1
