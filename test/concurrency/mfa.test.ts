// The second factor's "once" and "at most N" under concurrency (issue 13 item 1), across two real
// server processes sharing the database (and Redis): one mfa_token signs in once however many
// codes race on it, one TOTP code signs in once however many mfa_tokens race with it, one recovery
// code burns once, and a parallel burst of wrong codes is evaluated exactly 10 times.
import { describe, expect, it } from 'vitest'
import { PASSWORD } from '../helpers/app.js'
import { logIn, pairOf, signUp } from '../helpers/http.js'
import { codeAt, enrolTotp, MFA_KEY, mfaToken, withOtp, withRecoveryCode } from '../helpers/mfa.js'
import type { ServerProcess } from '../helpers/server-process.js'
import { topologies, trials, useDeployment } from './harness.js'

const STEP = 30_000
const ENV = {
  MFA_ENCRYPTION_KEY: MFA_KEY,
  LOGIN_IP_MAX_FAILURES: '100000',
  REGISTRATIONS_PER_IP_PER_HOUR: '100000',
}

/** Statuses, counted: how many requests won (200), lost (400) and were throttled (429); anything else is a bug. */
function tally(statuses: number[]) {
  const other = statuses.filter((s) => s !== 200 && s !== 400 && s !== 429)
  expect(other, 'no status but 200, 400 and 429').toEqual([])
  return {
    won: statuses.filter((s) => s === 200).length,
    refused: statuses.filter((s) => s === 400).length,
    throttled: statuses.filter((s) => s === 429).length,
  }
}

describe.each(topologies())('the second factor on two instances of $name', (topology) => {
  const deployment = useDeployment(topology, ENV, 2)
  const pick = (k: number) => deployment.instances[k % 2] as ServerProcess

  /**
   * A new account, TOTP confirmed on A with the code of the step before now (accepted: one step
   * of skew), so the codes of now and of the next step are both still unused.
   */
  async function enrolled(name: string) {
    const [a] = deployment.instances as [ServerProcess]
    expect((await signUp(a, name)).status).toBe(201)
    const login = await pairOf(await logIn(a, name))
    return enrolTotp(a, login.access_token, PASSWORD, Date.now() - STEP)
  }

  it.runIf(topology.run)(
    'one mfa_token with 10 different recovery codes at once: exactly one signs in',
    async () => {
      await trials(`10 recovery codes on one mfa_token (${topology.name})`, 3, async (i) => {
        const name = `one-token-${i}`
        const { recoveryCodes } = await enrolled(name)
        const token = await mfaToken(pick(i), name, PASSWORD)
        const statuses = await Promise.all(
          recoveryCodes.map(async (code, k) => (await withRecoveryCode(pick(k), token, code)).status),
        )
        expect(tally(statuses).won, `trial ${i}: ${statuses}`).toBe(1)
      })
    },
  )

  it.runIf(topology.run)('one TOTP code with 10 mfa_tokens at once: exactly one signs in', async () => {
    await trials(`one code on 10 mfa_tokens (${topology.name})`, 3, async (i) => {
      const name = `one-code-${i}`
      const { secret } = await enrolled(name)
      const tokens: string[] = []
      for (let k = 0; k < 10; k++) tokens.push(await mfaToken(pick(k), name, PASSWORD))
      // The next step's code: accepted until the step after it begins, 30 to 60 s from now.
      const code = codeAt(secret, Date.now() + STEP)
      const statuses = await Promise.all(
        tokens.map(async (token, k) => (await withOtp(pick(k), token, code)).status),
      )
      expect(tally(statuses).won, `trial ${i}: ${statuses}`).toBe(1)
    })
  })

  it.runIf(topology.run)('one recovery code on 10 mfa_tokens at once: it burns once', async () => {
    await trials(`one recovery code on 10 mfa_tokens (${topology.name})`, 3, async (i) => {
      const name = `one-recovery-${i}`
      const { recoveryCodes } = await enrolled(name)
      const tokens: string[] = []
      for (let k = 0; k < 10; k++) tokens.push(await mfaToken(pick(k), name, PASSWORD))
      const code = recoveryCodes[0] as string
      const statuses = await Promise.all(
        tokens.map(async (token, k) => (await withRecoveryCode(pick(k), token, code)).status),
      )
      expect(tally(statuses).won, `trial ${i}: ${statuses}`).toBe(1)
    })
  })

  it.runIf(topology.run)('40 wrong codes at once on two instances: exactly 10 are evaluated', async () => {
    await trials(`40 parallel wrong codes (${topology.name})`, 3, async (i) => {
      const name = `burst-${i}`
      const { secret } = await enrolled(name)
      const token = await mfaToken(pick(i), name, PASSWORD)
      // Ten steps ahead: a real code of this secret, never inside the window.
      const wrong = codeAt(secret, Date.now() + 10 * STEP)
      const statuses = await Promise.all(
        Array.from({ length: 40 }, async (_, k) => (await withOtp(pick(k), token, wrong)).status),
      )
      expect(tally(statuses), `trial ${i}`).toEqual({ won: 0, refused: 10, throttled: 30 })
    })
  })
})
