// `authgate audit verify | export | prune` as an operator runs them, on real databases (SQLite
// files; PostgreSQL in the second run), and a check that the events the CLI and HTTP flows record
// never hold a secret.
import { userInfo } from 'node:os'
import { sql } from 'kysely'
import { beforeAll, describe, expect, it } from 'vitest'
import { buildApp } from '../../src/app.js'
import { loadConfig } from '../../src/config.js'
import type { AuditEvent } from '../../src/domain/audit.js'
import { createAuditService } from '../../src/domain/audit-writer.js'
import { frozenClock } from '../../src/lib/clock.js'
import { createAuditStore } from '../../src/storage/audit.repository.js'
import { createDatabase } from '../../src/storage/database.js'
import { migrateToLatest } from '../../src/storage/migrate.js'
import { migrations } from '../../src/storage/migrations/index.js'
import { fastHasher, freshDatabase, inspect } from '../helpers/app.js'
import { runCli } from '../helpers/cli.js'
import { logIn, pairOf, refresh, signUp } from '../helpers/http.js'

const newestMigration = Object.keys(migrations).sort().at(-1)

const DAY = 86_400_000
const NOV = (day: number) => Date.UTC(2026, 10, day, 12)

/** A migrated database holding `events`, each recorded at its time; returns the CLI's environment. */
async function logWith(
  name: string,
  events: [number, AuditEvent][],
): Promise<{ url: string; env: Record<string, string> }> {
  const { url } = await freshDatabase(`${name}.db`)
  const db = createDatabase(url)
  await migrateToLatest(db)
  const clock = frozenClock()
  const audit = createAuditService({ store: createAuditStore(db), clock, retentionDays: 0 })
  for (const [at, e] of events) {
    clock.set(at)
    audit.record(e)
  }
  await audit.flush()
  await db.destroy()
  return { url, env: { DATABASE_URL: url } }
}

/** A statement run behind the app's back, as an attacker (or a careless operator) with SQL access would. */
async function exec(url: string, statement: string): Promise<void> {
  await sql.raw(statement).execute(inspect(url))
}

const lines = (stdout: string) =>
  stdout
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l))

describe('authgate audit verify', () => {
  let log: { url: string; env: Record<string, string> }
  beforeAll(async () => {
    log = await logWith(
      'verify',
      [1, 2, 3, 4, 5].map((d) => [
        NOV(d),
        { type: 'login.succeeded', outcome: 'success', userId: d, username: `u${d}`, ip: '192.0.2.1' },
      ]),
    )
  })

  it('says OK with the count and the head, and exits 0', async () => {
    const run = await runCli(['audit', 'verify'], log.env)
    expect(run).toMatchObject({ code: 0, stderr: '' })
    expect(run.stdout).toMatch(/^OK: 5 entries, seq 1 to 5; head hash [0-9a-f]{64}\n$/)
  })

  it('names the seq of an entry edited in the database, and exits 1', async () => {
    await exec(log.url, "update authgate_audit_log set username = 'mallory' where seq = 3")
    const run = await runCli(['audit', 'verify'], log.env)
    expect(run.code).toBe(1)
    expect(run.stderr).toMatch(/BROKEN at seq 3: .*edited/)
    expect(run.stderr).toMatch(/2 entries before it check out/)
    await exec(log.url, "update authgate_audit_log set username = 'u3' where seq = 3")
    expect(await runCli(['audit', 'verify'], log.env)).toMatchObject({ code: 0 })
  })

  it('names the gap a deleted entry leaves, and exits 1', async () => {
    await exec(log.url, 'delete from authgate_audit_log where seq = 4')
    const run = await runCli(['audit', 'verify'], log.env)
    expect(run.code).toBe(1)
    expect(run.stderr).toMatch(/BROKEN at seq 5: .*seq 4 is missing/)
  })

  it('says so for an empty log', async () => {
    const empty = await logWith('empty', [])
    expect(await runCli(['audit', 'verify'], empty.env)).toMatchObject({
      code: 0,
      stdout: 'OK: the audit log is empty.\n',
    })
  })
})

describe('authgate audit export', () => {
  let log: { url: string; env: Record<string, string> }
  beforeAll(async () => {
    log = await logWith('export', [
      [NOV(1), { type: 'login.failed', outcome: 'failure', username: 'alice', ip: '192.0.2.9' }],
      [NOV(2), { type: 'user.registered', outcome: 'success', userId: 1, username: 'Alice' }],
      [
        NOV(3),
        {
          type: 'login.succeeded',
          outcome: 'success',
          userId: 1,
          username: 'Alice',
          detail: { sessionId: 's1' },
        },
      ],
      [NOV(3), { type: 'login.failed', outcome: 'failure', username: 'bob' }],
      [NOV(4), { type: 'account.deleted', outcome: 'success', userId: 2, username: 'carol' }],
    ])
    // Alice exists (id 1); carol was deleted, and her entries outlive her.
    await exec(
      log.url,
      "insert into users (id, username, password, username_canonical, created_at) values (1, 'Alice', null, 'alice', '2026-11-02T12:00:00Z')",
    )
  })

  it('writes every entry as a JSON line, oldest first, with its hashes', async () => {
    const run = await runCli(['audit', 'export'], log.env)
    expect(run).toMatchObject({ code: 0, stderr: '' })
    const out = lines(run.stdout)
    expect(out.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5])
    expect(out[2]).toEqual({
      seq: 3,
      at: '2026-11-03T12:00:00.000Z',
      type: 'login.succeeded',
      outcome: 'success',
      user_id: 1,
      username: 'Alice',
      ip: null,
      user_agent: null,
      detail: { sessionId: 's1' },
      prev_hash: out[1].hash,
      hash: expect.stringMatching(/^[0-9a-f]{64}$/),
    })
    // The fields in the order the table has them, in every line.
    expect(new Set(out.map((e) => Object.keys(e).join()))).toEqual(
      new Set(['seq,at,type,outcome,user_id,username,ip,user_agent,detail,prev_hash,hash']),
    )
  })

  it('filters by time: --since inclusive, --until exclusive', async () => {
    const run = await runCli(
      ['audit', 'export', '--since', '2026-11-02T12:00:00Z', '--until', '2026-11-04'],
      log.env,
    )
    expect(lines(run.stdout).map((e) => e.seq)).toEqual([2, 3, 4])
  })

  it('filters by user: an id, a name (its entries and attempts naming it), or a deleted user by name', async () => {
    const byId = await runCli(['audit', 'export', '--user', '1'], log.env)
    expect(lines(byId.stdout).map((e) => e.seq)).toEqual([2, 3])
    // "alice" resolves to user 1 (Alice) and also matches the failed attempt typed as "alice".
    const byName = await runCli(['audit', 'export', '--user', 'alice'], log.env)
    expect(lines(byName.stdout).map((e) => e.seq)).toEqual([1, 2, 3])
    const gone = await runCli(['audit', 'export', '--user', 'carol', '--since', '2026-11-04'], log.env)
    expect(lines(gone.stdout).map((e) => e.seq)).toEqual([5])
    const nobody = await runCli(['audit', 'export', '--user', 'nobody'], log.env)
    expect(nobody).toMatchObject({ code: 0, stdout: '' })
  })

  it('refuses a time that is not ISO 8601', async () => {
    const run = await runCli(['audit', 'export', '--since', 'last tuesday'], log.env)
    expect(run.code).toBe(1)
    expect(run.stderr).toMatch(/--since: expected an ISO 8601 date or time/)
  })
})

describe('authgate audit prune', () => {
  it('removes entries older than AUDIT_RETENTION_DAYS, and verify stays green', async () => {
    const now = Date.now()
    const log = await logWith(
      'prune',
      [100, 90, 40, 10, 1].map((daysAgo, i) => [
        now - daysAgo * DAY,
        { type: 'login.succeeded', outcome: 'success', userId: i + 1 },
      ]),
    )
    const run = await runCli(['audit', 'prune'], { ...log.env, AUDIT_RETENTION_DAYS: '30' })
    expect(run).toMatchObject({ code: 0, stdout: 'Pruned 3 entries older than 30 days.\n' })
    const verify = await runCli(['audit', 'verify'], log.env)
    expect(verify.code).toBe(0)
    // The prune is itself an entry.
    expect(verify.stdout).toMatch(/^OK: 3 entries, seq 4 to 6 \(entries before seq 4 were pruned\)/)
    const forever = await runCli(['audit', 'prune'], { ...log.env, AUDIT_RETENTION_DAYS: '0' })
    expect(forever).toMatchObject({ code: 0 })
    expect(forever.stdout).toMatch(/kept forever/)
  })
})

describe('admin actions in the audit log', () => {
  it('records each change with actor cli and the OS user, success or failure; reads record nothing', async () => {
    const log = await logWith('admin', [
      [Date.now() - 100 * DAY, { type: 'login.succeeded', outcome: 'success', userId: 99 }],
    ])
    const env = log.env
    const ok = { code: 0 }
    expect(await runCli(['migrate', '--down'], env)).toMatchObject(ok)
    expect(await runCli(['migrate'], env)).toMatchObject(ok)
    expect(await runCli(['user', 'create', 'alice'], env, 'an admin made passphrase\n')).toMatchObject(ok)
    expect(await runCli(['user', 'create', 'weakling'], env, 'password\n')).toMatchObject({ code: 1 })
    expect(await runCli(['user', 'set-password', 'Alice'], env, 'a reset passphrase 2\n')).toMatchObject(ok)
    expect(await runCli(['user', 'set-password', 'nobody'], env, 'a reset passphrase 2\n')).toMatchObject({
      code: 1,
    })
    expect(await runCli(['user', 'unlock', 'alice'], env)).toMatchObject(ok)
    expect(await runCli(['keys', 'rotate'], env)).toMatchObject(ok)
    expect(await runCli(['user', 'delete', 'alice'], env)).toMatchObject(ok)
    expect(await runCli(['audit', 'prune'], { ...env, AUDIT_RETENTION_DAYS: '30' })).toMatchObject({
      code: 0,
      stdout: 'Pruned 1 entries older than 30 days.\n',
    })

    const count = async () => lines((await runCli(['audit', 'export'], env)).stdout).length
    const before = await count()
    for (const read of [
      ['user', 'list'],
      ['keys', 'list'],
      ['audit', 'verify'],
      ['audit', 'export'],
    ])
      expect(await runCli(read, env)).toMatchObject(ok)
    expect(await count()).toBe(before)

    const entries = lines((await runCli(['audit', 'export'], env)).stdout)
    const operator = { actor: 'cli', osUser: userInfo().username }
    expect(entries.map((e) => [e.type, e.outcome, e.username, e.user_id])).toEqual([
      ['database.migrated', 'success', null, null],
      ['database.migrated', 'success', null, null],
      ['user.created', 'success', 'alice', 1],
      ['user.created', 'failure', 'weakling', null],
      ['password.reset', 'success', 'alice', 1],
      ['password.reset', 'failure', 'nobody', null],
      ['user.unlocked', 'success', 'alice', 1],
      ['key.rotated', 'success', null, null],
      ['user.deleted', 'success', 'alice', 1],
      ['audit.pruned', 'success', null, null],
    ])
    for (const e of entries) expect(e.detail, e.type).toMatchObject(operator)
    expect(entries.map((e) => e.detail)).toMatchObject([
      { direction: 'down', count: 1, last: newestMigration },
      { direction: 'up', count: 1, last: newestMigration },
      {},
      { reason: 'validation_error' },
      {},
      { reason: 'no_such_user' },
      {},
      { via: 'cli', kid: expect.any(String) },
      {},
      { count: 1, retentionDays: 30 },
    ])
    expect(JSON.stringify(entries)).not.toMatch(/admin made passphrase|reset passphrase|\$argon2/)
    const verify = await runCli(['audit', 'verify'], env)
    expect(verify.code).toBe(0)
    expect(verify.stdout).toMatch(/^OK: 10 entries, seq 2 to 11 \(entries before seq 2 were pruned\)/)
  })
})

describe('audit entries never hold a secret', () => {
  it('after the CLI and HTTP flows, no password, token or hash appears in any entry', async () => {
    const { url } = await freshDatabase('secrets.db')
    const env = { DATABASE_URL: url }
    const secrets = {
      created: 'cli created passphrase 1',
      reset: 'cli reset passphrase 2',
      registered: 'http registered passphrase 3',
      wrong: 'a wrong guess passphrase 4',
    }
    expect(await runCli(['user', 'create', 'carol'], env, `${secrets.created}\n`)).toMatchObject({ code: 0 })
    expect(await runCli(['user', 'set-password', 'carol'], env, `${secrets.reset}\n`)).toMatchObject({
      code: 0,
    })

    const app = await buildApp(loadConfig(env), { hasher: fastHasher })
    expect((await signUp(app, 'dave', secrets.registered)).statusCode).toBe(201)
    const ok = await logIn(app, 'dave', secrets.registered)
    expect(ok.statusCode).toBe(200)
    const pair = await pairOf(ok)
    expect((await logIn(app, 'dave', secrets.wrong)).statusCode).toBe(401)
    expect((await logIn(app, 'carol', secrets.reset)).statusCode).toBe(200)
    const next = await pairOf(await refresh(app, pair.refresh_token))
    // Closing flushes what the requests recorded.
    await app.close()
    const read = async <T>(query: string) => (await sql.raw<T>(query).execute(inspect(url))).rows
    // Everything secret at rest, read before the CLI deletes carol and rotates the key.
    const atRest = [
      ...(await read<{ password: string }>('select password from users')).map((u) => u.password),
      ...(await read<{ private_key: string }>('select private_key from authgate_signing_keys')).map(
        (k) => k.private_key.split('\n')[1],
      ),
    ]
    expect(await runCli(['user', 'delete', 'carol'], env)).toMatchObject({ code: 0 })
    expect(await runCli(['keys', 'rotate'], env)).toMatchObject({ code: 0 })

    const entries = await read<Record<string, unknown>>('select * from authgate_audit_log order by seq')
    // The HTTP flows record (login.succeeded, login.failed...), so this is not vacuous.
    expect(entries.length).toBeGreaterThan(0)
    const rotated = entries.filter((e) => e.type === 'key.rotated')
    expect(rotated).toMatchObject([{ outcome: 'success', user_id: null }])
    expect(JSON.parse(String(rotated[0]?.detail))).toMatchObject({ via: 'cli', kid: expect.any(String) })
    const haystack = JSON.stringify(entries)
    const kept = [
      ...Object.values(secrets),
      pair.access_token,
      pair.refresh_token,
      next.access_token,
      next.refresh_token,
      ...atRest,
    ]
    for (const secret of kept) {
      // Each is a real value: an empty or missing one would make the check below pass vacuously.
      expect(secret).toMatch(/.{8}/)
      expect(haystack).not.toContain(secret)
    }
    expect(haystack).not.toMatch(/\$argon2|\$2[aby]\$|eyJ[\w-]+\.eyJ|PRIVATE KEY/)
    for (const entry of entries) {
      const detail = entry.detail === null ? {} : JSON.parse(String(entry.detail))
      for (const [key, value] of Object.entries(detail)) {
        if (/password|secret|token/i.test(key) && !/id$/i.test(key)) expect(value, key).toBe('[withheld]')
      }
    }
    expect(await runCli(['audit', 'verify'], env)).toMatchObject({ code: 0 })
  })
})
