// The operator's CLI on a real database (SQLite; PostgreSQL in the second run): in-process, with
// the test's environment, stdin and output streams; and a few runs of the real binary.

import { readFileSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { createServer } from 'node:net'
import type { Command } from 'commander'
import type { FastifyInstance } from 'fastify'
import { describe, expect, it } from 'vitest'
import { buildApp } from '../../src/app.js'
import { buildProgram } from '../../src/cli/program.js'
import { loadConfig } from '../../src/config.js'
import { fastHasher, freshDatabase, inspect, PASSWORD, requirePrerequisite } from '../helpers/app.js'
import { runCli, spawnCli } from '../helpers/cli.js'
import { logIn } from '../helpers/http.js'
import { redisInspector, redisUnreachable, testPrefix, testRedisUrl } from '../helpers/redis-server.js'
import { freePort } from '../helpers/server-process.js'

// Dropped when the file ends (test/helpers/setup.ts).
const database = await freshDatabase('cli.db')
const env = { DATABASE_URL: database.url }
const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'))

async function userCount(url: string): Promise<number> {
  const row = await inspect(url)
    .selectFrom('users')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .executeTakeFirstOrThrow()
  return Number(row.n)
}

async function logsIn(username: string, password: string): Promise<number> {
  const app = await buildApp(loadConfig(env), { hasher: fastHasher })
  try {
    return (await logIn(app, username, password)).statusCode
  } finally {
    await app.close()
  }
}

/** Every command's path: ['serve'], ['user', 'create']... (from the program itself, so none is missed). */
function commandPaths(command: Command, prefix: string[] = []): string[][] {
  return command.commands.flatMap((sub) => {
    const path = [...prefix, sub.name()]
    return [path, ...commandPaths(sub, path)]
  })
}

describe('authgate CLI', () => {
  const program = buildProgram({} as Parameters<typeof buildProgram>[0])
  it.each([[[]], ...commandPaths(program).map((p) => [p])])(
    '--help for %j says what it reads: DATABASE_URL and the rest, or a .env',
    async (args) => {
      const run = await runCli([...args, '--help'], env)
      expect(run.code).toBe(0)
      expect(run.stdout).toMatch(/^Usage: authgate/)
      expect(run.stdout).toContain('DATABASE_URL')
      expect(run.stdout).toContain('.env file in the working directory')
      expect(run.stdout).toMatch(/REDIS_URL[\s\S]*SECRET_KEY/)
    },
  )

  it('--version prints the version in package.json', async () => {
    expect(await runCli(['--version'], env)).toEqual({ code: 0, stdout: `${version}\n`, stderr: '' })
    expect(await runCli(['-v'], env)).toMatchObject({ code: 0, stdout: `${version}\n` })
  })

  it('an unknown command exits 1 and says so', async () => {
    const run = await runCli(['user', 'frobnicate'], env)
    expect(run.code).toBe(1)
    expect(run.stderr).toMatch(/unknown command 'frobnicate'/)
  })

  it('migrates, then has nothing left to do', async () => {
    const first = await runCli(['migrate'], env)
    expect(first).toMatchObject({ code: 0 })
    expect(first.stdout).toContain('2026_11_28_001_adopt_seed_users')
    const second = await runCli(['migrate'], env)
    expect(second.stdout).toContain('Nothing to migrate')
  })

  it('migrate on a PostgreSQL that is not there names DATABASE_URL, never the password, and gives up in time', async () => {
    const port = await freePort()
    const started = Date.now()
    const run = await runCli(['migrate'], {
      DATABASE_URL: `postgres://bob:hunter2@127.0.0.1:${port}/x`,
      DATABASE_WAIT_SECONDS: '1',
    })
    expect(run.code).toBe(1)
    expect(run.stderr).toContain(`DATABASE_URL (postgres://bob@127.0.0.1:${port}/x): cannot connect`)
    expect(run.stderr).toMatch(/not reachable yet \(attempt 1\): retrying/)
    expect(run.stderr + run.stdout).not.toContain('hunter2')
    expect(Date.now() - started).toBeLessThan(5000)
  })

  it('creates a user with the password from stdin, exactly, and the server logs it in', async () => {
    const password = `  ${PASSWORD}  `
    const run = await runCli(['user', 'create', 'Operator'], env, `${password}\n`)
    expect(run.stderr).toBe('')
    expect(run.stdout).toMatch(/Created user Operator with ID \d+/)
    expect(await logsIn('operator', password)).toBe(200)
    expect(await logsIn('operator', password.trim())).toBe(401)
  })

  it('takes a second line that repeats the first: the password is the one line (LF or CRLF)', async () => {
    const run = await runCli(['user', 'create', 'twoline'], env, `${PASSWORD}\n${PASSWORD}\n`)
    expect(run).toMatchObject({ code: 0, stderr: '' })
    expect(await logsIn('twoline', PASSWORD)).toBe(200)
    expect(await logsIn('twoline', `${PASSWORD}\n${PASSWORD}`)).toBe(401)
    const crlf = await runCli(['user', 'create', 'crlf'], env, `${PASSWORD}\r\n${PASSWORD}\r\n`)
    expect(crlf).toMatchObject({ code: 0, stderr: '' })
    expect(await logsIn('crlf', PASSWORD)).toBe(200)
  })

  it.each([
    ['a second line that differs', `${PASSWORD}\n${PASSWORD}!\n`, /second line does not repeat the first/],
    ['a third line', `${PASSWORD}\n${PASSWORD}\n${PASSWORD}\n`, /3 lines; expected the password on one line/],
    ['a control character', `${PASSWORD}\u0007\n`, /control character \(U\+0007\)/],
    ['a tab', `correct\thorse battery staple\n`, /control character \(U\+0009\)/],
    ['a lone carriage return', `${PASSWORD}\r${PASSWORD}\n`, /control character \(U\+000D\)/],
    ['an empty first line', '\n', /no password/],
    ['nothing at all', '', /no password/],
  ])('refuses %s on stdin, exits 1, and creates nothing', async (_, stdin, message) => {
    const before = await userCount(database.url)
    const run = await runCli(['user', 'create', 'refused'], env, stdin)
    expect(run.code).toBe(1)
    expect(run.stderr).toMatch(/^Password refused: /)
    expect(run.stderr).toMatch(message)
    expect(run.stdout).toBe('')
    expect(await userCount(database.url)).toBe(before)
  })

  it('applies the password policy and the unique name', async () => {
    const weak = await runCli(['user', 'create', 'weakling'], env, 'password\n')
    expect(weak.code).toBe(1)
    expect(weak.stderr).toMatch(/too common/)
    const taken = await runCli(['user', 'create', 'OPERATOR'], env, `${PASSWORD}\n`)
    expect(taken.code).toBe(1)
    expect(taken.stderr).toMatch(/already registered/)
  })

  it('resets a password, with the policy and the one-line rule', async () => {
    expect(await runCli(['user', 'set-password', 'OPERATOR'], env, 'qwerty123\n')).toMatchObject({ code: 1 })
    const mismatch = await runCli(
      ['user', 'set-password', 'OPERATOR'],
      env,
      'a brand new passphrase\nanother\n',
    )
    expect(mismatch.code).toBe(1)
    expect(mismatch.stderr).toMatch(/second line does not repeat/)
    expect(await logsIn('Operator', `  ${PASSWORD}  `)).toBe(200)
    const run = await runCli(['user', 'set-password', 'OPERATOR'], env, 'a brand new passphrase\n')
    expect(run).toMatchObject({ code: 0 })
    expect(await logsIn('Operator', 'a brand new passphrase')).toBe(200)
    expect(await logsIn('Operator', `  ${PASSWORD}  `)).toBe(401)
    const nobody = await runCli(['user', 'set-password', 'nobody'], env, 'a brand new passphrase\n')
    expect(nobody).toMatchObject({ code: 1, stderr: 'No user named nobody.\n' })
  })

  it('lists users under a header row, and as snake_case JSON lines, never with their hashes', async () => {
    const text = await runCli(['user', 'list'], env)
    expect(text.code).toBe(0)
    const rows = text.stdout.trim().split('\n')
    expect(rows[0]).toBe('id\tusername\tcreated_at\thash_scheme')
    expect(rows.slice(1).map((r) => r.split('\t')[1])).toEqual(['Operator', 'twoline', 'crlf'])
    const run = await runCli(['user', 'list', '--json'], env)
    expect(run.code).toBe(0)
    const users = run.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
    expect(users[0]).toEqual({
      id: 1,
      username: 'Operator',
      created_at: expect.any(String),
      hash_scheme: 'argon2id',
    })
    expect(users).toHaveLength(3)
    expect(run.stdout + text.stdout).not.toContain('$argon2')
  })

  it('deletes a user by name, and says so when there is none', async () => {
    for (const name of ['operator', 'twoline', 'crlf'])
      expect(await runCli(['user', 'delete', name], env)).toMatchObject({ code: 0 })
    expect(await userCount(database.url)).toBe(0)
    const again = await runCli(['user', 'delete', 'operator'], env)
    expect(again.code).toBe(1)
    expect(again.stderr).toMatch(/No user named operator/)
    const empty = await runCli(['user', 'list'], env)
    expect(empty).toEqual({ code: 0, stdout: '', stderr: 'No users yet.\n' })
  })

  it('stops on a bad setting, naming the variable', async () => {
    const run = await runCli(['migrate'], { ...env, ACCESS_TOKEN_EXPIRE_MINUTES: 'soon' })
    expect(run.code).toBe(1)
    expect(run.stderr).toMatch(/ACCESS_TOKEN_EXPIRE_MINUTES/)
    const short = await runCli(['serve'], { ...env, SECRET_KEY: 'too-short' })
    expect(short.code).toBe(1)
    expect(short.stderr).toMatch(/SECRET_KEY: must be at least 32 bytes/)
  })
})

describe('the authgate binary (a real process, stdin a pipe)', () => {
  it('creates a user from two piped lines (exit 0), and refuses a mismatch (exit 1)', async () => {
    const { url } = await freshDatabase('bin.db')
    const created = await spawnCli(
      ['user', 'create', 'piped'],
      { DATABASE_URL: url },
      `${PASSWORD}\n${PASSWORD}\n`,
    )
    expect(created).toMatchObject({ code: 0, stderr: '' })
    expect(created.stdout).toMatch(/Created user piped with ID 1/)
    const refused = await spawnCli(['user', 'create', 'other'], { DATABASE_URL: url }, `${PASSWORD}\nnope\n`)
    expect(refused).toMatchObject({ code: 1, stdout: '' })
    expect(refused.stderr).toMatch(/second line does not repeat the first/)
    expect(await userCount(url)).toBe(1)
  })

  it('serve exits non-zero when the port is taken', async () => {
    const blocker = createServer()
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve))
    const port = String((blocker.address() as AddressInfo).port)
    try {
      const run = await spawnCli(['serve'], { ...env, PORT: port })
      expect(run.code).toBe(1)
      expect(run.stderr).toMatch(/EADDRINUSE/)
    } finally {
      blocker.close()
    }
  })
})

// ---- user unlock, over real HTTP -------------------------------------------------------------

const redisUrl = testRedisUrl()
const redisWhy = redisUrl === undefined ? 'TEST_REDIS_URL is not set' : await redisUnreachable(redisUrl)
const withRedis = requirePrerequisite(
  redisWhy === undefined,
  `Redis for the user unlock test with REDIS_URL (${redisWhy}; e.g. TEST_REDIS_URL=redis://127.0.0.1:6379)`,
)

async function listening(appEnv: Record<string, string>): Promise<{ app: FastifyInstance; url: string }> {
  const app = await buildApp(loadConfig(appEnv), { hasher: fastHasher })
  await app.listen({ port: 0, host: '127.0.0.1' })
  return { app, url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}` }
}

async function httpLogin(url: string, username: string, password: string, cookie?: string) {
  const res = await logIn(url, username, password, { headers: cookie ? { cookie } : {} })
  await res.arrayBuffer()
  return { status: res.status, cookie: res.headers.get('set-cookie')?.split(';')[0] }
}

describe.each([
  ['the database', false],
  ['Redis', true],
])('authgate user unlock, counters in %s', (_, redis) => {
  it.skipIf(redis && !withRedis)(
    'lifts the throttle on the account and on its devices: the right password logs in at once',
    async () => {
      const { url: dbUrl } = await freshDatabase('unlock.db')
      const prefix = testPrefix()
      const cliEnv = {
        DATABASE_URL: dbUrl,
        RATE_LIMIT: 'on',
        LOGIN_MAX_FAILURES: '3',
        ...(redis && redisUrl ? { REDIS_URL: redisUrl, REDIS_KEY_PREFIX: prefix } : {}),
      }
      expect(await runCli(['user', 'create', 'locked'], cliEnv, `${PASSWORD}\n`)).toMatchObject({ code: 0 })
      const server = await listening(cliEnv)
      try {
        // A device that logged in before has an allowance of its own: throttle it too.
        const device = await httpLogin(server.url, 'locked', PASSWORD)
        expect(device.status).toBe(200)
        expect(device.cookie).toMatch(/^authgate_device=/)
        const statuses: number[] = []
        for (let i = 0; i < 4; i++)
          statuses.push((await httpLogin(server.url, 'locked', 'wrong guess')).status)
        for (let i = 0; i < 4; i++)
          statuses.push((await httpLogin(server.url, 'locked', 'wrong guess', device.cookie)).status)
        expect(statuses).toEqual([401, 401, 401, 429, 401, 401, 401, 429])
        // Throttled: even the right password is refused, with and without the device cookie.
        expect((await httpLogin(server.url, 'locked', PASSWORD)).status).toBe(429)
        expect((await httpLogin(server.url, 'locked', PASSWORD, device.cookie)).status).toBe(429)

        const unlock = await runCli(['user', 'unlock', 'LOCKED'], cliEnv)
        expect(unlock).toEqual({
          code: 0,
          stdout: 'Unlocked LOCKED: its failed logins are forgotten.\n',
          stderr: '',
        })
        expect((await httpLogin(server.url, 'locked', PASSWORD)).status).toBe(200)
        expect((await httpLogin(server.url, 'locked', PASSWORD, device.cookie)).status).toBe(200)
        // The allowance is whole again, not merely one attempt.
        const after: number[] = []
        for (let i = 0; i < 4; i++) after.push((await httpLogin(server.url, 'locked', 'wrong guess')).status)
        expect(after).toEqual([401, 401, 401, 429])
      } finally {
        await server.app.close()
        if (redis && redisUrl) {
          const peek = redisInspector(redisUrl)
          await peek.drop(prefix)
          await peek.close()
        }
      }
      const nobody = await runCli(['user', 'unlock', 'nobody'], cliEnv)
      expect(nobody).toMatchObject({ code: 1, stderr: 'No user named nobody.\n' })
      const entries = await inspect(dbUrl)
        .selectFrom('authgate_audit_log')
        .select(['type', 'outcome', 'username', 'detail'])
        .where('type', '=', 'user.unlocked')
        .orderBy('seq')
        .execute()
      expect(entries.map((e) => [e.outcome, e.username, JSON.parse(String(e.detail)).actor])).toEqual([
        ['success', 'locked', 'cli'],
        ['failure', 'nobody', 'cli'],
      ])
    },
  )
})

describe('authgate user unlock without the Redis it was given', () => {
  it('exits 1 and says the counters there are not reset', async () => {
    const { url } = await freshDatabase('unlock-away.db')
    expect(
      await runCli(['user', 'create', 'stranded'], { DATABASE_URL: url }, `${PASSWORD}\n`),
    ).toMatchObject({
      code: 0,
    })
    const away = `redis://127.0.0.1:${await freePort()}`
    const run = await runCli(['user', 'unlock', 'stranded'], { DATABASE_URL: url, REDIS_URL: away })
    expect(run.code).toBe(1)
    expect(run.stderr).toMatch(/^Redis could not be reached \(.*\): its counters are not reset; try again\n$/)
    expect(run.stdout).toBe('')
  })
})
