// Signing keys: which algorithm signs (HS256 with a shared secret, or ES256 / EdDSA / RS256 key
// pairs), the key pairs kept in the database with their kids, rotation, and the public JWK Set.
import { createHash, createPublicKey, generateKeyPair, type JsonWebKey, type KeyObject } from 'node:crypto'
import type { Clock } from '../lib/clock.js'
import { coalesced } from '../lib/coalesce.js'
import { randomSecret } from '../lib/random.js'
import { DomainError, ErrorCode } from './errors.js'

export const SIGNING_ALGORITHMS = ['HS256', 'ES256', 'EdDSA', 'RS256'] as const
export type SigningAlgorithm = (typeof SIGNING_ALGORITHMS)[number]
export type AsymmetricAlgorithm = Exclude<SigningAlgorithm, 'HS256'>

const ASYMMETRIC: readonly string[] = ['ES256', 'EdDSA', 'RS256'] satisfies AsymmetricAlgorithm[]
export const isAsymmetric = (alg: string): alg is AsymmetricAlgorithm => ASYMMETRIC.includes(alg)

export interface SettingsStore {
  get(key: string): Promise<string | undefined>
  getOrInsert(key: string, value: string): Promise<string>
}

const GENERATED_SECRET_KEY = 'jwt_hs256_secret'

/**
 * JWT_ALGORITHM when set. Otherwise HS256 where tokens must keep working: with SECRET_KEY (the
 * seed's verifiers hold that secret), or on an install that already generated an HS256 secret
 * (its live tokens, and whoever verifies them, would break on upgrade). A fresh install gets
 * ES256: other services verify through the JWKS and never hold a signing secret (RFC 8725 §3.2).
 */
export async function resolveAlgorithm(
  configured: SigningAlgorithm | undefined,
  secretKey: string | undefined,
  settings: Pick<SettingsStore, 'get'>,
): Promise<SigningAlgorithm> {
  if (configured !== undefined) return configured
  if (secretKey !== undefined) return 'HS256'
  if ((await settings.get(GENERATED_SECRET_KEY)) !== undefined) return 'HS256'
  return 'ES256'
}

/**
 * The HS256 signing secret. Never a hard-coded default (the seed's fatal flaw). A generated key
 * lives in the database so a restart, or another process on the same database, keeps accepting
 * tokens; the first writer wins.
 */
export async function resolveSigningSecret(
  configured: string | undefined,
  settings: Pick<SettingsStore, 'getOrInsert'>,
): Promise<string> {
  if (configured !== undefined) return configured
  return settings.getOrInsert(GENERATED_SECRET_KEY, randomSecret())
}

// ---- key pairs ----------------------------------------------------------------------------------

/** A row of the key table, as storage returns it. */
export interface SigningKeyRecord {
  kid: string
  alg: string
  /** PKCS#8 PEM. */
  private_key: string
  /** The published public JWK, JSON. */
  public_jwk: string
  created_at: number
  retired_at: number | null
}

export interface KeysRepository {
  listKeys(): Promise<SigningKeyRecord[]>
  currentKey(): Promise<SigningKeyRecord | undefined>
  /** Atomically: unless the current key has `keepIfAlg`, retire it at `now` and make `key` current. */
  makeCurrent(
    key: SigningKeyRecord,
    now: number,
    keepIfAlg?: string,
  ): Promise<{ current: SigningKeyRecord; retired: string | undefined }>
}

/** A public key as RFC 7517 §4 publishes it, with the `kid` tokens name it by. */
export type PublicJwk = {
  kty: string
  kid: string
  alg: AsymmetricAlgorithm
  use: 'sig'
  crv?: string
  x?: string
  y?: string
  n?: string
  e?: string
}

// RFC 7638 §3.2: the required members of each key type, in lexicographic order.
const THUMBPRINT_MEMBERS: Record<string, readonly string[]> = {
  EC: ['crv', 'kty', 'x', 'y'],
  OKP: ['crv', 'kty', 'x'],
  RSA: ['e', 'kty', 'n'],
}

/** RFC 7638 JWK thumbprint (SHA-256, base64url): a kid derived from the key itself. */
export function jwkThumbprint(jwk: JsonWebKey): string {
  const members = THUMBPRINT_MEMBERS[String(jwk.kty)]
  if (!members) throw new Error(`no thumbprint for key type ${String(jwk.kty)}`)
  const canonical: Record<string, unknown> = {}
  for (const m of members) {
    const value = jwk[m]
    if (typeof value !== 'string') throw new Error(`JWK member ${m} missing`)
    canonical[m] = value
  }
  return createHash('sha256').update(JSON.stringify(canonical)).digest('base64url')
}

function newKeyPair(alg: AsymmetricAlgorithm): Promise<{ publicKey: KeyObject; privateKey: KeyObject }> {
  return new Promise((resolve, reject) => {
    const done = (err: Error | null, publicKey: KeyObject, privateKey: KeyObject) =>
      err ? reject(err) : resolve({ publicKey, privateKey })
    // RFC 7518 §3.4 (P-256 for ES256), RFC 8037 §3.1 (Ed25519 for EdDSA), RFC 7518 §3.3 (RSA, at
    // least 2048 bits, for RS256). Generated off the event loop.
    if (alg === 'ES256') generateKeyPair('ec', { namedCurve: 'P-256' }, done)
    else if (alg === 'EdDSA') generateKeyPair('ed25519', {}, done)
    else generateKeyPair('rsa', { modulusLength: 2048 }, done)
  })
}

/** A fresh key pair for `alg`, as a row ready to store (not yet current). */
export async function generateSigningKey(alg: AsymmetricAlgorithm, now: number): Promise<SigningKeyRecord> {
  const { publicKey, privateKey } = await newKeyPair(alg)
  const raw = publicKey.export({ format: 'jwk' })
  const kid = jwkThumbprint(raw)
  const jwk = { ...raw, kid, alg, use: 'sig' } as PublicJwk
  return {
    kid,
    alg,
    private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    public_jwk: JSON.stringify(jwk),
    created_at: now,
    retired_at: null,
  }
}

// A process that has not yet noticed a rotation (it reloads every few seconds) may still sign with
// the retired key for a moment; this much more keeps those tokens verifying to their exp.
export const RETIREMENT_SLACK_MS = 60_000

/** Epoch ms from which no token the key signed can still be valid; Infinity while it is current. */
export function verifiesUntil(retiredAt: number | null, accessTtlMs: number): number {
  return retiredAt === null ? Number.POSITIVE_INFINITY : retiredAt + accessTtlMs + RETIREMENT_SLACK_MS
}

export type KeyState = 'current' | 'retired' | 'expired'

/** What `authgate keys list` shows: never private material. */
export interface KeyInfo {
  kid: string
  alg: string
  createdAt: string
  retiredAt: string | null
  /** While retired: when it stops verifying and leaves the JWKS. */
  verifiesUntil: string | null
  state: KeyState
}

function describe(record: SigningKeyRecord, now: number, accessTtlMs: number): KeyInfo {
  const until = verifiesUntil(record.retired_at, accessTtlMs)
  const iso = (ms: number) => new Date(ms).toISOString()
  return {
    kid: record.kid,
    alg: record.alg,
    createdAt: iso(record.created_at),
    retiredAt: record.retired_at === null ? null : iso(record.retired_at),
    verifiesUntil: Number.isFinite(until) ? iso(until) : null,
    state: record.retired_at === null ? 'current' : until > now ? 'retired' : 'expired',
  }
}

// ---- the key ring: what a running process signs and verifies with ------------------------------

/** A key this process signs or verifies with. */
export interface ActiveKey {
  kid: string
  alg: AsymmetricAlgorithm
  /** PKCS#8 PEM; used only while the key is current. */
  privateKey: string
  /** SPKI PEM. */
  publicKey: string
  jwk: PublicJwk
  retiredAt: number | null
  /** Epoch ms; see verifiesUntil(). */
  verifiesUntil: number
}

export interface KeySnapshot {
  /** Changes whenever the keys do; whoever compiled something from them rebuilds then. */
  readonly version: number
  readonly current: ActiveKey
  /** kid -> key: the current key and the retired ones that may still verify. */
  readonly keys: ReadonlyMap<string, ActiveKey>
}

export interface KeyRing {
  readonly algorithm: SigningAlgorithm
  /** HS256 only: the HMAC secret (SECRET_KEY, or the generated one). */
  readonly secret: string | undefined
  /** Asymmetric only: the keys as last read from the database. */
  snapshot(): KeySnapshot | undefined
  /** The JWK Set members (RFC 7517 §5): public keys that still verify now. Empty with HS256. */
  jwks(): PublicJwk[]
  /** Reads the keys again (the poller does this; tests may too). */
  reload(): Promise<void>
  /** A token named a kid we do not know, perhaps one rotated in by another process: reload soon. */
  reloadSoon(): void
  start(): void
  stop(): void
}

export const DEFAULT_KEY_RELOAD_MS = 5_000
// An unknown kid costs at most one query a second, however many such tokens arrive.
const UNKNOWN_KID_RELOAD_GAP_MS = 1_000

export const HS256_ROTATE_REFUSAL =
  'Tokens are signed with HS256 (JWT_ALGORITHM=HS256, or the default when SECRET_KEY is set or a secret was ' +
  'generated before): the key is SECRET_KEY, or the secret AuthGate generated and keeps in the database, ' +
  'not a key pair, so there is no key to rotate. To replace the secret, set a new ' +
  'SECRET_KEY (every token issued so far stops verifying). To sign with rotating key pairs that other ' +
  'services verify through /.well-known/jwks.json, set JWT_ALGORITHM=ES256.'

export interface KeyRingOptions {
  /** JWT_ALGORITHM; undefined lets resolveAlgorithm decide. */
  configured: SigningAlgorithm | undefined
  secretKey: string | undefined
  settings: SettingsStore
  keys: KeysRepository
  clock: Clock
  accessTtlMs: number
  reloadMs?: number
  onError?: (err: unknown) => void
  /** A key this process made became current (a first start, a JWT_ALGORITHM change): tell the others. */
  onKeyMade?: () => void
}

/** A ring that only holds an HMAC secret (HS256); also what unit tests build token services on. */
export function hmacKeyRing(secret: string): KeyRing {
  return {
    algorithm: 'HS256',
    secret,
    snapshot: () => undefined,
    jwks: () => [],
    reload: () => Promise.resolve(),
    reloadSoon: () => {},
    start: () => {},
    stop: () => {},
  }
}

/**
 * Resolves the algorithm and opens the keys. With an asymmetric algorithm this makes sure a
 * current key of that algorithm exists (creating one race-safely; switching algorithm retires the
 * old key like a rotation) and reads the keys. Not yet polling: call start().
 */
export async function openKeyRing(options: KeyRingOptions): Promise<KeyRing> {
  const { settings, keys, clock, accessTtlMs, onError = () => {} } = options
  const algorithm = await resolveAlgorithm(options.configured, options.secretKey, settings)
  if (algorithm === 'HS256') return hmacKeyRing(await resolveSigningSecret(options.secretKey, settings))

  const existing = await keys.currentKey()
  if (existing?.alg !== algorithm) {
    // Keys are generated outside the transaction (RSA takes a while); if another process made one
    // meanwhile, makeCurrent keeps theirs and ours is dropped.
    const made = await generateSigningKey(algorithm, clock.now())
    const { current } = await keys.makeCurrent(made, clock.now(), algorithm)
    if (current.kid === made.kid) options.onKeyMade?.()
  }

  let snap: KeySnapshot | undefined
  let lastUnknownKidReload = Number.NEGATIVE_INFINITY
  let timer: NodeJS.Timeout | undefined

  function activate(record: SigningKeyRecord, alg: AsymmetricAlgorithm): ActiveKey {
    const jwk = JSON.parse(record.public_jwk) as PublicJwk
    if (jwk.kid !== record.kid || jwk.alg !== alg) throw new Error(`signing key ${record.kid}: JWK mismatch`)
    const publicKey = createPublicKey({ key: jwk, format: 'jwk' })
    return {
      kid: record.kid,
      alg,
      privateKey: record.private_key,
      publicKey: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
      jwk,
      retiredAt: record.retired_at,
      verifiesUntil: verifiesUntil(record.retired_at, accessTtlMs),
    }
  }

  function build(records: SigningKeyRecord[]): KeySnapshot {
    const now = clock.now()
    const active = new Map<string, ActiveKey>()
    let current: ActiveKey | undefined
    for (const record of records) {
      // Only our own asymmetric keys: an HS256 "key" never enters this ring (key confusion).
      if (!isAsymmetric(record.alg)) continue
      if (verifiesUntil(record.retired_at, accessTtlMs) <= now) continue
      const known = snap?.keys.get(record.kid)
      let key: ActiveKey
      try {
        key = known && known.retiredAt === record.retired_at ? known : activate(record, record.alg)
      } catch (err) {
        onError(err)
        continue
      }
      active.set(key.kid, key)
      if (key.retiredAt === null && key.alg === algorithm) current = key
    }
    if (!current) {
      // Another process switched JWT_ALGORITHM, or the current key was deleted by hand. Keep
      // signing with what we had (it still verifies for a while) and say so.
      if (!snap) throw new Error(`no current ${algorithm} signing key in the database`)
      current = snap.current
      if (!active.has(current.kid)) active.set(current.kid, current)
      onError(
        new Error(
          `no current ${algorithm} signing key in the database (was JWT_ALGORITHM changed elsewhere?); ` +
            `still signing with ${current.kid}`,
        ),
      )
    }
    if (snap && snap.current === current && sameKeys(snap.keys, active)) return snap
    return { version: (snap?.version ?? 0) + 1, current, keys: active }
  }

  // One read at a time; callers arriving meanwhile share the next one (see lib/coalesce.ts).
  const reload = coalesced(async () => {
    snap = build(await keys.listKeys())
  })
  await reload()

  return {
    algorithm,
    secret: undefined,
    snapshot: () => snap,
    jwks() {
      if (!snap) return []
      const now = clock.now()
      const published = [...snap.keys.values()].filter((k) => k.verifiesUntil > now)
      // The current key first, then the newest retired ones.
      published.sort(
        (a, b) => (b.retiredAt ?? Number.POSITIVE_INFINITY) - (a.retiredAt ?? Number.POSITIVE_INFINITY),
      )
      return published.map((k) => k.jwk)
    },
    reload,
    reloadSoon() {
      // performance.now(), not the injected clock: this paces queries in real time.
      const t = performance.now()
      if (t - lastUnknownKidReload < UNKNOWN_KID_RELOAD_GAP_MS) return
      lastUnknownKidReload = t
      reload().catch(onError)
    },
    start() {
      if (timer) return
      timer = setInterval(() => {
        // The database is away: keep the keys we have, report, and try again at the next tick.
        reload().catch(onError)
      }, options.reloadMs ?? DEFAULT_KEY_RELOAD_MS)
      timer.unref()
    },
    stop() {
      if (timer) clearInterval(timer)
      timer = undefined
    },
  }
}

// ---- administration: `authgate keys rotate | list` -----------------------------------------------

export interface KeyAdmin {
  readonly algorithm: SigningAlgorithm
  /**
   * Makes a new key of the configured algorithm current and retires the old one, which keeps
   * verifying (and stays in the JWKS) until every token it signed has expired. Running servers
   * are told through the broadcast (domain/broadcast.ts), and reload every few seconds in any
   * case. Refuses with HS256: there the secret is the key.
   */
  rotate(): Promise<{ current: KeyInfo; retired: KeyInfo | undefined }>
  /** Every key in the database, newest first; never private material. */
  list(): Promise<KeyInfo[]>
}

export async function openKeyAdmin(
  options: Pick<KeyRingOptions, 'configured' | 'secretKey' | 'keys' | 'clock' | 'accessTtlMs'> & {
    settings: Pick<SettingsStore, 'get'>
  },
): Promise<KeyAdmin> {
  const { keys, clock, accessTtlMs } = options
  // Read-only: resolving the algorithm never generates a secret or a key.
  const algorithm = await resolveAlgorithm(options.configured, options.secretKey, options.settings)
  const describeAll = async () => {
    const now = clock.now()
    return (await keys.listKeys()).map((r) => describe(r, now, accessTtlMs))
  }
  return {
    algorithm,
    async rotate() {
      if (!isAsymmetric(algorithm)) throw new DomainError(ErrorCode.badRequest, HS256_ROTATE_REFUSAL)
      const now = clock.now()
      const created = await generateSigningKey(algorithm, now)
      const { retired } = await keys.makeCurrent(created, now)
      const infos = await describeAll()
      const current = infos.find((k) => k.kid === created.kid)
      if (!current) throw new Error(`the new signing key ${created.kid} vanished`)
      return { current, retired: infos.find((k) => k.kid === retired) }
    },
    async list() {
      return (await describeAll()).reverse()
    },
  }
}

function sameKeys(a: ReadonlyMap<string, ActiveKey>, b: ReadonlyMap<string, ActiveKey>): boolean {
  if (a.size !== b.size) return false
  for (const [kid, key] of a) if (b.get(kid) !== key) return false
  return true
}
