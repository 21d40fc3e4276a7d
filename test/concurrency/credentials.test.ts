// Credential changes against logins, on two real server processes (issue 9, items 2, 3 and 8): after
// a password change or an account deletion answers, no session made with the old credential is
// alive on either instance, a login that lost the race got 401 (never a 500), and a deleted
// account's id is never given to the next user.
import { describe, expect, it } from 'vitest'
import { account, decodeJwt, greet, logIn, refresh, type TokenPair } from '../helpers/http.js'
import type { ServerProcess } from '../helpers/server-process.js'
import { hammer, http, PASSWORD, topologies, trials, useDeployment } from './harness.js'

const NEW_PASSWORD = 'a brand new passphrase, 2026'
// Logins per instance running at once while the change is made. Real argon2id: each login takes
// tens of milliseconds, which is the window a login that read the old hash has to lose the race.
const WORKERS_PER_INSTANCE = 3
const TRIALS = 5
// GET / on the other instance: the revocation reaches it by signal, or at its next poll (docs:
// within 1 s); this bound only keeps a failing run short.
const ELSEWHERE_MS = 3_000

interface Login {
  status: number
  on: ServerProcess
  pair?: TokenPair
}

/** Logins of `username` with `password` on every instance, until `until` settles (and once after). */
function hammerLogins(
  instances: ServerProcess[],
  username: string,
  password: string,
  until: Promise<unknown>,
) {
  const on = (w: number) => instances[w % instances.length] as ServerProcess
  return hammer<Login>(
    WORKERS_PER_INSTANCE * instances.length,
    async (w) => {
      const res = await logIn(on(w), username, password)
      if (res.status !== 200) {
        await res.body?.cancel()
        return { status: res.status, on: on(w) }
      }
      return { status: 200, on: on(w), pair: (await res.json()) as TokenPair }
    },
    until,
  )
}

const statusOf = async (res: Promise<Response>) => {
  const r = await res
  await r.body?.cancel()
  return r.status
}

/**
 * What of a session made with a credential that is gone still works: its refresh token, its access
 * token on GET / (on the instance that made the change at once; elsewhere within ELSEWHERE_MS).
 */
async function stillAlive(
  instances: ServerProcess[],
  changedOn: ServerProcess,
  pair: TokenPair,
): Promise<string[]> {
  const alive: string[] = []
  for (const on of instances) {
    if ((await statusOf(refresh(on, pair.refresh_token))) === 200) alive.push('refresh token rotates')
  }
  if ((await statusOf(greet(changedOn, pair.access_token))) !== 401)
    alive.push('GET / on the changing instance')
  for (const on of instances.filter((i) => i !== changedOn)) {
    try {
      await expect
        .poll(() => statusOf(greet(on, pair.access_token)), { timeout: ELSEWHERE_MS, interval: 100 })
        .toBe(401)
    } catch {
      alive.push('GET / on the other instance')
    }
  }
  return alive
}

function summary(logins: Login[]): string {
  const counts = new Map<number, number>()
  for (const l of logins) counts.set(l.status, (counts.get(l.status) ?? 0) + 1)
  return [...counts].map(([s, n]) => `${n}x${s}`).join(' ')
}

for (const topology of topologies()) {
  describe.skipIf(!topology.run)(`${topology.name}: credential changes against logins`, () => {
    // Throttling is not what is raced here: the losing logins are failures, which would reach it.
    const d = useDeployment(topology, { RATE_LIMIT: 'off' })

    it('password change against logins: no session made with the old password outlives the 204', async () => {
      const survivors: string[] = []
      await trials(`${topology.name}: password change against logins`, TRIALS, async (i) => {
        const [a, b] = d.instances as [ServerProcess, ServerProcess]
        const username = `pw-race-${i}`
        const owner = await account(a, username)
        const changed = http.bearer(a, 'POST', '/auth/password', owner.access_token, {
          current_password: PASSWORD,
          new_password: NEW_PASSWORD,
        })
        const logins = await hammerLogins([a, b], username, PASSWORD, changed)
        const change = await changed
        expect(change.status, await change.text()).toBe(204)

        // A login either had its session ended by the change, or was refused: never a 500.
        expect(
          logins.filter((l) => l.status !== 200 && l.status !== 401),
          summary(logins),
        ).toEqual([])
        const alive = await Promise.all(
          logins.flatMap((l) => (l.pair ? [stillAlive([a, b], a, l.pair)] : [])),
        )
        for (const what of alive.flat()) survivors.push(`trial ${i}: ${what}`)
        // The owner sees one live session: the one that changed the password.
        for (const on of [a, b]) {
          const listed = await http.bearer(on, 'GET', '/auth/sessions', owner.access_token)
          expect(listed.status).toBe(200)
          const sessions = (await listed.json()) as { current: boolean }[]
          if (sessions.length !== 1)
            survivors.push(`trial ${i}: ${sessions.length - 1} listed in /auth/sessions`)
        }
        console.info(`[concurrency] password change trial ${i}: logins ${summary(logins)}`)
      })
      expect(survivors).toEqual([])
    }, 180_000)

    it('deletion against logins: no token outlives the account, and no login gets a 500', async () => {
      const survivors: string[] = []
      const errors: string[] = []
      await trials(`${topology.name}: deletion against logins`, TRIALS, async (i) => {
        const [a, b] = d.instances as [ServerProcess, ServerProcess]
        const username = `delete-race-${i}`
        const owner = await account(a, username)
        const deleted = http.bearer(a, 'DELETE', '/auth/me', owner.access_token, { password: PASSWORD })
        const logins = await hammerLogins([a, b], username, PASSWORD, deleted)
        const deletion = await deleted
        expect(deletion.status, await deletion.text()).toBe(204)

        for (const l of logins)
          if (l.status !== 200 && l.status !== 401) errors.push(`trial ${i}: ${l.status}`)
        const pairs = [owner, ...logins.flatMap((l) => (l.pair ? [l.pair] : []))]
        const alive = await Promise.all(
          pairs.map(async (pair) => {
            const found = await stillAlive([a, b], a, pair)
            for (const on of [a, b]) {
              const me = await statusOf(http.bearer(on, 'GET', '/auth/me', pair.access_token))
              if (me !== 401) found.push(`GET /auth/me ${me}`)
            }
            return found
          }),
        )
        for (const what of alive.flat()) survivors.push(`trial ${i}: ${what}`)
        console.info(`[concurrency] deletion trial ${i}: logins ${summary(logins)}`)
      })
      expect({ survivors, errors }).toEqual({ survivors: [], errors: [] })
    }, 180_000)

    it('re-registration after deletion: a new id, and the old tokens act for no one', async () => {
      const failures: string[] = []
      await trials(`${topology.name}: re-registration after deletion`, TRIALS, async (i) => {
        const [a, b] = d.instances as [ServerProcess, ServerProcess]
        const username = `reregistered-${i}`
        // The newest account holds the highest id: the one a reusing database would hand out again.
        const old = await account(a, username)
        const oldId = decodeJwt<{ id: number }>(old.access_token).id
        const deleted = http.bearer(a, 'DELETE', '/auth/me', old.access_token, { password: PASSWORD })
        // Logins race the deletion, as a client that keeps its session alive would.
        const racing = await hammerLogins([a, b], username, PASSWORD, deleted)
        expect((await deleted).status).toBe(204)

        const fresh = await account(b, username, NEW_PASSWORD)
        const newId = decodeJwt<{ id: number }>(fresh.access_token).id
        const newSid = decodeJwt<{ sid: string }>(fresh.access_token).sid
        if (!(newId > oldId)) failures.push(`trial ${i}: new id ${newId} after deleting ${oldId}`)

        for (const pair of [old, ...racing.flatMap((l) => (l.pair ? [l.pair] : []))]) {
          for (const on of [a, b]) {
            for (const [method, path] of [
              ['GET', '/auth/me'],
              ['GET', '/auth/sessions'],
              ['DELETE', `/auth/sessions/${newSid}`],
            ] as const) {
              const status = await statusOf(http.bearer(on, method, path, pair.access_token))
              if (status !== 401) failures.push(`trial ${i}: ${method} ${path} ${status}`)
            }
          }
          for (const what of await stillAlive([a, b], a, pair)) failures.push(`trial ${i}: ${what}`)
        }
        // The new user was not logged out by any of it.
        const me = await http.bearer(a, 'GET', '/auth/me', fresh.access_token)
        const profile = me.status === 200 ? ((await me.json()) as { id: number }) : undefined
        if (profile?.id !== newId) failures.push(`trial ${i}: the new user's GET /auth/me: ${me.status}`)
      })
      expect(failures).toEqual([])
    }, 180_000)
  })
}
