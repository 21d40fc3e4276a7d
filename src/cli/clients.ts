// `authgate clients create | list | show | rotate-secret | delete`: the OAuth / OpenID Connect
// client registry (domain/clients.ts). A secret is printed once, by create and rotate-secret, and
// never by list or show; every change is in the audit log.
import type { Command } from 'commander'
import { type Client, type ClientService, createClientService, GRANT_TYPES } from '../domain/clients.js'
import type { RevocationView } from '../domain/revocations.js'
import { createSessionLifecycle } from '../domain/sessions.js'
import { systemClock } from '../lib/clock.js'
import { openAudit, openDatabase } from '../services.js'
import { createClientsRepository } from '../storage/clients.repository.js'
import { migrateToLatest } from '../storage/migrate.js'
import { createSessionsRepository } from '../storage/sessions.repository.js'
import { type Cli, snakeCase, tellRunningServers } from './context.js'

// Only the database and the audit log (and, once a deletion revoked anything, the broadcast):
// managing clients must not start anything else.
async function withClients<T>(cli: Cli, fn: (clients: ClientService) => Promise<T>): Promise<T> {
  const config = cli.config()
  const db = openDatabase(config)
  try {
    await migrateToLatest(db)
    const audit = openAudit(db, config, systemClock, (err) =>
      cli.err(`Audit log write failed: ${err instanceof Error ? err.message : err}`),
    )
    let ended = false
    // No view of its own here: the servers' views read the feed the revocations went into.
    const revocations: Pick<RevocationView, 'apply'> = {
      apply: (entries) => {
        if (entries.length > 0) ended = true
      },
    }
    const accessTtlMs = config.accessTokenExpireMinutes * 60_000
    const lifecycle = createSessionLifecycle({
      sessions: createSessionsRepository(db),
      revocations,
      clock: systemClock,
      policy: { maxPerUser: config.maxSessionsPerUser },
      accessTtlMs,
    })
    try {
      return await fn(
        createClientService({
          clients: createClientsRepository(db),
          audit,
          clock: systemClock,
          endSessions: (clientId) => lifecycle.endClient(clientId),
          revocations,
          // The lifetime of client access tokens too (services.ts createClientTokenService).
          accessTokenLifetimeMs: accessTtlMs,
        }),
      )
    } finally {
      // What the command recorded is written before the database closes.
      await audit.flush()
      // Running servers read the feed now, not at their next poll.
      if (ended) await tellRunningServers(cli, config, db, 'revocations', 'a second')
    }
  } finally {
    await db.destroy()
  }
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString())

/** A client as --json prints it: snake_case, the scope as one string (RFC 6749 §3.3). Never a secret. */
const view = (c: Client) =>
  snakeCase({
    clientId: c.clientId,
    name: c.name,
    public: c.public,
    firstParty: c.firstParty,
    redirectUris: c.redirectUris,
    postLogoutRedirectUris: c.postLogoutRedirectUris,
    grantTypes: c.grantTypes,
    scope: c.scopes.join(' '),
    createdAt: iso(c.createdAt),
    secretRotatedAt: iso(c.secretRotatedAt),
  })

const kind = (c: Client) => (c.public ? 'public' : 'confidential')
const COLUMNS = ['client_id', 'name', 'type', 'first_party', 'grant_types', 'created_at']
const row = (c: Client) =>
  [c.clientId, c.name, kind(c), c.firstParty, c.grantTypes.join(' '), iso(c.createdAt)].join('\t')

function details(c: Client): string[] {
  return [
    `client_id: ${c.clientId}`,
    `name: ${c.name}`,
    `type: ${kind(c)}${c.public ? ' (no secret: PKCE is its proof)' : ''}`,
    `first_party: ${c.firstParty}`,
    `grant_types: ${c.grantTypes.join(' ')}`,
    `scope: ${c.scopes.join(' ')}`,
    ...c.redirectUris.map((u) => `redirect_uri: ${u}`),
    ...c.postLogoutRedirectUris.map((u) => `post_logout_redirect_uri: ${u}`),
    `created_at: ${iso(c.createdAt)}`,
    ...(c.public ? [] : [`secret_rotated_at: ${iso(c.secretRotatedAt)}`]),
  ]
}

const SHOWN_ONCE = 'shown once: store it now, AuthGate keeps only its hash'
const collect = (value: string, previous: string[] = []) => [...previous, value]

export function registerClientCommands(program: Command, cli: Cli): void {
  const clients = program
    .command('clients')
    .description(
      'Manage the OAuth 2.0 / OpenID Connect clients (applications that sign users in with AuthGate).',
    )

  clients
    .command('create')
    .description(
      'Register a client. A confidential one (the default) gets a secret, printed once; a public one ' +
        '(--public: a browser or native app) has none and proves itself with PKCE. Redirect URIs are ' +
        'matched exactly: absolute, no fragment, no wildcard, https (or http on 127.0.0.1, [::1], localhost).',
    )
    .requiredOption('--name <name>', 'the name users see on the consent page')
    .option(
      '--redirect-uri <uri>',
      'a redirect URI (repeat for more); needed for authorization_code',
      collect,
    )
    .option(
      '--post-logout-redirect-uri <uri>',
      'where logout may send the user back (repeat for more)',
      collect,
    )
    .option('--public', 'a public client: no secret (single-page and native apps)')
    .option('--first-party', 'a first-party client: its users are not asked for consent')
    .option(
      '--grant <type>',
      `an allowed grant type, one of ${GRANT_TYPES.join(', ')} (repeat for more; default authorization_code and refresh_token)`,
      collect,
    )
    .option(
      '--scope <scopes>',
      'the allowed scopes, space-separated (default "openid profile offline_access")',
    )
    .option('--json', 'print one JSON object (client_id, and client_secret for a confidential client)')
    .action(
      async (options: {
        name: string
        redirectUri?: string[]
        postLogoutRedirectUri?: string[]
        public?: boolean
        firstParty?: boolean
        grant?: string[]
        scope?: string
        json?: boolean
      }) => {
        const { client, secret } = await withClients(cli, (s) =>
          s.create(cli.operator(), {
            name: options.name,
            redirectUris: options.redirectUri,
            postLogoutRedirectUris: options.postLogoutRedirectUri,
            public: options.public,
            firstParty: options.firstParty,
            grantTypes: options.grant,
            scope: options.scope,
          }),
        )
        if (options.json) {
          cli.out(
            JSON.stringify({ ...view(client), ...(secret === undefined ? {} : { client_secret: secret }) }),
          )
          return
        }
        cli.out(`Created ${kind(client)} client ${client.name} with ID ${client.clientId}.`)
        if (secret !== undefined) cli.out(`Client secret (${SHOWN_ONCE}): ${secret}`)
        else cli.out('It has no secret: it proves itself with PKCE (S256).')
      },
    )

  clients
    .command('list')
    .description(
      'List the clients, oldest first: id, name, type, first-party, grant types, created. Never a secret.',
    )
    .option('--json', 'print JSON lines')
    .action(async (options: { json?: boolean }) => {
      const all = await withClients(cli, (s) => s.list())
      if (all.length === 0) cli.err('No clients yet.')
      else if (!options.json) cli.out(COLUMNS.join('\t'))
      for (const c of all) cli.out(options.json ? JSON.stringify(view(c)) : row(c))
    })

  clients
    .command('show')
    .description('Show a client: everything registered for it, never its secret.')
    .argument('<client_id>')
    .option('--json', 'print one JSON object')
    .action(async (clientId: string, options: { json?: boolean }) => {
      const client = await withClients(cli, (s) => s.show(clientId))
      if (!client) {
        cli.err(`No client with ID ${clientId}.`)
        cli.exitCode = 1
        return
      }
      if (options.json) cli.out(JSON.stringify(view(client)))
      else for (const line of details(client)) cli.out(line)
    })

  clients
    .command('rotate-secret')
    .description(
      'Give a confidential client a new secret, printed once; the old one stops working at once. Of two ' +
        'rotations at the same time one fails and changes nothing: the secret printed is the one stored.',
    )
    .argument('<client_id>')
    .option('--json', 'print one JSON object (client_id, client_secret, secret_rotated_at)')
    .action(async (clientId: string, options: { json?: boolean }) => {
      const rotated = await withClients(cli, (s) => s.rotateSecret(cli.operator(), clientId))
      if (!rotated) {
        cli.err(`No client with ID ${clientId}.`)
        cli.exitCode = 1
        return
      }
      const { client, secret } = rotated
      if (options.json) {
        cli.out(JSON.stringify({ ...view(client), client_secret: secret }))
        return
      }
      cli.out(`New secret for client ${client.name} (${client.clientId}; ${SHOWN_ONCE}): ${secret}`)
      cli.out('The old secret no longer works.')
    })

  clients
    .command('delete')
    .description(
      'Delete a client: it can no longer authenticate or be redirected to, every session it was ' +
        'issued ends (its access and refresh tokens are refused from now on), and so does every ' +
        'access token it got by client_credentials.',
    )
    .argument('<client_id>')
    .action(async (clientId: string) => {
      const deleted = await withClients(cli, (s) => s.delete(cli.operator(), clientId))
      if (!deleted) {
        cli.err(`No client with ID ${clientId}.`)
        cli.exitCode = 1
        return
      }
      cli.out(`Deleted client ${deleted.name} (${deleted.clientId}).`)
    })
}
