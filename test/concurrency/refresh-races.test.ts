// Refresh races across instances (issue 9, item 8): concurrent refreshes of one refresh token on
// two instances leave exactly one lineage, and a reuse after the grace window ends the session on
// both instances within a second (RFC 6749 §10.4, RFC 9700 §4.14.2).
import { setTimeout as sleep } from 'node:timers/promises'
import { describe, expect, it } from 'vitest'
import { inspect } from '../helpers/app.js'
import { account, decodeJwt, refresh, type TokenPair } from '../helpers/http.js'
import { expectRefusedEverywhere, logIns, topologies, trials, useDeployment } from './harness.js'

const TRIALS = 2
const USERS = 3
const SESSIONS_PER_USER = 20
/** Concurrent refreshes of each session's one token, half on A and half on B. */
const RACERS = 4
const GRACE_SECONDS = 4
const HONOURED_WITHIN_MS = 1_000

describe.each(topologies())('refresh races across instances on $name', (topology) => {
  const deployment = useDeployment(topology, {
    REGISTRATIONS_PER_IP_PER_HOUR: '1000',
    REFRESH_REUSE_GRACE_SECONDS: String(GRACE_SECONDS),
    // The replays below are failed grants from one address, by design: not what this test counts.
    LOGIN_IP_MAX_FAILURES: '100000',
    DATABASE_POOL_SIZE: '30',
  })

  it.runIf(topology.run)(
    `${RACERS} refreshes of each of ${USERS * SESSIONS_PER_USER} tokens at once: one lineage each; reuse after grace ends it everywhere`,
    async () => {
      const [a, b] = deployment.instances
      if (!a || !b) throw new Error('two instances expected')
      const db = inspect(deployment.databaseUrl)
      await trials(`refresh races across instances on ${topology.name}`, TRIALS, async (trial) => {
        const pairs: TokenPair[] = []
        for (let u = 0; u < USERS; u++) {
          const username = `racer-${trial}-${u}`
          pairs.push(await account(b, username))
          pairs.push(...(await logIns([a, b], username, SESSIONS_PER_USER - 1)))
        }

        // Every session's token refreshed RACERS times at once, across both instances.
        const raced = await Promise.all(
          pairs.map((p) =>
            Promise.all(
              Array.from({ length: RACERS }, (_, i) => refresh(i % 2 === 0 ? a : b, p.refresh_token)),
            ),
          ),
        )
        const winners: TokenPair[] = []
        for (const responses of raced) {
          const bodies = (await Promise.all(responses.map((r) => r.json()))) as TokenPair[]
          expect(
            responses.map((r) => r.status),
            JSON.stringify(bodies),
          ).toEqual(responses.map(() => 200))
          // Within the grace window every racer gets the one winner's pair, on either instance.
          expect(new Set(bodies.map((x) => x.refresh_token)).size).toBe(1)
          expect(new Set(bodies.map((x) => x.access_token)).size).toBe(1)
          winners.push(bodies[0] as TokenPair)
        }
        const sids = pairs.map((p) => decodeJwt<{ sid: string }>(p.access_token).sid)
        const tokens = await db
          .selectFrom('authgate_refresh_tokens')
          .select(['session_id', 'spent_at'])
          .where('session_id', 'in', sids)
          .execute()
        for (const sid of sids) {
          const lineage = tokens.filter((t) => t.session_id === sid)
          // The original, spent once, and its one successor, unspent.
          expect(lineage).toHaveLength(2)
          expect(lineage.filter((t) => t.spent_at === null)).toHaveLength(1)
        }

        // Past the grace window an old token coming back is a copy: the waiting is for the clock.
        const spentAt = Math.max(...tokens.map((t) => t.spent_at ?? 0))
        await sleep(Math.max(0, spentAt + GRACE_SECONDS * 1000 + 100 - Date.now()))
        // One copy of each comes back, all at once, half on each instance: one revocation per
        // session (a second would hide a lost first), many in flight together.
        const reused = await Promise.all(pairs.map((p, i) => refresh(i % 2 === 0 ? a : b, p.refresh_token)))
        expect(reused.map((r) => r.status)).toEqual(reused.map(() => 400))

        // The sessions end on both instances: the winners' access tokens within 1 s...
        await expectRefusedEverywhere(
          [a, b],
          winners.map((w) => w.access_token),
          HONOURED_WITHIN_MS,
        )
        // ...and their refresh tokens at once, being checked in the database.
        const successors = await Promise.all(
          winners.flatMap((w) => [refresh(a, w.refresh_token), refresh(b, w.refresh_token)]),
        )
        expect(successors.map((r) => r.status)).toEqual(successors.map(() => 400))
        const ended = await db
          .selectFrom('authgate_sessions')
          .select('revoked_reason')
          .where('id', 'in', sids)
          .execute()
        expect(ended.map((s) => s.revoked_reason)).toEqual(sids.map(() => 'refresh_reuse'))
      })
    },
    180_000,
  )
})
