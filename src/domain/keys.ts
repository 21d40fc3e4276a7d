// Signing keys: which algorithm signs (HS256 with a shared secret, or ES256 / EdDSA / RS256 key
// pairs), the key pairs kept in the database with their kids, rotation, and the public JWK Set.
// Two chains of key pairs: the deployment's own ('primary', JWT_ALGORITHM) and an RS256 one beside
// it ('rs256') for ID tokens, which OpenID Connect Discovery §3 requires RS256 be available for.
import { createHash, createPublicKey, generateKeyPair, type JsonWebKey, type KeyObject } from 'node:crypto'
import type { Clock } from '../lib/clock.js'
import { coalesced } from '../lib/coalesce.js'
import { every, type Periodic } from '../lib/periodic.js'
import { randomSecret } from '../lib/random.js'

export const SIGNING_ALGORITHMS = ['HS256', 'ES256', 'EdDSA', 'RS256'] as const
export type SigningAlgorithm = (typeof SIGNING_ALGORITHMS)[number]
export type AsymmetricAlgorithm = Exclude<SigningAlgorithm, 'HS256'>

const ASYMMETRIC: readonly string[] = ['ES256', 'EdDSA', 'RS256'] satisfies AsymmetricAlgorithm[]
export const isAsymmetric = (alg: string): alg is AsymmetricAlgorithm => ASYMMETRIC.includes(alg)

/** Small named values every process on the database shares. */
export interface SettingsStore {
  get(key: string): Promise<string | undefined>
  /** Stores `value` unless the key exists; returns whichever value is stored now (first writer wins). */
  getOrInsert(key: string, value: string): Promise<string>
}

const GENERATED_SECRET_KEY = 'jwt_hs256_secret'

/**
 * The chains of key pairs; each has at most one key not retired, and rotates on its own schedule.
 * 'primary': the deployment's algorithm (absent with HS256), for access tokens. 'rs256': always
 * RS256, for ID tokens (OpenID Connect Discovery §3: RS256 must be available for them), and for
 * client access tokens on an HS256 deployment (RFC 9068 tokens are verified through the JWKS).
 */
export const KEY_CHAINS = ['primary', 'rs256'] as const
export type KeyChain = (typeof KEY_CHAINS)[number]

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

/** A row of the key table, as storage returns it (storage/tables.ts takes it as is). */
export interface SigningKeyRecord {
  kid: string
  alg: string
  /** Which chain the key belongs to (KEY_CHAINS); 'primary' on keys made before issue 12. */
  chain: KeyChain
  /** PKCS#8 PEM. */
  private_key: string
  /** The published public JWK, JSON. */
  public_jwk: string
  created_at: number
  /** From when it signs; null on keys made before issue 10 (since created_at). */
  activates_at: number | null
  /** From when it no longer signs; may lie ahead while a next key waits. Null for the latest key. */
  retired_at: number | null
  /** From when it no longer verifies (`keys rotate --now`). */
  revoked_at: number | null
}

export interface KeySchedule {
  /** When the key starts signing; the key it takes over from signs until then. */
  activatesAt: number
  /** Keep the latest key instead when it has this algorithm (a start: make one only if none is there). */
  keepIfAlg?: string
  /** `keys rotate --now`: every other key stops verifying at this time (a compromised key). */
  revokeOthersAt?: number
}

/** storage/keys.repository.ts. */
export interface KeysRepository {
  /** Every key of every chain, oldest first. */
  listKeys(): Promise<SigningKeyRecord[]>
  /** The latest key of `chain` (default 'primary'; the one not retired): it signs now, or next. */
  currentKey(chain?: KeyChain): Promise<SigningKeyRecord | undefined>
  /**
   * Atomically, within `key.chain`: unless the chain's latest key has `keepIfAlg`, make `key` the
   * latest, signing from `activatesAt`; the chain's keys before it retire then (and with
   * `revokeOthersAt`, stop verifying then). Returns the chain's latest key afterwards and the kid
   * it took over from, if any. Other chains are left alone.
   */
  schedule(
    key: SigningKeyRecord,
    options: KeySchedule,
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

/** A fresh key pair for `alg`, as a row of `chain` ready to store (not yet current). */
export async function generateSigningKey(
  alg: AsymmetricAlgorithm,
  now: number,
  chain: KeyChain = 'primary',
): Promise<SigningKeyRecord> {
  const { publicKey, privateKey } = await newKeyPair(alg)
  const raw = publicKey.export({ format: 'jwk' })
  const kid = jwkThumbprint(raw)
  const jwk = { ...raw, kid, alg, use: 'sig' } as PublicJwk
  return {
    kid,
    alg,
    chain,
    private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    public_jwk: JSON.stringify(jwk),
    created_at: now,
    activates_at: null,
    retired_at: null,
    revoked_at: null,
  }
}

// A process that has not yet noticed a rotation (it reloads every second) may still sign with
// the retired key for a moment; this much more keeps those tokens verifying to their exp.
export const RETIREMENT_SLACK_MS = 60_000

/** Epoch ms from which no token the key signed can still be valid; Infinity while it is the latest. */
export function verifiesUntil(
  record: Pick<SigningKeyRecord, 'retired_at' | 'revoked_at'>,
  accessTtlMs: number,
): number {
  if (record.revoked_at !== null) return record.revoked_at
  return record.retired_at === null
    ? Number.POSITIVE_INFINITY
    : record.retired_at + accessTtlMs + RETIREMENT_SLACK_MS
}

const activatesAt = (record: Pick<SigningKeyRecord, 'activates_at' | 'created_at'>) =>
  record.activates_at ?? record.created_at

/**
 * next: published and verifying, not signing yet. current: signs. retired: signs no more, verifies
 * until its tokens have expired. expired: verifies no more. revoked: `keys rotate --now` ended it.
 */
export type KeyState = 'next' | 'current' | 'retired' | 'expired' | 'revoked'

/** What `authgate keys list` shows: never private material. */
export interface KeyInfo {
  kid: string
  alg: string
  chain: KeyChain
  state: KeyState
  createdAt: string
  /** When it starts (or started) signing. */
  activatesAt: string
  /** When it stops (or stopped) signing; null while no key is scheduled after it. */
  retiresAt: string | null
  /** When it stops verifying and leaves the JWKS; null while no key is scheduled after it. */
  verifiesUntil: string | null
}

function keyState(record: SigningKeyRecord, now: number, accessTtlMs: number): KeyState {
  if (record.revoked_at !== null && record.revoked_at <= now) return 'revoked'
  if (verifiesUntil(record, accessTtlMs) <= now) return 'expired'
  if (record.retired_at !== null && record.retired_at <= now) return 'retired'
  return activatesAt(record) > now ? 'next' : 'current'
}

function describe(record: SigningKeyRecord, now: number, accessTtlMs: number): KeyInfo {
  const until = verifiesUntil(record, accessTtlMs)
  const iso = (ms: number) => new Date(ms).toISOString()
  return {
    kid: record.kid,
    alg: record.alg,
    chain: record.chain,
    state: keyState(record, now, accessTtlMs),
    createdAt: iso(record.created_at),
    activatesAt: iso(activatesAt(record)),
    retiresAt: record.retired_at === null ? null : iso(record.retired_at),
    verifiesUntil: Number.isFinite(until) ? iso(until) : null,
  }
}

// ---- the key ring: what a running process signs and verifies with ------------------------------

/** A key this process signs or verifies with. */
export interface ActiveKey {
  kid: string
  alg: AsymmetricAlgorithm
  chain: KeyChain
  /** PKCS#8 PEM; used only while the key is current. */
  privateKey: string
  /** SPKI PEM. */
  publicKey: string
  jwk: PublicJwk
  /** Epoch ms from which it signs. */
  activatesAt: number
  retiredAt: number | null
  revokedAt: number | null
  /** Epoch ms; see verifiesUntil(). */
  verifiesUntil: number
}

/** One chain's keys. */
export interface KeySnapshot {
  /** Changes whenever the chain's keys do; whoever compiled something from them rebuilds then. */
  readonly version: number
  /** The key that signs now. */
  readonly current: ActiveKey
  /** kid -> key: the current key, the next one (published, not signing yet) and the retired ones that may still verify. */
  readonly keys: ReadonlyMap<string, ActiveKey>
}

export interface KeyRing {
  readonly algorithm: SigningAlgorithm
  /** HS256 only: the HMAC secret (SECRET_KEY, or the generated one). */
  readonly secret: string | undefined
  /** The primary chain (the deployment's algorithm) as last read from the database; none with HS256. */
  snapshot(): KeySnapshot | undefined
  /** Either chain; 'rs256' is there on every ring opened on a database (not on hmacKeyRing's). */
  snapshotOf(chain: KeyChain): KeySnapshot | undefined
  /** The JWK Set members (RFC 7517 §5): public keys of both chains that still verify now. */
  jwks(): PublicJwk[]
  /** Reads the keys again (the poller does this; tests may too). */
  reload(): Promise<void>
  /** A token named a kid we do not know, perhaps one rotated in by another process: reload soon. */
  reloadSoon(): void
  start(): void
  stop(): void
}

// Every process reads the keys (and the deployment settings) this often, besides the broadcast
// that tells it of a rotation at once: with neither Redis nor PostgreSQL (SQLite alone) this is
// how a rotation reaches every process within a second (issue 10).
export const DEFAULT_KEY_RELOAD_MS = 1_000
// How far apart the clocks of a deployment's machines may be, for the activation delay.
export const CLOCK_SKEW_ALLOWANCE_MS = 5_000

/**
 * How long `keys rotate` publishes the next key before it signs: until every process has loaded it
 * (the reload interval) and every cache of the JWKS can have fetched it (its max-age), and a margin
 * for clocks. A token signed with a key its verifier has never seen is a 401 (issue 10).
 */
export function defaultActivationDelayMs(jwksMaxAgeSeconds: number): number {
  return jwksMaxAgeSeconds * 1000 + DEFAULT_KEY_RELOAD_MS + CLOCK_SKEW_ALLOWANCE_MS
}
// An unknown kid costs at most one query a second, however many such tokens arrive.
const UNKNOWN_KID_RELOAD_GAP_MS = 1_000

/** What `keys rotate` says of the HS256 secret, which it does not rotate. */
export const HS256_ROTATE_NOTE =
  'Access tokens are signed with HS256 (JWT_ALGORITHM=HS256, or the default when SECRET_KEY is set or a ' +
  'secret was generated before): their key is SECRET_KEY, or the secret AuthGate generated and keeps in the ' +
  'database, not a key pair, so it is not rotated. To replace the secret, set a new SECRET_KEY (every token ' +
  'issued so far stops verifying). To sign access tokens with rotating key pairs that other services ' +
  'verify through /.well-known/jwks.json, set JWT_ALGORITHM=ES256.'

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
    snapshotOf: () => undefined,
    jwks: () => [],
    reload: () => Promise.resolve(),
    reloadSoon: () => {},
    start: () => {},
    stop: () => {},
  }
}

const RS256_CHAIN = { chain: 'rs256', alg: 'RS256' } as const

/** The chains a deployment signing with `algorithm` keeps, and the algorithm each signs with. */
export function chainsFor(algorithm: SigningAlgorithm): { chain: KeyChain; alg: AsymmetricAlgorithm }[] {
  return [...(isAsymmetric(algorithm) ? [{ chain: 'primary' as const, alg: algorithm }] : []), RS256_CHAIN]
}

/**
 * Resolves the algorithm and opens the keys. This makes sure each chain has a current key of its
 * algorithm (creating one race-safely; switching JWT_ALGORITHM retires the primary chain's old key
 * like a rotation), and reads the keys. With HS256 there is no primary chain, only the secret and
 * the RS256 chain. Not yet polling: call start().
 */
export async function openKeyRing(options: KeyRingOptions): Promise<KeyRing> {
  const { settings, keys, clock, accessTtlMs, onError = () => {} } = options
  const algorithm = await resolveAlgorithm(options.configured, options.secretKey, settings)
  const secret = algorithm === 'HS256' ? await resolveSigningSecret(options.secretKey, settings) : undefined
  const chains = chainsFor(algorithm)

  let madeOne = false
  for (const { chain, alg } of chains) {
    const existing = await keys.currentKey(chain)
    if (existing?.alg === alg) continue
    // Keys are generated outside the transaction (RSA takes a while); if another process made one
    // meanwhile, schedule keeps theirs and ours is dropped. A chain's first key signs at once:
    // nobody holds a token of it yet. A JWT_ALGORITHM change does too (the restart with it is the
    // operator's switch).
    const made = await generateSigningKey(alg, clock.now(), chain)
    const { current } = await keys.schedule(made, { activatesAt: clock.now(), keepIfAlg: alg })
    if (current.kid === made.kid) madeOne = true
  }
  if (madeOne) options.onKeyMade?.()

  const snaps = new Map<KeyChain, KeySnapshot>()
  let records: SigningKeyRecord[] = []
  // When a signing key changes by the clock alone (a next key activates): rebuild then.
  let changesAt = Number.POSITIVE_INFINITY
  let lastUnknownKidReload = Number.NEGATIVE_INFINITY
  let timer: Periodic | undefined

  function activate(record: SigningKeyRecord, alg: AsymmetricAlgorithm): ActiveKey {
    const jwk = JSON.parse(record.public_jwk) as PublicJwk
    if (jwk.kid !== record.kid || jwk.alg !== alg) throw new Error(`signing key ${record.kid}: JWK mismatch`)
    const publicKey = createPublicKey({ key: jwk, format: 'jwk' })
    return {
      kid: record.kid,
      alg,
      chain: record.chain,
      privateKey: record.private_key,
      publicKey: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
      jwk,
      activatesAt: activatesAt(record),
      retiredAt: record.retired_at,
      revokedAt: record.revoked_at,
      verifiesUntil: verifiesUntil(record, accessTtlMs),
    }
  }

  const same = (key: ActiveKey, record: SigningKeyRecord) =>
    key.retiredAt === record.retired_at &&
    key.revokedAt === record.revoked_at &&
    key.activatesAt === activatesAt(record)

  /** One chain's snapshot from its rows; `changesAt` is lowered to when its signing key changes next. */
  function buildChain(chain: KeyChain, alg: AsymmetricAlgorithm, from: SigningKeyRecord[]): KeySnapshot {
    const now = clock.now()
    const snap = snaps.get(chain)
    const active = new Map<string, ActiveKey>()
    let current: ActiveKey | undefined
    let earliestNext: ActiveKey | undefined
    for (const record of from) {
      // Only our own asymmetric keys: an HS256 "key" never enters this ring (key confusion).
      if (record.chain !== chain || !isAsymmetric(record.alg)) continue
      if (verifiesUntil(record, accessTtlMs) <= now) continue
      const known = snap?.keys.get(record.kid)
      let key: ActiveKey
      try {
        key = known && same(known, record) ? known : activate(record, record.alg)
      } catch (err) {
        onError(err)
        continue
      }
      // A next key is published (and verifies) from the moment it is made: that is the point.
      active.set(key.kid, key)
      if (key.alg !== alg) continue
      const retires = key.retiredAt ?? Number.POSITIVE_INFINITY
      if (key.activatesAt >= retires) continue // superseded before it ever signed
      if (key.activatesAt > now) {
        changesAt = Math.min(changesAt, key.activatesAt)
        if (!earliestNext || key.activatesAt < earliestNext.activatesAt) earliestNext = key
        continue
      }
      if (retires <= now) continue
      changesAt = Math.min(changesAt, retires)
      // The signing periods do not overlap (storage/keys.repository.ts); the latest start wins anyway.
      if (!current || key.activatesAt > current.activatesAt) current = key
    }
    // Only a clock behind the one that made the keys finds no key signing yet: take the next.
    current ??= earliestNext
    if (!current) {
      // Another process switched JWT_ALGORITHM, or the current key was deleted by hand. Keep
      // signing with what we had (it still verifies for a while) and say so.
      if (!snap) throw new Error(`no current ${alg} signing key (${chain} chain) in the database`)
      current = snap.current
      if (!active.has(current.kid)) active.set(current.kid, current)
      onError(
        new Error(
          `no current ${alg} signing key (${chain} chain) in the database (was JWT_ALGORITHM changed ` +
            `elsewhere?); still signing with ${current.kid}`,
        ),
      )
    }
    if (snap && snap.current === current && sameKeys(snap.keys, active)) return snap
    return { version: (snap?.version ?? 0) + 1, current, keys: active }
  }

  function build(from: SigningKeyRecord[]): void {
    changesAt = Number.POSITIVE_INFINITY
    for (const { chain, alg } of chains) snaps.set(chain, buildChain(chain, alg, from))
  }

  // One read at a time; callers arriving meanwhile share the next one (see lib/coalesce.ts).
  const reload = coalesced(async () => {
    records = await keys.listKeys()
    build(records)
  })
  await reload()
  // The clock moved past an activation or a retirement: the same rows, another signing key.
  const fresh = (chain: KeyChain) => {
    if (clock.now() >= changesAt) build(records)
    return snaps.get(chain)
  }

  return {
    algorithm,
    secret,
    snapshot: () => fresh('primary'),
    snapshotOf: fresh,
    jwks() {
      const current = chains.map(({ chain }) => fresh(chain)).filter((c) => c !== undefined)
      const now = clock.now()
      const signing = new Set(current.map((c) => c.current))
      const published = current.flatMap((c) => [...c.keys.values()]).filter((k) => k.verifiesUntil > now)
      // The current keys first (the primary chain's, then RS256), then the next ones (soonest
      // first), then the newest retired ones.
      const group = (k: ActiveKey) => (signing.has(k) ? 0 : k.activatesAt > now ? 1 : 2)
      published.sort(
        (a, b) =>
          group(a) - group(b) ||
          (group(a) === 0
            ? KEY_CHAINS.indexOf(a.chain) - KEY_CHAINS.indexOf(b.chain)
            : group(a) === 1
              ? a.activatesAt - b.activatesAt
              : (b.retiredAt ?? 0) - (a.retiredAt ?? 0)),
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
      // The database is away: keep the keys we have, report, and try again at the next tick.
      timer ??= every(options.reloadMs ?? DEFAULT_KEY_RELOAD_MS, reload, onError)
    },
    stop() {
      timer?.stop()
      timer = undefined
    },
  }
}

// ---- administration: `authgate keys rotate | list` -----------------------------------------------

export interface Rotation {
  /** The new key: `next` until it activates, `current` with `now`. */
  key: KeyInfo
  /** The key of the same chain that signed until now (or signs until the new one activates). */
  previous: KeyInfo | undefined
  /** With `now`: every key of the chain that stopped verifying at once. */
  revoked: KeyInfo[]
}

export interface KeyAdmin {
  readonly algorithm: SigningAlgorithm
  /** How long a rotation publishes the next key before it signs. */
  readonly activationDelayMs: number
  /**
   * Publishes a new key of each chain at once and makes it sign after the activation delay, when
   * every process has loaded it and every JWKS cache can have fetched it; the key before it signs
   * until then, and verifies (and stays in the JWKS) until every token it signed has expired.
   * Running servers are told through the broadcast (domain/broadcast.ts), and reload every second
   * in any case.
   *
   * `now` (a compromised key): the new keys sign at once, and every older key stops verifying at
   * once: all access tokens issued so far are refused (refresh tokens are not JWTs and still
   * work), and verifiers whose cached JWKS predates the new keys refuse their tokens until they
   * fetch it again.
   *
   * The result is the primary chain's rotation, with the RS256 chain's as `rs256`; with HS256,
   * whose secret is no key pair (HS256_ROTATE_NOTE), the RS256 chain's alone.
   */
  rotate(options?: { now?: boolean }): Promise<Rotation & { rs256: Rotation | undefined }>
  /** Every key in the database, newest first; never private material. */
  list(): Promise<KeyInfo[]>
}

export async function openKeyAdmin(
  options: Pick<KeyRingOptions, 'configured' | 'secretKey' | 'keys' | 'clock' | 'accessTtlMs'> & {
    settings: Pick<SettingsStore, 'get'>
    activationDelayMs: number
  },
): Promise<KeyAdmin> {
  const { keys, clock, accessTtlMs, activationDelayMs } = options
  // Read-only: resolving the algorithm never generates a secret or a key.
  const algorithm = await resolveAlgorithm(options.configured, options.secretKey, options.settings)
  const describeAll = async () => {
    const now = clock.now()
    return (await keys.listKeys()).map((r) => describe(r, now, accessTtlMs))
  }

  async function rotateChain(chain: KeyChain, alg: AsymmetricAlgorithm, immediately: boolean) {
    const before = (await describeAll()).filter((k) => k.chain === chain)
    const signing = before.find((k) => k.state === 'current')
    const now = clock.now()
    const created = await generateSigningKey(alg, now, chain)
    // With no key signing yet (a fresh database) there is nothing to wait for.
    await keys.schedule(created, {
      activatesAt: immediately || !signing ? now : now + activationDelayMs,
      ...(immediately ? { revokeOthersAt: now } : {}),
    })
    const infos = (await describeAll()).filter((k) => k.chain === chain)
    const key = infos.find((k) => k.kid === created.kid)
    if (!key) throw new Error(`the new signing key ${created.kid} vanished`)
    const wasLive = new Set(
      before.filter((k) => k.state !== 'expired' && k.state !== 'revoked').map((k) => k.kid),
    )
    return {
      key,
      previous: infos.find((k) => k.kid === signing?.kid),
      revoked: immediately ? infos.filter((k) => k.state === 'revoked' && wasLive.has(k.kid)) : [],
    }
  }

  return {
    algorithm,
    activationDelayMs,
    async rotate({ now: immediately = false } = {}) {
      const rotations: Rotation[] = []
      for (const { chain, alg } of chainsFor(algorithm)) {
        rotations.push(await rotateChain(chain, alg, immediately))
      }
      const [first, second] = rotations as [Rotation, Rotation | undefined]
      return { ...first, rs256: second }
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
