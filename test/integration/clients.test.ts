// The OAuth client registry on a real database (SQLite; PostgreSQL in the second run), driven by
// `authgate clients ...` in-process, with secrets checked through the domain as client
// authentication will check them.
import { describe, expect, it } from 'vitest'
import { noAudit } from '../../src/domain/audit.js'
import { createAuditService } from '../../src/domain/audit-writer.js'
import { createClientService } from '../../src/domain/clients.js'
import { systemClock } from '../../src/lib/clock.js'
import { sha256Hex } from '../../src/lib/crypto.js'
import { createAuditStore } from '../../src/storage/audit.repository.js'
import { createClientsRepository } from '../../src/storage/clients.repository.js'
import { createDatabase } from '../../src/storage/database.js'
import { freshDatabase, inspect } from '../helpers/app.js'
import { runCli } from '../helpers/cli.js'

// Dropped when the file ends (test/helpers/setup.ts).
const database = await freshDatabase('clients.db')
const env = { DATABASE_URL: database.url }
const WEB = 'https://app.example.com/callback'
// Every secret this file is handed: none may show up where secrets must not.
const secrets: string[] = []

/** Only the CLI deletes here: a domain service of this file that ends sessions or tokens is a bug. */
const ONLY_THE_CLI_DELETES = 'this file deletes clients only through the CLI'
const cliDeletes = {
  endSessions: () => Promise.reject(new Error(ONLY_THE_CLI_DELETES)),
  revocations: {
    apply: () => {
      throw new Error(ONLY_THE_CLI_DELETES)
    },
  },
  accessTokenLifetimeMs: 30 * 60_000,
}

/** The domain on the test's own connection: reads only, so it never holds a lock the CLI waits for. */
const registry = () =>
  createClientService({
    clients: createClientsRepository(inspect(database.url)),
    audit: noAudit,
    clock: systemClock,
    ...cliDeletes,
  })

/** Runs `authgate clients <args> --json` and parses the one JSON object it must print. */
async function clientsJson(args: string[]): Promise<Record<string, unknown>> {
  const run = await runCli(['clients', ...args, '--json'], env)
  expect(run, run.stderr).toMatchObject({ code: 0, stderr: '' })
  const lines = run.stdout.split('\n')
  expect(lines.length, run.stdout).toBe(2) // one line, then the final newline
  expect(lines[1]).toBe('')
  const parsed = JSON.parse(lines[0] as string) as Record<string, unknown>
  if (typeof parsed.client_secret === 'string') secrets.push(parsed.client_secret)
  return parsed
}

function expectNoSecret(text: string): void {
  expect(secrets.length).toBeGreaterThan(0)
  for (const secret of secrets) expect(text).not.toContain(secret)
}

async function storedRow(clientId: string) {
  return inspect(database.url)
    .selectFrom('authgate_oauth_clients')
    .selectAll()
    .where('client_id', '=', clientId)
    .executeTakeFirst()
}

async function auditEntries() {
  const rows = await inspect(database.url)
    .selectFrom('authgate_audit_log')
    .select(['type', 'outcome', 'detail'])
    .where('type', 'like', 'client.%')
    .orderBy('seq')
    .execute()
  return rows.map((r) => ({ ...r, detail: JSON.parse(String(r.detail)) as Record<string, unknown> }))
}

describe('authgate clients', () => {
  let confidential: Record<string, unknown>
  let publicClient: Record<string, unknown>

  it('create --json: one JSON object with client_id and client_secret, and only the hash is stored', async () => {
    confidential = await clientsJson([
      'create',
      '--name',
      'Web app',
      '--redirect-uri',
      WEB,
      '--redirect-uri',
      'http://127.0.0.1:8080/cb',
      '--post-logout-redirect-uri',
      'https://app.example.com/',
      '--grant',
      'authorization_code',
      '--grant',
      'refresh_token',
      '--grant',
      'client_credentials',
      '--scope',
      'openid profile email',
    ])
    expect(confidential).toEqual({
      client_id: expect.stringMatching(/^[0-9a-f]{32}$/),
      client_secret: expect.stringMatching(/^[\w-]{43}$/),
      name: 'Web app',
      public: false,
      first_party: false,
      redirect_uris: [WEB, 'http://127.0.0.1:8080/cb'],
      post_logout_redirect_uris: ['https://app.example.com/'],
      grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
      scope: 'openid profile email',
      created_at: expect.any(String),
      secret_rotated_at: expect.any(String),
    })
    const id = confidential.client_id as string
    const secret = confidential.client_secret as string
    const row = await storedRow(id)
    expect(row?.secret_hash).toBe(sha256Hex(secret))
    expect(JSON.stringify(row)).not.toContain(secret)
    expect(await registry().verifySecret(id, secret)).toMatchObject({ clientId: id, name: 'Web app' })
    expect(await registry().verifySecret(id, secret.slice(1))).toBeUndefined()
  })

  it('create --public --first-party --json: no secret, the defaults, and nothing verifies', async () => {
    publicClient = await clientsJson([
      'create',
      '--name',
      'SPA',
      '--public',
      '--first-party',
      '--redirect-uri',
      'http://localhost:5173/callback',
    ])
    expect(publicClient).not.toHaveProperty('client_secret')
    expect(publicClient).toMatchObject({
      public: true,
      first_party: true,
      grant_types: ['authorization_code', 'refresh_token'],
      scope: 'openid profile offline_access',
      secret_rotated_at: null,
    })
    const id = publicClient.client_id as string
    expect((await storedRow(id))?.secret_hash).toBeNull()
    expect(await registry().verifySecret(id, '')).toBeUndefined()
    const rotate = await runCli(['clients', 'rotate-secret', id], env)
    expect(rotate).toMatchObject({ code: 1, stdout: '' })
    expect(rotate.stderr).toMatch(/is public: it has no secret to rotate/)
  })

  it('create in words prints the secret once, on stdout', async () => {
    const run = await runCli(['clients', 'create', '--name', 'Worded', '--redirect-uri', WEB], env)
    expect(run).toMatchObject({ code: 0, stderr: '' })
    const [created, secretLine] = run.stdout.trimEnd().split('\n')
    expect(created).toMatch(/^Created confidential client Worded with ID [0-9a-f]{32}\.$/)
    const secret = /: ([\w-]{43})$/.exec(secretLine ?? '')?.[1] as string
    secrets.push(secret)
    expect(
      await registry().verifySecret(/ID ([0-9a-f]{32})/.exec(created ?? '')?.[1] as string, secret),
    ).toBeDefined()
  })

  it.each([
    ['a fragment', ['--redirect-uri', 'https://app.example.com/cb#x'], /has a fragment/],
    ['http to a host not loopback', ['--redirect-uri', 'http://app.example.com/cb'], /not loopback/],
    ['a wildcard', ['--redirect-uri', 'https://*.example.com/cb'], /wildcard/],
    ['userinfo', ['--redirect-uri', 'https://me@app.example.com/cb'], /userinfo/],
    ['no redirect URI', [], /authorization_code needs at least one redirect URI/],
    [
      'a public client_credentials client',
      ['--public', '--grant', 'client_credentials'],
      /needs a confidential client/,
    ],
    ['an unknown grant', ['--redirect-uri', WEB, '--grant', 'password'], /Unknown grant type password/],
    ['a bad scope', ['--redirect-uri', WEB, '--scope', 'openid "quoted"'], /not a scope token/],
  ])('create refuses %s: exit 1, the reason on stderr, nothing stored', async (_why, args, reason) => {
    const before = (await registry().list()).length
    const run = await runCli(['clients', 'create', '--name', 'refused', ...args, '--json'], env)
    expect(run).toMatchObject({ code: 1, stdout: '' })
    expect(run.stderr).toMatch(/^Invalid: /)
    expect(run.stderr).toMatch(reason)
    expect((await registry().list()).length).toBe(before)
  })

  it('list and show, in words and as JSON, never print a secret', async () => {
    const list = await runCli(['clients', 'list'], env)
    expect(list).toMatchObject({ code: 0, stderr: '' })
    const [header, ...rows] = list.stdout.trimEnd().split('\n')
    expect(header).toBe('client_id\tname\ttype\tfirst_party\tgrant_types\tcreated_at')
    expect(rows.map((r) => r.split('\t').slice(0, 3))).toEqual([
      [confidential.client_id, 'Web app', 'confidential'],
      [publicClient.client_id, 'SPA', 'public'],
      [expect.any(String), 'Worded', 'confidential'],
    ])
    const listJson = await runCli(['clients', 'list', '--json'], env)
    const parsed = listJson.stdout
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l))
    expect(parsed.map((c) => c.client_id)).toEqual(rows.map((r) => r.split('\t')[0]))
    const { client_secret: _, ...shown } = confidential
    expect(parsed[0]).toEqual(shown)
    const show = await runCli(['clients', 'show', confidential.client_id as string], env)
    expect(show).toMatchObject({ code: 0, stderr: '' })
    expect(show.stdout).toContain(`redirect_uri: ${WEB}\n`)
    expect(show.stdout).toContain('scope: openid profile email\n')
    expect(await clientsJson(['show', confidential.client_id as string])).toEqual(shown)
    for (const run of [list, listJson, show]) {
      expectNoSecret(run.stdout + run.stderr)
      expect(run.stdout).not.toMatch(/secret_hash|[0-9a-f]{64}/)
    }
  })

  it('show of an unknown id exits 1 and says so', async () => {
    expect(await runCli(['clients', 'show', 'nope'], env)).toEqual({
      code: 1,
      stdout: '',
      stderr: 'No client with ID nope.\n',
    })
  })

  it('rotate-secret: the new secret is accepted, the old one refused', async () => {
    const id = confidential.client_id as string
    const old = confidential.client_secret as string
    const rotated = await clientsJson(['rotate-secret', id])
    expect(rotated).toMatchObject({ client_id: id, client_secret: expect.stringMatching(/^[\w-]{43}$/) })
    expect(rotated.client_secret).not.toBe(old)
    expect(await registry().verifySecret(id, old)).toBeUndefined()
    expect(await registry().verifySecret(id, rotated.client_secret as string)).toMatchObject({ clientId: id })
    confidential = rotated
  })

  it('delete: the client is gone, its secret no longer verifies; a second delete exits 1', async () => {
    const id = confidential.client_id as string
    const run = await runCli(['clients', 'delete', id], env)
    expect(run).toEqual({ code: 0, stdout: `Deleted client Web app (${id}).\n`, stderr: '' })
    expect(await storedRow(id)).toBeUndefined()
    expect(await registry().verifySecret(id, confidential.client_secret as string)).toBeUndefined()
    expect((await runCli(['clients', 'show', id], env)).code).toBe(1)
    expect(await runCli(['clients', 'delete', id], env)).toMatchObject({
      code: 1,
      stderr: `No client with ID ${id}.\n`,
    })
  })

  it('every change is in the audit log, with the operator, and no secret anywhere in it', async () => {
    const entries = await auditEntries()
    const brief = entries.map((e) => [e.type, e.outcome, e.detail.reason ?? null])
    expect(brief.slice(0, 4)).toEqual([
      ['client.created', 'success', null],
      ['client.created', 'success', null],
      ['client.secret_rotated', 'failure', 'invalid_request'], // the public client
      ['client.created', 'success', null],
    ])
    expect(brief.filter(([t, o]) => t === 'client.created' && o === 'failure')).toHaveLength(8)
    expect(brief.slice(-2)).toEqual([
      ['client.deleted', 'success', null],
      ['client.deleted', 'failure', 'no_such_client'],
    ])
    for (const e of entries) expect(e.detail).toMatchObject({ actor: 'cli', osUser: expect.any(String) })
    expect(entries[0]?.detail).toMatchObject({
      clientId: confidential.client_id,
      name: 'Web app',
      public: false,
      grantTypes: 'authorization_code refresh_token client_credentials',
      scope: 'openid profile email',
      redirectUris: `${WEB} http://127.0.0.1:8080/cb`,
    })
    const all = await inspect(database.url).selectFrom('authgate_audit_log').selectAll().execute()
    expectNoSecret(JSON.stringify(all))
    for (const s of secrets) expect(JSON.stringify(all)).not.toContain(sha256Hex(s))
  })
})

describe('two concurrent rotate-secret calls', () => {
  // Defined outcome: a rotation stores its secret only over the hash it read (a compare-and-swap),
  // so of two that read the same secret exactly one stores its own and reports it; the other
  // stores nothing and fails, telling the operator so. One valid secret remains: the winner's.
  // (Two that do not overlap both succeed, one after the other: the later one's secret is kept.)
  it('that read the same secret: one stores and reports its own, the other fails and stores nothing', async () => {
    const { url } = await freshDatabase('clients-race.db')
    const db = createDatabase(url)
    try {
      const setup = await runCli(['clients', 'create', '--name', 'raced', '--redirect-uri', WEB, '--json'], {
        DATABASE_URL: url,
      })
      const { client_id: id, client_secret: first } = JSON.parse(setup.stdout)
      const real = createClientsRepository(db)
      // Both reads happen before either write: the interleaving a lost update needs. On PostgreSQL
      // the two UPDATEs then run on two pooled connections at once.
      let reads = 0
      let bothReadNow = () => {}
      const bothRead = new Promise<void>((resolve) => {
        bothReadNow = resolve
      })
      const racing = {
        ...real,
        async find(clientId: string) {
          const found = await real.find(clientId)
          if (++reads === 2) bothReadNow()
          await bothRead
          return found
        },
      }
      const audit = createAuditService({ store: createAuditStore(db), clock: systemClock, retentionDays: 0 })
      const service = createClientService({ clients: racing, audit, clock: systemClock, ...cliDeletes })
      const operator = { actor: 'cli', osUser: 'test' } as const
      const results = await Promise.allSettled([
        service.rotateSecret(operator, id),
        service.rotateSecret(operator, id),
      ])
      await audit.flush()
      const won = results.flatMap((r) => (r.status === 'fulfilled' && r.value ? [r.value.secret] : []))
      const lost = results.flatMap((r) => (r.status === 'rejected' ? [r.reason] : []))
      expect(won).toHaveLength(1)
      expect(lost).toHaveLength(1)
      expect(String(lost[0])).toMatch(/changed by another command meanwhile.*stored nothing/)
      const check = createClientService({ clients: real, audit: noAudit, clock: systemClock, ...cliDeletes })
      expect(await check.verifySecret(id, won[0] as string)).toBeDefined()
      expect(await check.verifySecret(id, first)).toBeUndefined()
      const rows = await db
        .selectFrom('authgate_audit_log')
        .select(['outcome', 'detail'])
        .where('type', '=', 'client.secret_rotated')
        .execute()
      expect(rows.map((r) => [r.outcome, JSON.parse(String(r.detail)).reason ?? null]).sort()).toEqual([
        ['failure', 'invalid_request'],
        ['success', null],
      ])
    } finally {
      await db.destroy()
    }
  })
})
