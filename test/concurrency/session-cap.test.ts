// "At most MAX_SESSIONS_PER_USER live sessions": logins of one account race on two instances;
// once all have answered, at most the cap is alive in the database and on both instances.
import { describe, expect, it } from 'vitest'
import { inspect } from '../helpers/app.js'
import { logIn, pairOf, signUp } from '../helpers/http.js'
import { http, topologies, trials, useDeployment } from './harness.js'

const CAP = 5
const LOGINS = 20

describe.each(topologies())('the session cap on two instances on $name', (topology) => {
  const deployment = useDeployment(topology, {
    MAX_SESSIONS_PER_USER: String(CAP),
    // Twenty logins at once would be throttled as in-flight attempts; this test is about the cap.
    RATE_LIMIT: 'off',
  })

  it.runIf(topology.run)(`holds while ${LOGINS} logins race`, async () => {
    const [a, b] = deployment.instances
    if (!a || !b) throw new Error('two instances expected')
    await trials(`${topology.name}: ${LOGINS} concurrent logins, cap ${CAP}`, 3, async (i) => {
      const username = `crowd-${i}`
      expect((await signUp(a, username)).status).toBe(201)
      const pairs = await Promise.all(
        Array.from({ length: LOGINS }, (_, n) => logIn(n % 2 === 0 ? a : b, username).then(pairOf)),
      )
      const user = await inspect(deployment.databaseUrl)
        .selectFrom('users')
        .select('id')
        .where('username', '=', username)
        .executeTakeFirstOrThrow()
      const live = await inspect(deployment.databaseUrl)
        .selectFrom('authgate_sessions')
        .select('id')
        .where('user_id', '=', user.id)
        .where('revoked_at', 'is', null)
        .execute()
      expect(live.length).toBeLessThanOrEqual(CAP)
      expect(live.length).toBeGreaterThan(0)
      // Both instances agree: the tokens of ended sessions stop working everywhere within 1 s.
      const accepted = async () => {
        let count = 0
        for (const on of [a, b])
          for (const pair of pairs)
            if ((await http.bearer(on, 'GET', '/', pair.access_token)).status === 200) count++
        return count
      }
      await expect.poll(accepted, { timeout: 1_000, interval: 50 }).toBe(live.length * 2)
    })
  })
})
