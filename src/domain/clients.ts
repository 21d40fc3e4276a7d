// The OAuth 2.0 / OpenID Connect client registry's rules (issue 12 item 1): who may be a client,
// with which redirect URIs, grants and scopes, and how its secret is made, stored and checked.
// Sources: RFC 6749 (OAuth 2.0), RFC 9700 (the OAuth 2.0 Security BCP), RFC 8252 (native apps),
// RFC 7636 (PKCE), OpenID Connect RP-Initiated Logout 1.0.
import type { Clock } from '../lib/clock.js'
import { batchedByKey } from '../lib/coalesce.js'
import { constantTimeEqual, randomToken, sha256Hex } from '../lib/crypto.js'
import { randomId } from '../lib/random.js'
import { type AuditEventType, type AuditLog, failureReason, type Operator, operatorDetail } from './audit.js'
import { DomainError, ErrorCode, type FieldError, ValidationError } from './errors.js'
import { clientCutoff, type RevocationEntry, type RevocationView } from './revocations.js'

export const GRANT_TYPES = ['authorization_code', 'refresh_token', 'client_credentials'] as const
export type GrantType = (typeof GRANT_TYPES)[number]

export const DEFAULT_GRANT_TYPES: readonly GrantType[] = ['authorization_code', 'refresh_token']
export const DEFAULT_SCOPE = 'openid profile offline_access'

/** A registered client as anyone may see it: never its secret, nor the secret's hash. */
export interface Client {
  clientId: string
  name: string
  /** No secret: a browser or native app, which proves itself with PKCE alone. */
  public: boolean
  /** Skips the consent page. */
  firstParty: boolean
  /** Compared exactly, as strings (RFC 9700 §4.1.3). */
  redirectUris: string[]
  postLogoutRedirectUris: string[]
  grantTypes: GrantType[]
  scopes: string[]
  /** Epoch ms. */
  createdAt: number
  /** Epoch ms of the current secret (its creation or last rotation); null for a public client. */
  secretRotatedAt: number | null
}

/** A client as the repository stores it. */
export interface StoredClient extends Client {
  /** SHA-256 of the secret, hex; null for a public client. */
  secretHash: string | null
}

export interface ClientsRepository {
  insert(client: StoredClient): Promise<void>
  find(clientId: string): Promise<StoredClient | undefined>
  /** Every client, oldest first. */
  list(): Promise<StoredClient[]>
  /**
   * Replaces the secret hash only if it is still `expected` (compare-and-swap): false, and nothing
   * written, when another rotation (or a deletion) came first.
   */
  replaceSecretHash(clientId: string, expected: string, next: string, at: number): Promise<boolean>
  /**
   * Deletes the client and, in the same transaction, writes `tokensCutoff` into the revocation
   * feed as its 'client' entry (revocations.ts clientCutoff). False, and nothing written, when
   * there was no such client.
   */
  delete(clientId: string, tokensCutoff: Pick<RevocationEntry, 'at' | 'expires_at'>): Promise<boolean>
}

/** What an operator asks for; everything but the name has a default. */
export interface NewClient {
  name: string
  redirectUris?: readonly string[] | undefined
  postLogoutRedirectUris?: readonly string[] | undefined
  public?: boolean | undefined
  firstParty?: boolean | undefined
  grantTypes?: readonly string[] | undefined
  /** Space-separated scope tokens (RFC 6749 §3.3); default DEFAULT_SCOPE. */
  scope?: string | undefined
}

/** A confidential client's secret, returned once, at creation or rotation, and never again. */
export interface ClientWithSecret {
  client: Client
  secret: string | undefined
}

export interface ClientService {
  create(operator: Operator, input: NewClient): Promise<ClientWithSecret>
  list(): Promise<Client[]>
  show(clientId: string): Promise<Client | undefined>
  /** Undefined when there is no such client; throws for a public client or a concurrent rotation. */
  rotateSecret(operator: Operator, clientId: string): Promise<{ client: Client; secret: string } | undefined>
  /** The deleted client, or undefined when there was none. */
  delete(operator: Operator, clientId: string): Promise<Client | undefined>
  /**
   * The client if `secret` is its current secret (client authentication, RFC 6749 §2.3.1); else
   * undefined. Equally costly for an unknown client, a public one and a wrong secret.
   */
  verifySecret(clientId: string, secret: string): Promise<Client | undefined>
}

const MAX_NAME = 100
const MAX_URI = 2000
const MAX_URIS = 20
const MAX_SCOPES = 50

// RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ), tokens separated by spaces.
const SCOPE_TOKEN = /^[\x21\x23-\x5b\x5d-\x7e]+$/
// RFC 3986 §2: what may appear in a URI at all (unreserved, reserved and '%'). Anything else
// (spaces, controls, '\', '<', '"', non-ASCII...) is either invalid or read differently by
// different parsers (WHATWG URL turns '\' into '/'), so it is refused, never normalised.
const URI_CHARACTERS = /^[A-Za-z0-9\-._~:/?#[\]@!$&'()*+,;=%]+$/
const SCHEME = /^([A-Za-z][A-Za-z0-9+.-]*):/
// The only hosts http may name: RFC 8252 §7.3 (loopback redirection, for native apps and
// development). §8.3 prefers the IP literals to `localhost`; issue 12 allows `localhost` as well.
const LOOPBACK_HOSTS = new Set(['127.0.0.1', '[::1]', 'localhost'])

/**
 * Why `uri` cannot be registered as a redirect (or post-logout redirect) URI, or undefined if it
 * can. Registered URIs are compared exactly, as strings, so this refuses what exact matching
 * cannot protect: patterns, fragments, credentials, plain http to another host.
 */
export function redirectUriProblem(uri: string): string | undefined {
  if (uri.length === 0) return 'is empty'
  if (uri.length > MAX_URI) return `is longer than ${MAX_URI} characters`
  if (!URI_CHARACTERS.test(uri)) {
    return 'holds a character a URI cannot (spaces, controls, backslashes, non-ASCII: RFC 3986 §2)'
  }
  // RFC 9700 §4.1.3 and §2.1: exact string matching, so no wildcards and no patterns.
  if (uri.includes('*')) return 'has a wildcard (*): redirect URIs are matched exactly (RFC 9700 §4.1.3)'
  // RFC 6749 §3.1.2: "The endpoint URI MUST NOT include a fragment component" (even an empty one).
  if (uri.includes('#')) return 'has a fragment (#): RFC 6749 §3.1.2 forbids one'
  const scheme = SCHEME.exec(uri)?.[1]?.toLowerCase()
  // RFC 6749 §3.1.2: "The redirection endpoint URI MUST be an absolute URI".
  if (scheme === undefined || !uri.slice(scheme.length + 1).startsWith('//')) {
    return 'is not an absolute URI with a host (RFC 6749 §3.1.2)'
  }
  if (scheme !== 'https' && scheme !== 'http') {
    return `uses ${scheme}: only https, or http on a loopback address (RFC 8252 §7.3)`
  }
  const authority = /^[^/?#]*/.exec(uri.slice(scheme.length + 3))?.[0] ?? ''
  // A userinfo part (user:pass@host) hides the real host from a reader (RFC 9700 §4.11 open
  // redirection; RFC 3986 §7.6), and has no business in a redirect.
  if (authority.includes('@')) return 'has a user name or password (userinfo) before the host'
  if (authority === '' || authority.startsWith(':')) return 'has no host'
  let url: URL
  try {
    url = new URL(uri)
  } catch {
    return 'is not a valid URI'
  }
  // RFC 6749 §3.1.2.1 (TLS for the redirect), RFC 8252 §7.3 (loopback for native apps, any port).
  if (scheme === 'http' && !LOOPBACK_HOSTS.has(url.hostname)) {
    return 'uses http on a host that is not loopback (127.0.0.1, [::1], localhost): use https'
  }
  return undefined
}

/** The scope tokens of a space-separated scope string (RFC 6749 §3.3), each once, in order. */
export function parseScope(scope: string): { scopes: string[] } | { problem: string } {
  const tokens = scope.split(' ').filter((t) => t !== '')
  if (tokens.length === 0) return { problem: 'is empty' }
  const bad = tokens.find((t) => !SCOPE_TOKEN.test(t))
  if (bad !== undefined) {
    return { problem: `has ${JSON.stringify(bad)}, which is not a scope token (RFC 6749 §3.3)` }
  }
  const scopes = [...new Set(tokens)]
  if (scopes.length > MAX_SCOPES) return { problem: `has more than ${MAX_SCOPES} scopes` }
  return { scopes }
}

const isGrantType = (g: string): g is GrantType => (GRANT_TYPES as readonly string[]).includes(g)

type Checked = Omit<Client, 'clientId' | 'createdAt' | 'secretRotatedAt'>

/** The client `input` describes, with its defaults, or a ValidationError naming every problem. */
export function checkNewClient(input: NewClient): Checked {
  const errors: FieldError[] = []
  const fail = (loc: (string | number)[], msg: string) => errors.push({ loc, msg, type: 'value_error' })

  const name = input.name.trim()
  if (name === '') fail(['name'], 'The client name is empty')
  else if (name.length > MAX_NAME) fail(['name'], `The client name is longer than ${MAX_NAME} characters`)
  // The consent page and the logs show it: C0 and C1 controls could forge lines or hide text.
  else if ([...name].some((c) => c < ' ' || (c >= '\u007f' && c <= '\u009f'))) {
    fail(['name'], 'The client name holds a control character')
  }

  const isPublic = input.public === true
  const grantTypes: GrantType[] = []
  for (const g of input.grantTypes && input.grantTypes.length > 0 ? input.grantTypes : DEFAULT_GRANT_TYPES) {
    if (!isGrantType(g)) fail(['grant_types'], `Unknown grant type ${g}: one of ${GRANT_TYPES.join(', ')}`)
    else if (!grantTypes.includes(g)) grantTypes.push(g)
  }
  // RFC 6749 §4.4: the client credentials grant is the client authenticating as itself; a public
  // client has nothing to authenticate with (RFC 9700 §2.1.1, PKCE proves a code, not a client).
  if (isPublic && grantTypes.includes('client_credentials')) {
    fail(['grant_types'], 'client_credentials needs a confidential client (RFC 6749 §4.4): drop --public')
  }
  // Refresh tokens come from the code flow here; RFC 6749 §4.4.3: none for client credentials.
  if (grantTypes.includes('refresh_token') && !grantTypes.includes('authorization_code')) {
    fail(
      ['grant_types'],
      'refresh_token needs authorization_code (RFC 6749 §4.4.3: no refresh token for client_credentials)',
    )
  }
  const codeFlow = grantTypes.includes('authorization_code')

  const uris = (field: string, given: readonly string[] | undefined): string[] => {
    const list = [...new Set(given ?? [])]
    if (list.length > MAX_URIS) fail([field], `More than ${MAX_URIS} ${field}`)
    list.forEach((uri, i) => {
      const problem = redirectUriProblem(uri)
      if (problem) fail([field, i], `${JSON.stringify(uri)} ${problem}`)
    })
    return list
  }
  const redirectUris = uris('redirect_uris', input.redirectUris)
  const postLogoutRedirectUris = uris('post_logout_redirect_uris', input.postLogoutRedirectUris)
  // RFC 9700 §2.1 and OIDC Core §3.1.2.1: the code flow redirects only to a registered URI.
  if (codeFlow && redirectUris.length === 0) {
    fail(['redirect_uris'], 'authorization_code needs at least one redirect URI (RFC 9700 §2.1)')
  }
  if (!codeFlow && redirectUris.length + postLogoutRedirectUris.length > 0) {
    fail(
      ['redirect_uris'],
      'Redirect URIs are for the authorization_code grant, which this client does not have',
    )
  }

  const parsed = parseScope(input.scope ?? DEFAULT_SCOPE)
  if ('problem' in parsed) fail(['scope'], `The scope ${parsed.problem}`)

  if (errors.length > 0) throw new ValidationError(errors)
  return {
    name,
    public: isPublic,
    firstParty: input.firstParty === true,
    redirectUris,
    postLogoutRedirectUris,
    grantTypes,
    scopes: 'scopes' in parsed ? parsed.scopes : [],
  }
}

// Compared against when there is no stored hash (an unknown or public client), so those cost the
// same hash and compare as a wrong secret. Random: no secret hashes to it.
const DUMMY_HASH = sha256Hex(randomToken())

const withoutHash = ({ secretHash: _, ...client }: StoredClient): Client => client

export interface ClientServiceDeps {
  clients: ClientsRepository
  audit: AuditLog
  clock: Clock
  /**
   * Ends every session issued to the client, through the revocation feed, so its access tokens
   * are refused at once and its refresh tokens no longer refresh (sessions.ts endClient); how
   * many ended. Called once the client's row is gone, so no code exchange can start another.
   */
  endSessions(clientId: string): Promise<number>
  /**
   * Takes a deleted client's cutoff once it is committed: this process refuses its access tokens
   * at once, and the other processes are told to read the feed (RevocationView.apply).
   */
  revocations: Pick<RevocationView, 'apply'>
  /** The client access tokens' lifetime (client-tokens.ts expiresInSeconds): how long a cutoff is kept. */
  accessTokenLifetimeMs: number
}

export function createClientService({
  clients,
  audit,
  clock,
  endSessions,
  revocations,
  accessTokenLifetimeMs,
}: ClientServiceDeps): ClientService {
  // Client authentication reads the client each time (a rotated secret must stop working at once,
  // in every process); the authentications of one client that arrive together share the read.
  const findForAuthentication = batchedByKey((clientId) => clients.find(clientId))

  /**
   * Runs an operator's change and records it, success or failure (a failure by its reason only,
   * never a message that could echo input); `act` resolving to undefined: no such client.
   */
  async function asOperator<T extends { client: Client } | undefined>(
    operator: Operator,
    type: AuditEventType,
    clientId: string | undefined,
    act: () => Promise<T>,
    facts: (client: Client) => Record<string, string | number | boolean | null> = () => ({}),
  ): Promise<T> {
    const detail = { ...operatorDetail(operator), ...(clientId === undefined ? {} : { clientId }) }
    let done: T
    try {
      done = await act()
    } catch (err) {
      audit.record({ type, outcome: 'failure', detail: { ...detail, reason: failureReason(err) } })
      throw err
    }
    if (done === undefined) {
      audit.record({ type, outcome: 'failure', detail: { ...detail, reason: 'no_such_client' } })
      return done
    }
    const { client } = done
    audit.record({
      type,
      outcome: 'success',
      detail: { ...detail, clientId: client.clientId, name: client.name, ...facts(client) },
    })
    return done
  }

  return {
    create(operator, input) {
      return asOperator(
        operator,
        'client.created',
        undefined,
        async (): Promise<ClientWithSecret> => {
          const checked = checkNewClient(input)
          const at = clock.now()
          // RFC 9700 §2.1.1 / RFC 6749 §2.3.1: a confidential client authenticates with a secret
          // of 256 random bits. Being random, not chosen, it needs no slow hash: SHA-256 resists
          // preimages, and only the hash is kept (the secret is shown once).
          const secret = checked.public ? undefined : randomToken()
          const stored: StoredClient = {
            ...checked,
            // 128 random bits, never the operator's choice: no id is registered twice, so a
            // deleted client's cutoff (revocations.ts clientCutoff) never voids a newer client.
            clientId: randomId(16, 'hex'),
            createdAt: at,
            secretRotatedAt: secret === undefined ? null : at,
            secretHash: secret === undefined ? null : sha256Hex(secret),
          }
          await clients.insert(stored)
          return { client: withoutHash(stored), secret }
        },
        (client) => ({
          public: client.public,
          firstParty: client.firstParty,
          grantTypes: client.grantTypes.join(' '),
          scope: client.scopes.join(' '),
          redirectUris: client.redirectUris.join(' '),
          postLogoutRedirectUris: client.postLogoutRedirectUris.join(' '),
        }),
      )
    },

    async list() {
      return (await clients.list()).map(withoutHash)
    },

    async show(clientId) {
      const stored = await clients.find(clientId)
      return stored && withoutHash(stored)
    },

    rotateSecret(operator, clientId) {
      return asOperator(operator, 'client.secret_rotated', clientId, async () => {
        const stored = await clients.find(clientId)
        if (!stored) return undefined
        if (stored.secretHash === null) {
          throw new DomainError(
            ErrorCode.invalidRequest,
            `Client ${clientId} is public: it has no secret to rotate (PKCE is its proof, RFC 7636).`,
          )
        }
        const secret = randomToken()
        const at = clock.now()
        // Compare-and-swap on the hash this rotation read: of two concurrent rotations exactly one
        // stores its secret; the other stores nothing and fails, so no operator is ever handed a
        // secret that is not (or no longer, without a later rotation saying so) the stored one.
        if (!(await clients.replaceSecretHash(clientId, stored.secretHash, sha256Hex(secret), at))) {
          throw new DomainError(
            ErrorCode.invalidRequest,
            `Client ${clientId} was changed by another command meanwhile (its secret rotated, or the ` +
              'client deleted); this rotation stored nothing. Run it again if a new secret is still wanted.',
          )
        }
        return { client: { ...withoutHash(stored), secretRotatedAt: at }, secret }
      })
    },

    // Issue 12 item 1: deleting a client ends its sessions and tokens. The row goes first: a code
    // exchange that read it (FOR SHARE, sessions.repository.ts insertSession) has committed its
    // session before the DELETE goes through, and endSessions sees it; one after finds no client
    // and starts nothing. Its codes go with the row (ON DELETE CASCADE). Its client_credentials
    // tokens are stateless JWTs (client-tokens.ts): the row's transaction writes a cutoff that
    // voids every one issued to it (clientCutoff says why the cutoff may reach past now). A
    // rotation writes none: a new secret stops new grants with the old one, not issued tokens.
    async delete(operator, clientId) {
      let endedSessions = 0
      const deleted = await asOperator(
        operator,
        'client.deleted',
        clientId,
        async () => {
          const stored = await clients.find(clientId)
          const cutoff = clientCutoff(clientId, clock.now(), accessTokenLifetimeMs)
          const gone = stored !== undefined && (await clients.delete(clientId, cutoff))
          if (gone) revocations.apply([cutoff])
          // Also when there was no such client: deleting it again finishes a deletion that was
          // interrupted between the two steps.
          endedSessions = await endSessions(clientId)
          return gone ? { client: withoutHash(stored) } : undefined
        },
        () => ({ endedSessions }),
      )
      return deleted?.client
    },

    async verifySecret(clientId, secret) {
      const stored = await findForAuthentication(clientId)
      // Always one hash and one constant-time compare, whatever was found.
      const matches = constantTimeEqual(sha256Hex(secret), stored?.secretHash ?? DUMMY_HASH)
      return matches && stored?.secretHash ? withoutHash(stored) : undefined
    },
  }
}
