// Issue 10 item 2: a key rotation opens no 401 window, on AuthGate's own processes or on a
// resource server that caches the JWKS. Two real `authgate serve` processes serve GET / with
// bearer tokens that both keep issuing (by refresh), and a jose createRemoteJWKSet verifier per
// process checks every token, its cache honouring the JWKS max-age; `authgate keys rotate` runs
// in the middle. Not one request and not one verification may be refused. (Before: the new key
// signed at once, so the other process refused its tokens until its next reload, and a cached
// JWKS refused them until jose's cooldown let it refetch.)
import { createRemoteJWKSet, jwtVerify } from 'jose'
import { describe, expect, it, vi } from 'vitest'
import { runCli } from '../helpers/cli.js'
import { account, decodeProtectedHeader, pairOf, refresh, type TokenPair } from '../helpers/http.js'
import type { ServerProcess } from '../helpers/server-process.js'
import { hammer, http, topologies, useDeployment } from './harness.js'

const ISSUER = 'https://auth.example.test'
// Short, so the test takes seconds: a JWKS max-age of 2 s, and the next key signs 4 s after it is
// published (the default derives the delay from the JWKS max-age and the reload interval).
const ENV = { JWKS_MAX_AGE_SECONDS: '2', KEY_ACTIVATION_DELAY_SECONDS: '4' }
const LOOPS_PER_INSTANCE = 3
// The new key must have signed this many tokens on each process before the load stops.
const NEW_KEY_TOKENS_PER_INSTANCE = 30

/** jose's remote JWK Set for one process, its cache as long as that process's max-age says. */
async function remoteVerifier(on: ServerProcess) {
  const url = new URL(`${on.url}/.well-known/jwks.json`)
  const res = await fetch(url)
  const maxAge = Number(/max-age=(\d+)/.exec(res.headers.get('cache-control') ?? '')?.[1])
  expect(maxAge).toBeGreaterThan(0)
  const jwks = createRemoteJWKSet(url, { cacheMaxAge: maxAge * 1000 })
  return async (token: string) => {
    try {
      await jwtVerify(token, jwks, { issuer: ISSUER, algorithms: ['ES256'] })
      return true
    } catch {
      return false
    }
  }
}

describe.each(topologies(['sqlite', 'postgres', 'postgres+redis']))(
  'a rotation under load on $name',
  (topology) => {
    const deployment = useDeployment(topology, { ...ENV, REGISTRATIONS_PER_IP_PER_HOUR: '1000' })

    it.runIf(topology.run)(
      'keys rotate: zero refusals on both processes and on cached remote JWKS verifiers',
      async () => {
        const [a, b] = deployment.instances
        if (!a || !b) throw new Error('two instances expected')
        const instances = [a, b]
        const verifiers = await Promise.all(instances.map(remoteVerifier))
        const oldKid = decodeProtectedHeader((await account(a, 'rotor-0')).access_token).kid

        // One session per loop; each loop refreshes on "its" process, then presents the fresh
        // access token to both processes and to both remote verifiers.
        const loops = LOOPS_PER_INSTANCE * instances.length
        const pairs: TokenPair[] = []
        for (let i = 0; i < loops; i++) {
          pairs.push(await account(instances[i % 2] as ServerProcess, `rotor-${i + 1}`))
        }
        const refusals: string[] = []
        const newKeyTokens = [0, 0]
        let newKid: string | undefined
        let requests = 0
        const attempt = async (loop: number) => {
          const issuer = loop % 2
          const on = instances[issuer] as ServerProcess
          const pair = await pairOf(await refresh(on, (pairs[loop] as TokenPair).refresh_token))
          pairs[loop] = pair
          const token = pair.access_token
          const kid = decodeProtectedHeader(token).kid
          if (kid !== oldKid) {
            newKid ??= kid
            newKeyTokens[issuer] = (newKeyTokens[issuer] ?? 0) + 1
          }
          for (const [i, server] of instances.entries()) {
            requests++
            const status = (await http.bearer(server, 'GET', '/', token)).status
            if (status !== 200)
              refusals.push(`process ${i} answered ${status} to a token of ${issuer} (${kid})`)
          }
          for (const [i, verify] of verifiers.entries()) {
            requests++
            if (!(await verify(token)))
              refusals.push(`jose on process ${i} refused a token of ${issuer} (${kid})`)
          }
        }

        const rotated = (async () => {
          // Load first (every loop has made its checks at least once, on average), then the
          // rotation in its middle.
          await vi.waitFor(() => expect(requests).toBeGreaterThanOrEqual(loops * 4), {
            timeout: 30_000,
            interval: 10,
          })
          const run = await runCli(['keys', 'rotate'], { ...deployment.env })
          expect(run, run.stderr).toMatchObject({ code: 0 })
          // Until the new key has signed a good many tokens on each process.
          await vi.waitFor(
            () => {
              if (newKeyTokens.some((n) => n < NEW_KEY_TOKENS_PER_INSTANCE))
                throw new Error(`the new key signed only ${newKeyTokens} tokens`)
            },
            { timeout: 60_000, interval: 50 },
          )
        })()
        await hammer(loops, attempt, rotated)
        await rotated
        console.info(
          `[concurrency] rotation on ${topology.name}: ${requests} checks, ${refusals.length} refused ` +
            `(${refusals.filter((r) => r.startsWith('process')).length} by AuthGate, ` +
            `${refusals.filter((r) => r.startsWith('jose')).length} by jose); ` +
            `new key ${newKid} signed ${newKeyTokens.join(' + ')} tokens`,
        )
        expect(newKid).toBeDefined()
        expect(refusals.slice(0, 10)).toEqual([])
        expect(refusals).toHaveLength(0)
      },
      120_000,
    )
  },
)
