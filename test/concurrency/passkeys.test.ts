// Passkeys' "once" under concurrency (issue 13 item 2), across two real server processes sharing
// the database: one assertion sent ten times at once signs in once (its challenge is spent by a
// compare-and-swap), and ten assertions carrying one signature counter, as a clone racing the
// original would send, sign in once (the counter moves forward in a conditional UPDATE).
import { describe, expect, it } from 'vitest'
import { account, bearer } from '../helpers/http.js'
import { SoftwarePasskey } from '../helpers/passkey.js'
import type { ServerProcess } from '../helpers/server-process.js'
import { topologies, trials, useDeployment } from './harness.js'

// One deployment behind one name: every instance is the relying party auth.example.test.
const ORIGIN = 'https://auth.example.test'
const ENV = { PUBLIC_URL: ORIGIN, REGISTRATIONS_PER_IP_PER_HOUR: '100000' }

const post = (on: ServerProcess, path: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(`${on.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  })

describe.each(topologies(['sqlite', 'postgres']))('passkeys on two instances of $name', (topology) => {
  const deployment = useDeployment(topology, ENV, 2)
  const pick = (k: number) => deployment.instances[k % 2] as ServerProcess

  /** A new account with a software passkey registered on A. */
  async function withPasskey(name: string): Promise<SoftwarePasskey> {
    const [a] = deployment.instances as [ServerProcess]
    const { access_token } = await account(a, name)
    const options = (await (
      await post(a, '/auth/webauthn/register/options', {}, bearer(access_token))
    ).json()) as {
      challenge: string
      user: { id: string }
    }
    const passkey = new SoftwarePasskey('auth.example.test', ORIGIN)
    const registered = await post(
      a,
      '/auth/webauthn/register/verify',
      passkey.register(options),
      bearer(access_token),
    )
    expect(registered.status, await registered.clone().text()).toBe(201)
    return passkey
  }
  const challenge = async (on: ServerProcess) =>
    ((await (await post(on, '/auth/webauthn/login/options', {})).json()) as { challenge: string }).challenge
  const statuses = (answers: Response[]) => {
    const s = answers.map((r) => r.status)
    expect(
      s.filter((x) => x !== 200 && x !== 400),
      'only 200 and 400',
    ).toEqual([])
    return s
  }

  it.runIf(topology.run)('one assertion sent 10 times at once: exactly one sign-in', async () => {
    await trials(`one passkey assertion, 10 times (${topology.name})`, 3, async (i) => {
      const passkey = await withPasskey(`replayed-${i}`)
      // An authenticator without a counter (always 0, WebAuthn §6.1.1): the spent challenge alone
      // decides (domain/passkeys.ts, spendLoginChallenge's INSERT).
      passkey.counter = -1
      const assertion = passkey.assert(await challenge(pick(i)))
      const answers = await Promise.all(
        Array.from({ length: 10 }, (_, k) => post(pick(k), '/auth/webauthn/login/verify', assertion)),
      )
      const s = statuses(answers)
      expect(
        s.filter((x) => x === 200),
        `trial ${i}: ${s}`,
      ).toHaveLength(1)
    })
  })

  it.runIf(topology.run)(
    '10 assertions with one counter (a clone racing) at once: exactly one sign-in',
    async () => {
      await trials(`10 assertions with one counter (${topology.name})`, 3, async (i) => {
        const passkey = await withPasskey(`cloned-${i}`)
        const challenges = await Promise.all(Array.from({ length: 10 }, (_, k) => challenge(pick(k))))
        const start = passkey.counter
        const assertions = challenges.map((c) => {
          passkey.counter = start
          return passkey.assert(c)
        })
        const answers = await Promise.all(
          assertions.map((assertion, k) => post(pick(k), '/auth/webauthn/login/verify', assertion)),
        )
        const s = statuses(answers)
        expect(
          s.filter((x) => x === 200),
          `trial ${i}: ${s}`,
        ).toHaveLength(1)
      })
    },
  )
})
