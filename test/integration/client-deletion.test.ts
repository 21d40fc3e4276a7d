// Deleting a client voids its client_credentials access tokens (issue 12 item 1), on SQLite and
// PostgreSQL: introspection calls them inactive at once in the process that deleted it, and
// within a poll in a second real server process on the same database, whether the deletion came
// from the domain service or `authgate clients delete`; so are the tokens of grants racing the
// deletion, even one minted after it by a request that had authenticated before; a secret
// rotation voids none.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { servicesOf } from '../../src/app.js'
import { frozenClock } from '../../src/lib/clock.js'
import type { Services } from '../../src/services.js'
import { buildTestApp, TEST_REDIS_ENV, type TestApp } from '../helpers/app.js'
import { runCli } from '../helpers/cli.js'
import {
  basicHeader,
  clientCredentials,
  clientToken,
  introspect,
  OPERATOR,
  type RegisteredClient,
  registerClient,
} from '../helpers/clients.js'
import { msUntil } from '../helpers/poll.js'
import { type ServerProcess, startServerProcess } from '../helpers/server-process.js'

const ISSUER = 'https://auth.example.test'
const INACTIVE = { active: false }
const ORIGIN = { ip: '203.0.113.9', userAgent: 'nightly-export/1.0' }
// Within a poll: the other process hears the deletion (NOTIFY on PostgreSQL, Redis when set) or
// reads the feed at its next poll (250 ms on SQLite, 1 s on PostgreSQL).
const A_POLL_MS = 2_000

function servicesOfApp(t: TestApp): Services {
  const services = servicesOf(t.app)
  if (!services) throw new Error('not an app from buildApp')
  return services
}

describe('deleting a client, with a second server process on the same database', () => {
  let t: TestApp
  let other: ServerProcess
  let rs: RegisteredClient // a resource server that introspects; never deleted
  beforeAll(async () => {
    // One deployment: the same issuer; the second server reads the signing key the first made.
    t = await buildTestApp({ JWT_ISSUER: ISSUER })
    rs = await registerClient(t.app, { name: 'Reports API' })
    other = await startServerProcess({ DATABASE_URL: t.dbUrl, JWT_ISSUER: ISSUER, ...TEST_REDIS_ENV })
  }, 60_000)
  afterAll(async () => {
    await other?.stop()
    await t?.close()
  })

  const cli = (args: string[]) => runCli(['clients', ...args], { DATABASE_URL: t.dbUrl, ...TEST_REDIS_ENV })

  /** The client credentials grant at the other process: its token, or undefined when refused. */
  async function grantThere(client: RegisteredClient): Promise<string | undefined> {
    const res = await fetch(`${other.url}/auth/token`, {
      method: 'POST',
      headers: {
        authorization: basicHeader(client.id, client.secret ?? ''),
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: 'grant_type=client_credentials',
    })
    if (res.status === 401) return undefined
    expect(res.status, await res.clone().text()).toBe(200)
    return ((await res.json()) as { access_token: string }).access_token
  }

  const activeHere = async (token: string) =>
    (await introspect(t.app, { basic: rs }, token)).json().active as boolean

  async function activeThere(token: string): Promise<boolean> {
    const res = await fetch(`${other.url}/auth/introspect`, {
      method: 'POST',
      headers: {
        authorization: basicHeader(rs.id, rs.secret ?? ''),
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: new URLSearchParams({ token }).toString(),
    })
    expect(res.status).toBe(200)
    return ((await res.json()) as { active: boolean }).active
  }

  /** Every token inactive at both processes: here at once, there within a poll. */
  async function allVoided(tokens: string[]): Promise<void> {
    for (const token of tokens)
      expect((await introspect(t.app, { basic: rs }, token)).json()).toEqual(INACTIVE)
    const noneActiveThere = async () => (await Promise.all(tokens.map(activeThere))).every((a) => !a)
    await msUntil(noneActiveThere, A_POLL_MS)
  }

  it('by the domain service: its tokens are inactive here at once, and there within a poll', async () => {
    const machine = await registerClient(t.app)
    const tokens = [await clientToken(t.app, machine), (await grantThere(machine)) as string]
    for (const token of tokens) {
      expect(await activeHere(token)).toBe(true)
      expect(await activeThere(token)).toBe(true)
    }
    expect(await servicesOfApp(t).clients.delete(OPERATOR, machine.id)).toMatchObject({
      clientId: machine.id,
    })
    // No poll here: the deleting process applied the cutoff as it committed.
    for (const token of tokens) expect(await activeHere(token)).toBe(false)
    await allVoided(tokens)
    expect((await clientCredentials(t.app, { basic: machine })).statusCode).toBe(401)
    expect(await grantThere(machine)).toBeUndefined()
  })

  it('by `authgate clients delete`: inactive at both processes within a poll', async () => {
    const machine = await registerClient(t.app)
    const bystander = await registerClient(t.app, { name: 'Another machine' })
    const tokens = [await clientToken(t.app, machine), (await grantThere(machine)) as string]
    const kept = await clientToken(t.app, bystander)
    const run = await cli(['delete', machine.id])
    expect(run, run.stderr).toMatchObject({ code: 0, stderr: '' })
    // The CLI has no view of the servers': both read the cutoff from the feed.
    await msUntil(async () => !(await activeHere(tokens[0] as string)), A_POLL_MS)
    await allVoided(tokens)
    // Only that client's tokens.
    expect(await activeHere(kept)).toBe(true)
    expect(await activeThere(kept)).toBe(true)
  })

  it('rotating the secret voids no token: the old secret stops, its tokens stay active', async () => {
    const machine = await registerClient(t.app)
    const tokens = [await clientToken(t.app, machine), (await grantThere(machine)) as string]
    const rotated = await cli(['rotate-secret', machine.id, '--json'])
    expect(rotated, rotated.stderr).toMatchObject({ code: 0 })
    const secret = JSON.parse(rotated.stdout).client_secret as string
    expect((await clientCredentials(t.app, { basic: machine })).statusCode).toBe(401)
    const fresh = await clientToken(t.app, { id: machine.id, secret })
    // A deletion after the rotation, as a marker: once both processes have read it, they have read
    // anything the rotation could have written into the feed before it.
    const marker = await registerClient(t.app, { name: 'Marker' })
    const markerToken = await clientToken(t.app, marker)
    expect((await cli(['delete', marker.id])).code).toBe(0)
    await msUntil(async () => !(await activeHere(markerToken)), A_POLL_MS)
    await allVoided([markerToken])
    for (const token of [...tokens, fresh]) {
      expect(await activeHere(token)).toBe(true)
      expect(await activeThere(token)).toBe(true)
    }
  })

  it('grants racing the deletion at both processes: every token any of them got is inactive afterwards', async () => {
    const machine = await registerClient(t.app)
    const tokens: string[] = []
    let refused = 0
    let deleted = false
    const keep = (token: string | undefined) => {
      if (token === undefined) refused++
      else tokens.push(token)
    }
    const hereOnce = async () => {
      const res = await clientCredentials(t.app, { basic: machine })
      if (res.statusCode === 401) return keep(undefined)
      expect(res.statusCode, res.body).toBe(200)
      keep(res.json().access_token)
    }
    // Grants one after another at each process, several at a time, from before the deletion until
    // a few after it: some end before it, some may overlap it (authenticated just before its commit),
    // and the last are refused.
    const hammer = async (once: () => Promise<void>) => {
      let after = 0
      while (after < 5) {
        if (deleted) after++
        await once()
      }
    }
    const hammers = [
      ...Array.from({ length: 4 }, () => hammer(hereOnce)),
      ...Array.from({ length: 4 }, () => hammer(async () => keep(await grantThere(machine)))),
    ]
    await msUntil(() => tokens.length >= 20, 10_000, 1)
    const run = await cli(['delete', machine.id])
    deleted = true
    await Promise.all(hammers)
    expect(run, run.stderr).toMatchObject({ code: 0 })
    // The grants spanned the deletion: granted before it, refused after it.
    expect(tokens.length).toBeGreaterThanOrEqual(20)
    expect(refused).toBeGreaterThan(0)
    // Here: one read of the feed that sees everything committed before it, then every token.
    await servicesOfApp(t).revocations.refresh()
    const stillActive = []
    for (const token of tokens) if (await activeHere(token)) stillActive.push(token)
    expect(stillActive, `${stillActive.length} of ${tokens.length} tokens outlived the deletion`).toEqual([])
    await allVoided(tokens)
  })
})

describe('a grant that authenticated before the deletion committed and mints after it', () => {
  // Deterministic, on a frozen clock: the grant's two steps (client authentication, then the token)
  // with the deletion between them, as a request racing it may run.
  let t: TestApp
  const clock = frozenClock()
  beforeAll(async () => {
    t = await buildTestApp({ JWT_ISSUER: ISSUER }, { clock })
  })
  afterAll(() => t?.close())

  it.each([
    // iat is rounded down: this token's iat is the deletion's second, though it was minted after it.
    ['later in the deletion’s second (a deletion exactly on a second)', 0, 999],
    ['in the next second, 2 ms after it', 999, 2],
    ['a minute and a half later (a stalled event loop, a clock ahead)', 500, 90_000],
  ])('its token is inactive: minted %s', async (_, deletionMsInSecond, laterMs) => {
    const services = servicesOfApp(t)
    const rs = await registerClient(t.app, { name: 'Reports API' })
    const machine = await registerClient(t.app)
    const bystander = await registerClient(t.app, { name: 'Another machine' })
    const asMachine = { basic: { clientId: machine.id, secret: machine.secret ?? '' } }
    const authenticated = await services.clientAuth.authenticateConfidential(asMachine, ORIGIN)
    clock.set(Math.ceil(clock.now() / 1000) * 1000 + deletionMsInSecond)
    await services.clients.delete(OPERATOR, machine.id)
    clock.advance(laterMs)
    const late = services.clientTokens.grant(authenticated.client, undefined, ORIGIN)
    expect((await introspect(t.app, { basic: rs }, late.accessToken)).json()).toEqual(INACTIVE)
    // Control: another client's token of the same moment is active.
    const kept = await clientToken(t.app, bystander)
    expect((await introspect(t.app, { basic: rs }, kept)).json()).toMatchObject({ active: true })
  })
})
