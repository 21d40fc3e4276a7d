// The operator's CLI, run as a real process on a real database (SQLite; PostgreSQL in the second run).

import type { AddressInfo } from 'node:net'
import { createServer } from 'node:net'
import { describe, expect, it } from 'vitest'
import { buildApp } from '../../src/app.js'
import { loadConfig } from '../../src/config.js'
import { fastHasher, freshDatabase, inspect, login, PASSWORD } from '../helpers/app.js'
import { runCli } from '../helpers/cli.js'

// Dropped when the file ends (test/helpers/setup.ts).
const database = await freshDatabase('cli.db')
const env = { DATABASE_URL: database.url }

describe('authgate CLI', () => {
  it.each([[[]], [['user']], [['user', 'create']], [['serve']], [['migrate']]])(
    'prints help for %j',
    async (args) => {
      const run = await runCli([...args, '--help'], env)
      expect(run.code).toBe(0)
      expect(run.stdout).toMatch(/^Usage: authgate/)
    },
  )

  it('migrates, then has nothing left to do', async () => {
    const first = await runCli(['migrate'], env)
    expect(first).toMatchObject({ code: 0 })
    expect(first.stdout).toContain('2026_11_28_001_adopt_seed_users')
    const second = await runCli(['migrate'], env)
    expect(second.stdout).toContain('Nothing to migrate')
  })

  it('creates a user with the password from stdin, exactly, and the server logs it in', async () => {
    const password = `  ${PASSWORD}  `
    const run = await runCli(['user', 'create', 'Operator'], env, `${password}\n`)
    expect(run.stderr).toBe('')
    expect(run.stdout).toMatch(/Created user Operator with ID \d+/)
    const app = await buildApp(loadConfig(env), { hasher: fastHasher })
    expect((await login(app, 'operator', password)).statusCode).toBe(200)
    expect((await login(app, 'operator', password.trim())).statusCode).toBe(401)
    await app.close()
  })

  it('applies the password policy and the unique name', async () => {
    const weak = await runCli(['user', 'create', 'weakling'], env, 'password\n')
    expect(weak.code).toBe(1)
    expect(weak.stderr).toMatch(/too common/)
    const taken = await runCli(['user', 'create', 'OPERATOR'], env, `${PASSWORD}\n`)
    expect(taken.code).toBe(1)
    expect(taken.stderr).toMatch(/already registered/)
  })

  it('resets a password, with the policy', async () => {
    expect(await runCli(['user', 'set-password', 'OPERATOR'], env, 'qwerty123\n')).toMatchObject({ code: 1 })
    const run = await runCli(['user', 'set-password', 'OPERATOR'], env, 'a brand new passphrase\n')
    expect(run).toMatchObject({ code: 0 })
    const app = await buildApp(loadConfig(env), { hasher: fastHasher })
    expect((await login(app, 'Operator', 'a brand new passphrase')).statusCode).toBe(200)
    expect((await login(app, 'Operator', `  ${PASSWORD}  `)).statusCode).toBe(401)
    await app.close()
    expect(await runCli(['user', 'set-password', 'nobody'], env, 'a brand new passphrase\n')).toMatchObject({
      code: 1,
    })
  })

  it('lists users without their hashes', async () => {
    const run = await runCli(['user', 'list', '--json'], env)
    expect(run.code).toBe(0)
    const users = run.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
    expect(users).toEqual([
      { id: 1, username: 'Operator', createdAt: expect.any(String), hashScheme: 'argon2id' },
    ])
    expect(run.stdout).not.toContain('$argon2')
  })

  it('deletes a user by name, and says so when there is none', async () => {
    expect(await runCli(['user', 'delete', 'operator'], env)).toMatchObject({ code: 0 })
    const users = await inspect(database.url)
      .selectFrom('users')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .executeTakeFirstOrThrow()
    expect(users).toEqual({ n: 0 })
    const again = await runCli(['user', 'delete', 'operator'], env)
    expect(again.code).toBe(1)
    expect(again.stderr).toMatch(/No user named operator/)
  })

  it('serve exits non-zero when the port is taken', async () => {
    const blocker = createServer()
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve))
    const port = String((blocker.address() as AddressInfo).port)
    try {
      const run = await runCli(['serve'], { ...env, PORT: port })
      expect(run.code).toBe(1)
      expect(run.stderr).toMatch(/EADDRINUSE/)
    } finally {
      blocker.close()
    }
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
