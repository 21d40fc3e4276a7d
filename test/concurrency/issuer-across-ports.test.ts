// Issue 10 item 1: a deployment's issuer lives with its database, not with a listen address. Two
// real `authgate serve` processes on different ports, with no PUBLIC_URL and no JWT_ISSUER, on
// one database, accept each other's tokens (before: each took its own listen address as `iss`,
// and refused the other's tokens with 401 invalid_token).
import { describe, expect, it } from 'vitest'
import { account, decodeJwt } from '../helpers/http.js'
import { http, topologies, useDeployment } from './harness.js'

describe.each(topologies(['sqlite', 'postgres']))('the issuer on $name', (topology) => {
  // '' is "unset" to loadConfig: the harness's own JWT_ISSUER and JWT_ALGORITHM are taken away.
  const deployment = useDeployment(topology, { JWT_ISSUER: '', JWT_ALGORITHM: '' })

  it.runIf(topology.run)(
    'two processes on different ports, no PUBLIC_URL, accept each other’s tokens',
    async () => {
      const [a, b] = deployment.instances
      if (!a || !b) throw new Error('two instances expected')
      expect(new URL(a.url).port).not.toBe(new URL(b.url).port)
      const fromA = (await account(a, 'porter-a')).access_token
      const fromB = (await account(b, 'porter-b')).access_token
      const statuses = {
        aOnA: (await http.bearer(a, 'GET', '/', fromA)).status,
        aOnB: (await http.bearer(b, 'GET', '/', fromA)).status,
        bOnA: (await http.bearer(a, 'GET', '/', fromB)).status,
        bOnB: (await http.bearer(b, 'GET', '/', fromB)).status,
      }
      expect(statuses).toEqual({ aOnA: 200, aOnB: 200, bOnA: 200, bOnB: 200 })
      // One issuer, whichever process signed.
      expect(decodeJwt(fromA).iss).toBe(decodeJwt(fromB).iss)
      // The metadata names the same issuer on both.
      const issuers = await Promise.all(
        [a, b].map(async (on) => {
          const meta = (await (await fetch(`${on.url}/.well-known/openid-configuration`)).json()) as {
            issuer: string
          }
          return meta.issuer
        }),
      )
      expect(issuers[0]).toBe(issuers[1])
      expect(issuers[0]).toBe(decodeJwt(fromA).iss)
    },
    60_000,
  )
})
