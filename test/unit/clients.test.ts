// The client registry's rules (domain/clients.ts): which redirect URIs, grants and scopes may be
// registered, and how secrets are made, kept and checked, over an in-memory repository.
import { describe, expect, it, vi } from 'vitest'
import type { AuditEvent, AuditLog, Operator } from '../../src/domain/audit.js'
import {
  type ClientsRepository,
  checkNewClient,
  createClientService,
  DEFAULT_SCOPE,
  parseScope,
  redirectUriProblem,
  type StoredClient,
} from '../../src/domain/clients.js'
import { ValidationError } from '../../src/domain/errors.js'
import { CLIENT_CUTOFF_MARGIN_MS } from '../../src/domain/revocations.js'
import { frozenClock } from '../../src/lib/clock.js'
import * as crypto from '../../src/lib/crypto.js'

// Counted, not changed: verifySecret must hash and compare once whatever it finds.
vi.mock('../../src/lib/crypto.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('../../src/lib/crypto.js')>()
  return { ...real, sha256Hex: vi.fn(real.sha256Hex), constantTimeEqual: vi.fn(real.constantTimeEqual) }
})

describe('redirectUriProblem', () => {
  it.each([
    ['https://app.example.com/callback'],
    ['https://app.example.com:8443/cb?tenant=a&x=%2F'],
    ['https://app.example.com'],
    ['http://127.0.0.1:8080/callback'],
    ['http://127.0.0.1/cb'],
    ['http://[::1]:3000/cb'],
    ['http://localhost:3000/callback'],
    ['http://localhost/cb'],
  ])('accepts %s', (uri) => {
    expect(redirectUriProblem(uri)).toBeUndefined()
  })

  it.each([
    ['a fragment', 'https://app.example.com/cb#x', /fragment/],
    ['an empty fragment', 'https://app.example.com/cb#', /fragment/],
    ['a relative path', '/callback', /not an absolute URI/],
    ['a scheme-relative URI', '//app.example.com/cb', /not an absolute URI/],
    ['a host without a scheme', 'app.example.com/cb', /not an absolute URI/],
    ['https without //', 'https:app.example.com/cb', /not an absolute URI/],
    ['no host', 'https:///cb', /no host/],
    ['only a port', 'https://:443/cb', /no host/],
    ['http to another host', 'http://app.example.com/cb', /not loopback/],
    ['http to a host starting like loopback', 'http://127.0.0.1.evil.example/cb', /not loopback/],
    ['http to a host ending in localhost', 'http://localhost.evil.example/cb', /not loopback/],
    ['userinfo', 'https://user:pass@app.example.com/cb', /userinfo/],
    ['a user name alone', 'https://evil.example@app.example.com/cb', /userinfo/],
    ['an empty userinfo', 'https://@app.example.com/cb', /userinfo/],
    ['a backslash (read as / by browsers)', 'https://evil.example\\@app.example.com/cb', /cannot/],
    ['a wildcard host', 'https://*.example.com/cb', /wildcard/],
    ['a wildcard path', 'https://app.example.com/*', /wildcard/],
    ['another scheme', 'javascript://app.example.com/%0aalert(1)', /uses javascript/],
    ['a private-use scheme', 'com.example.app://callback', /uses com\.example\.app/],
    ['a space', 'https://app.example.com/c b', /cannot/],
    ['a leading space (WHATWG URL would trim it)', ' https://app.example.com/cb', /cannot/],
    ['a newline', 'https://app.example.com/cb\n', /cannot/],
    ['non-ASCII', 'https://bücher.example/cb', /cannot/],
    ['an invalid port', 'https://app.example.com:99999/cb', /not a valid URI/],
    ['the empty string', '', /empty/],
    ['an overlong URI', `https://app.example.com/${'a'.repeat(2000)}`, /longer than 2000/],
  ])('refuses %s', (_why, uri, reason) => {
    expect(redirectUriProblem(uri)).toMatch(reason)
  })
})

describe('parseScope', () => {
  it('splits on spaces, drops repeats, keeps the order', () => {
    expect(parseScope('openid  profile openid email')).toEqual({ scopes: ['openid', 'profile', 'email'] })
  })

  it.each([
    ['empty', '', /empty/],
    ['only spaces', '   ', /empty/],
    ['a double quote', 'openid "x"', /not a scope token/],
    ['a backslash', 'a\\b', /not a scope token/],
    ['a tab', 'openid\tprofile', /not a scope token/],
    ['non-ASCII', 'profil\u00e9', /not a scope token/],
  ])('refuses %s', (_why, scope, reason) => {
    const parsed = parseScope(scope)
    expect('problem' in parsed && parsed.problem).toMatch(reason)
  })
})

const WEB = 'https://app.example.com/cb'

function problems(input: Parameters<typeof checkNewClient>[0]): string[] {
  try {
    checkNewClient(input)
  } catch (err) {
    if (err instanceof ValidationError) return err.errors.map((e) => `${e.loc.join('.')}: ${e.msg}`)
    throw err
  }
  return []
}

describe('checkNewClient', () => {
  it('defaults: confidential, not first-party, code + refresh, openid profile offline_access', () => {
    expect(checkNewClient({ name: ' Web app ', redirectUris: [WEB] })).toEqual({
      name: 'Web app',
      public: false,
      firstParty: false,
      redirectUris: [WEB],
      postLogoutRedirectUris: [],
      grantTypes: ['authorization_code', 'refresh_token'],
      scopes: DEFAULT_SCOPE.split(' '),
    })
  })

  it('a machine client: client_credentials alone, no redirect URI', () => {
    expect(
      checkNewClient({ name: 'batch', grantTypes: ['client_credentials'], scope: 'reports' }),
    ).toMatchObject({
      grantTypes: ['client_credentials'],
      redirectUris: [],
      scopes: ['reports'],
    })
  })

  it.each([
    ['an empty name', { name: '  ', redirectUris: [WEB] }, /^name: The client name is empty/],
    ['a control character in the name', { name: 'a\u001bb', redirectUris: [WEB] }, /^name: .*control/],
    [
      'an unknown grant',
      { name: 'x', redirectUris: [WEB], grantTypes: ['authorization_code', 'password'] },
      /Unknown grant type password/,
    ],
    [
      'client_credentials for a public client',
      {
        name: 'x',
        public: true,
        redirectUris: [WEB],
        grantTypes: ['authorization_code', 'client_credentials'],
      },
      /client_credentials needs a confidential client/,
    ],
    [
      'refresh_token without authorization_code',
      { name: 'x', grantTypes: ['client_credentials', 'refresh_token'] },
      /refresh_token needs authorization_code/,
    ],
    ['the code flow without a redirect URI', { name: 'x' }, /^redirect_uris: authorization_code needs/],
    [
      'redirect URIs for a client without the code flow',
      { name: 'x', grantTypes: ['client_credentials'], redirectUris: [WEB] },
      /Redirect URIs are for the authorization_code grant/,
    ],
    [
      'a bad redirect URI',
      { name: 'x', redirectUris: [WEB, 'http://a.example/cb'] },
      /^redirect_uris\.1: .*not loopback/,
    ],
    [
      'a bad post-logout redirect URI',
      { name: 'x', redirectUris: [WEB], postLogoutRedirectUris: ['https://a.example/#x'] },
      /^post_logout_redirect_uris\.0: .*fragment/,
    ],
    ['a bad scope', { name: 'x', redirectUris: [WEB], scope: 'openid "x"' }, /^scope: The scope has/],
  ])('refuses %s', (_why, input, reason) => {
    expect(problems(input)).toEqual([expect.stringMatching(reason)])
  })

  it('names every problem at once', () => {
    expect(problems({ name: '', public: true, grantTypes: ['client_credentials'], scope: '' })).toHaveLength(
      3,
    )
  })
})

/** The repository's contract, in memory. */
function memoryClients(): ClientsRepository & {
  rows: Map<string, StoredClient>
  cutoffs: { clientId: string; at: number; expires_at: number }[]
} {
  const rows = new Map<string, StoredClient>()
  const cutoffs: { clientId: string; at: number; expires_at: number }[] = []
  return {
    rows,
    cutoffs,
    insert: async (c) => void rows.set(c.clientId, structuredClone(c)),
    find: async (id) => structuredClone(rows.get(id)),
    list: async () => [...rows.values()].map((c) => structuredClone(c)),
    async replaceSecretHash(id, expected, next, at) {
      const row = rows.get(id)
      if (row?.secretHash !== expected) return false
      rows.set(id, { ...row, secretHash: next, secretRotatedAt: at })
      return true
    },
    async delete(id, { at, expires_at }) {
      if (!rows.delete(id)) return false
      cutoffs.push({ clientId: id, at, expires_at })
      return true
    },
  }
}

const TOKEN_LIFETIME_MS = 30 * 60_000

const operator: Operator = { actor: 'cli', osUser: 'ops' }

function service() {
  const clients = memoryClients()
  const events: AuditEvent[] = []
  const audit: AuditLog = { record: (e) => void events.push(e), recordRepeated: (e) => void events.push(e) }
  const clock = frozenClock(Date.UTC(2026, 11, 3))
  // Which clients' sessions were ended, and whether the client's row was gone by then.
  const ended: { clientId: string; rowGone: boolean }[] = []
  const endSessions = async (clientId: string) => {
    ended.push({ clientId, rowGone: !clients.rows.has(clientId) })
    return 2
  }
  // What this process's revocation view was handed, and whether the row was gone by then.
  const applied: { entry: object; rowGone: boolean }[] = []
  const revocations = {
    apply: (entries: { subject: string }[]) => {
      for (const entry of entries) applied.push({ entry, rowGone: !clients.rows.has(entry.subject) })
    },
  }
  return {
    clients,
    events,
    clock,
    ended,
    applied,
    service: createClientService({
      clients,
      audit,
      clock,
      endSessions,
      revocations,
      accessTokenLifetimeMs: TOKEN_LIFETIME_MS,
    }),
  }
}

describe('the client service', () => {
  it('a confidential client: a 256-bit secret, returned once, stored only as its SHA-256', async () => {
    const { clients, service: s, events } = service()
    const { client, secret } = await s.create(operator, { name: 'Web', redirectUris: [WEB] })
    expect(client.clientId).toMatch(/^[0-9a-f]{32}$/)
    expect(secret).toMatch(/^[\w-]{43}$/) // 32 bytes, base64url
    const stored = clients.rows.get(client.clientId)
    expect(stored?.secretHash).toBe(crypto.sha256Hex(secret as string))
    expect(JSON.stringify(stored)).not.toContain(secret)
    expect(client).not.toHaveProperty('secretHash')
    expect(client.secretRotatedAt).toBe(client.createdAt)
    expect(await s.verifySecret(client.clientId, secret as string)).toEqual(client)
    expect(await s.verifySecret(client.clientId, `${secret}x`)).toBeUndefined()
    expect(events).toEqual([
      {
        type: 'client.created',
        outcome: 'success',
        detail: expect.objectContaining({
          actor: 'cli',
          osUser: 'ops',
          clientId: client.clientId,
          public: false,
        }),
      },
    ])
    expect(JSON.stringify(events)).not.toContain(secret)
  })

  it('two clients get different ids and secrets', async () => {
    const { service: s } = service()
    const a = await s.create(operator, { name: 'A', redirectUris: [WEB] })
    const b = await s.create(operator, { name: 'B', redirectUris: [WEB] })
    expect(a.client.clientId).not.toBe(b.client.clientId)
    expect(a.secret).not.toBe(b.secret)
  })

  it('a public client: no secret, nothing verifies, nothing to rotate', async () => {
    const { clients, service: s } = service()
    const { client, secret } = await s.create(operator, { name: 'SPA', public: true, redirectUris: [WEB] })
    expect(secret).toBeUndefined()
    expect(clients.rows.get(client.clientId)?.secretHash).toBeNull()
    expect(client.secretRotatedAt).toBeNull()
    expect(await s.verifySecret(client.clientId, '')).toBeUndefined()
    await expect(s.rotateSecret(operator, client.clientId)).rejects.toThrow(/is public: it has no secret/)
  })

  it('verifySecret costs one hash and one constant-time compare, for an unknown, public or known client', async () => {
    const { service: s } = service()
    const web = await s.create(operator, { name: 'Web', redirectUris: [WEB] })
    const spa = await s.create(operator, { name: 'SPA', public: true, redirectUris: [WEB] })
    for (const id of ['no-such-client', spa.client.clientId, web.client.clientId]) {
      vi.mocked(crypto.sha256Hex).mockClear()
      vi.mocked(crypto.constantTimeEqual).mockClear()
      expect(await s.verifySecret(id, 'a guess')).toBeUndefined()
      expect(crypto.sha256Hex).toHaveBeenCalledTimes(1)
      expect(crypto.sha256Hex).toHaveBeenCalledWith('a guess')
      expect(crypto.constantTimeEqual).toHaveBeenCalledTimes(1)
    }
  })

  it('rotation: the new secret verifies, the old one no longer does', async () => {
    const { service: s, clock, events } = service()
    const { client, secret: old } = await s.create(operator, { name: 'Web', redirectUris: [WEB] })
    clock.advance(60_000)
    const rotated = await s.rotateSecret(operator, client.clientId)
    expect(rotated?.secret).not.toBe(old)
    expect(rotated?.client.secretRotatedAt).toBe(client.createdAt + 60_000)
    expect(await s.verifySecret(client.clientId, old as string)).toBeUndefined()
    expect(await s.verifySecret(client.clientId, rotated?.secret as string)).toBeDefined()
    expect(events.at(-1)).toMatchObject({ type: 'client.secret_rotated', outcome: 'success' })
  })

  it('a rotation whose read hash changed meanwhile stores nothing and fails', async () => {
    const { clients, service: s, events } = service()
    const { client, secret } = await s.create(operator, { name: 'Web', redirectUris: [WEB] })
    const replace = clients.replaceSecretHash
    // Another rotation lands between this one's read and its write.
    clients.replaceSecretHash = async (id, _expected, next, at) => {
      await replace(id, crypto.sha256Hex(secret as string), crypto.sha256Hex('the other one'), at)
      return replace(id, crypto.sha256Hex(secret as string), next, at)
    }
    await expect(s.rotateSecret(operator, client.clientId)).rejects.toThrow(
      /changed by another command meanwhile/,
    )
    expect(await s.verifySecret(client.clientId, 'the other one')).toBeDefined()
    expect(events.at(-1)).toMatchObject({
      type: 'client.secret_rotated',
      outcome: 'failure',
      detail: { clientId: client.clientId, reason: 'invalid_request' },
    })
  })

  it('unknown ids: show and rotate find nothing, delete deletes nothing, each failure audited', async () => {
    const { clients, service: s, events, ended, applied } = service()
    expect(await s.show('nope')).toBeUndefined()
    expect(await s.rotateSecret(operator, 'nope')).toBeUndefined()
    expect(await s.delete(operator, 'nope')).toBeUndefined()
    // Sessions are still ended: running a deletion again finishes one that was interrupted.
    expect(ended).toEqual([{ clientId: 'nope', rowGone: true }])
    // No cutoff without a client: its transaction wrote it only with the row's deletion.
    expect(clients.cutoffs).toEqual([])
    expect(applied).toEqual([])
    expect(events.map((e) => [e.type, e.outcome, e.detail?.reason])).toEqual([
      ['client.secret_rotated', 'failure', 'no_such_client'],
      ['client.deleted', 'failure', 'no_such_client'],
    ])
  })

  it('a refused creation stores nothing and is audited with its reason', async () => {
    const { clients, service: s, events } = service()
    await expect(s.create(operator, { name: 'x', redirectUris: ['https://*.example.com/'] })).rejects.toThrow(
      ValidationError,
    )
    expect(clients.rows.size).toBe(0)
    expect(events).toEqual([
      {
        type: 'client.created',
        outcome: 'failure',
        detail: { actor: 'cli', osUser: 'ops', reason: 'validation_error' },
      },
    ])
  })

  it("delete voids the client's access tokens: a cutoff with the row, then this process's view", async () => {
    const { clients, service: s, clock, applied } = service()
    const { client } = await s.create(operator, { name: 'Machine', grantTypes: ['client_credentials'] })
    clock.advance(1_234) // a deletion in the middle of a second
    const now = clock.now()
    expect(await s.delete(operator, client.clientId)).toEqual(client)
    // Past the deletion by the margin, kept until a token issued at the cutoff has expired.
    const at = now + CLIENT_CUTOFF_MARGIN_MS
    const entry = { at, expires_at: at + TOKEN_LIFETIME_MS }
    expect(clients.cutoffs).toEqual([{ clientId: client.clientId, ...entry }])
    expect(applied).toEqual([
      { entry: { kind: 'client', subject: client.clientId, ...entry }, rowGone: true },
    ])
  })

  it('rotation writes no cutoff: tokens already issued stay valid', async () => {
    const { clients, service: s, applied } = service()
    const { client } = await s.create(operator, { name: 'Machine', grantTypes: ['client_credentials'] })
    expect(await s.rotateSecret(operator, client.clientId)).toBeDefined()
    expect(clients.cutoffs).toEqual([])
    expect(applied).toEqual([])
  })

  it('delete removes the client, then ends its sessions: its secret no longer verifies', async () => {
    const { service: s, events, ended } = service()
    const { client, secret } = await s.create(operator, { name: 'Web', redirectUris: [WEB] })
    expect(await s.delete(operator, client.clientId)).toEqual(client)
    // After the row is gone, so no code exchange can start a session the ending misses.
    expect(ended).toEqual([{ clientId: client.clientId, rowGone: true }])
    expect(await s.show(client.clientId)).toBeUndefined()
    expect(await s.list()).toEqual([])
    expect(await s.verifySecret(client.clientId, secret as string)).toBeUndefined()
    expect(events.at(-1)).toMatchObject({
      type: 'client.deleted',
      outcome: 'success',
      detail: { clientId: client.clientId, name: 'Web', endedSessions: 2 },
    })
  })
})
