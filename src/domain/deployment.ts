// Deployment settings that live with the database, not with one process's environment: the
// signing algorithm (and, for HS256, where the secret comes from) and the issuer. They are
// recorded on first start, as the signing keys are, so every process and the CLI on one database
// agree (issue 10: the issuer used to be each process's listen address, and the CLI resolved the
// algorithm from its own environment). A setting changes only when a server is told to change it
// (JWT_ALGORITHM, JWT_ISSUER or PUBLIC_URL), which it logs; an environment that contradicts the
// record in a way nobody asked for (SECRET_KEY on a key-pair database, no SECRET_KEY where the
// secret came from it) stops the process with a message that says what to do.
import type { Clock } from '../lib/clock.js'
import { isAsymmetric, type SettingsStore, SIGNING_ALGORITHMS, type SigningAlgorithm } from './keys.js'

/** The settings table, as this module needs it (storage/settings.repository.ts). */
export interface DeploymentSettingsStore extends SettingsStore {
  /** Sets `key` to `value` if it still holds `expected`; false when another writer came first. */
  replace(key: string, expected: string, value: string): Promise<boolean>
}

/** The environment gave a setting that contradicts the database; the message says what to do. */
export class SettingsConflictError extends Error {
  override name = 'SettingsConflictError'
}

/**
 * How this process treats the recorded settings. `adopt` (a server): records them on first start
 * and takes an explicit change from its environment. `record` (a CLI command that may be the first
 * to open the database): records on first start, never changes them, and refuses an explicit
 * JWT_ALGORITHM that differs. `read` (`keys list`): writes nothing.
 */
export type SettingsMode = 'adopt' | 'record' | 'read'

// ---- the signing algorithm --------------------------------------------------------------------

const SIGNING = 'jwt_signing'
/** Written by releases before the record: an HS256 secret AuthGate generated. */
export const GENERATED_SECRET_KEY = 'jwt_hs256_secret'

export type SecretSource = 'env' | 'generated'

/** What `jwt_signing` holds: the algorithm, and for HS256 whether SECRET_KEY or the database holds the secret. */
export interface SigningRecord {
  alg: SigningAlgorithm
  secret?: SecretSource
}

export interface SigningSettingsOptions {
  mode: SettingsMode
  /** JWT_ALGORITHM. */
  configured: SigningAlgorithm | undefined
  /** Whether SECRET_KEY is set (its value is never stored, nor compared). */
  secretKeySet: boolean
  settings: DeploymentSettingsStore
  /** The algorithm of the current key pair, if an older release made one (an upgrade). */
  currentKeyAlg: () => Promise<string | undefined>
}

export interface SettledSigning extends SigningRecord {
  /** What changed in this start, for the log. */
  notes: string[]
}

const parseSigning = (text: string): SigningRecord => {
  const value = JSON.parse(text) as Partial<SigningRecord>
  if (!SIGNING_ALGORITHMS.includes(value.alg as SigningAlgorithm)) throw new Error(`${SIGNING}: bad record`)
  return value as SigningRecord
}

/**
 * What a first start records: JWT_ALGORITHM when set. Otherwise HS256 where tokens must keep
 * working: with SECRET_KEY (the seed's verifiers hold that secret), or on an install that already
 * generated an HS256 secret. Otherwise the algorithm of a key pair an older release made, and on
 * a fresh install ES256: other services verify through the JWKS and never hold a signing secret
 * (RFC 8725 §3.2).
 */
async function firstRecord(options: SigningSettingsOptions): Promise<SigningRecord> {
  const { configured, secretKeySet, settings } = options
  const generated = (await settings.get(GENERATED_SECRET_KEY)) !== undefined
  const hs256 = (): SigningRecord => ({ alg: 'HS256', secret: secretKeySet ? 'env' : 'generated' })
  if (configured === 'HS256') return hs256()
  if (configured !== undefined) return { alg: configured }
  if (secretKeySet || generated) return hs256()
  const existing = await options.currentKeyAlg()
  return { alg: existing !== undefined && isAsymmetric(existing) ? existing : 'ES256' }
}

const describeSigning = (r: SigningRecord) =>
  r.alg === 'HS256'
    ? `HS256 with ${r.secret === 'env' ? 'SECRET_KEY' : 'a secret AuthGate generated'}`
    : r.alg

/** The algorithm every process on this database signs with; throws SettingsConflictError on a contradiction. */
export async function settleSigning(options: SigningSettingsOptions): Promise<SettledSigning> {
  const { mode, configured, secretKeySet, settings } = options
  let text = await settings.get(SIGNING)
  if (text === undefined) {
    const first = await firstRecord(options)
    // Read-only: say what a first start would record, and record nothing.
    if (mode === 'read') return { ...first, notes: [] }
    // Two processes starting together: the first writer wins, the other checks against it.
    text = await settings.getOrInsert(SIGNING, JSON.stringify(first))
  }
  for (;;) {
    const recorded = parseSigning(text)
    const wanted: SigningRecord | undefined =
      configured === undefined
        ? undefined
        : configured === 'HS256'
          ? { alg: 'HS256', secret: secretKeySet ? 'env' : 'generated' }
          : { alg: configured }
    // An explicit JWT_ALGORITHM that differs: a server takes it as a change, the CLI refuses it.
    if (wanted !== undefined && wanted.alg !== recorded.alg) {
      if (mode !== 'adopt') {
        throw new SettingsConflictError(
          `JWT_ALGORITHM=${configured} here, but this database signs with ${describeSigning(recorded)} ` +
            '(recorded when it was first started). The CLI does not change the algorithm: unset JWT_ALGORITHM ' +
            `(or set it to ${recorded.alg}) here, or restart the servers with JWT_ALGORITHM=${configured}.`,
        )
      }
      const next = JSON.stringify(wanted)
      if (!(await settings.replace(SIGNING, text, next))) {
        text = (await settings.get(SIGNING)) ?? next
        continue
      }
      const costs =
        isAsymmetric(recorded.alg) && isAsymmetric(wanted.alg)
          ? `the ${recorded.alg} key is retired and verifies until its tokens have expired`
          : `tokens signed with ${recorded.alg} stop verifying`
      return {
        ...wanted,
        notes: [
          `JWT_ALGORITHM changes the signing algorithm from ${describeSigning(recorded)} to ${describeSigning(wanted)}: ${costs}`,
        ],
      }
    }
    if (isAsymmetric(recorded.alg)) {
      if (secretKeySet && configured === undefined) {
        throw new SettingsConflictError(
          `SECRET_KEY is set, but this database signs with ${recorded.alg} key pairs (recorded when it was first ` +
            'started), so SECRET_KEY would not be used. Unset SECRET_KEY; or, to sign with HS256 and SECRET_KEY ' +
            `on purpose, set JWT_ALGORITHM=HS256 on the servers (every ${recorded.alg} token then stops verifying).`,
        )
      }
      return { ...recorded, notes: [] }
    }
    // HS256.
    if (recorded.secret === 'env' && !secretKeySet) {
      throw new SettingsConflictError(
        'SECRET_KEY is not set, but this database signs with HS256 and the SECRET_KEY of its environment ' +
          '(recorded when it was first started): without it, tokens would be signed with another secret that ' +
          'every other process and verifier refuses. Set the same SECRET_KEY as the servers (their .env or ' +
          'secret store); or, to move to key pairs on purpose, set JWT_ALGORITHM=ES256 on the servers ' +
          '(every HS256 token then stops verifying).',
      )
    }
    if (recorded.secret === 'generated' && secretKeySet) {
      // Setting SECRET_KEY on a generated-secret install is how the secret is replaced on purpose.
      if (mode !== 'adopt') {
        throw new SettingsConflictError(
          'SECRET_KEY is set here, but this database signs with HS256 and a secret AuthGate generated and keeps ' +
            'in the database. Unset SECRET_KEY here; to replace the secret with SECRET_KEY, start the servers ' +
            'with it (every token issued so far then stops verifying).',
        )
      }
      const next = JSON.stringify({ alg: 'HS256', secret: 'env' } satisfies SigningRecord)
      if (!(await settings.replace(SIGNING, text, next))) {
        text = (await settings.get(SIGNING)) ?? next
        continue
      }
      return {
        alg: 'HS256',
        secret: 'env',
        notes: [
          'SECRET_KEY replaces the HS256 secret AuthGate generated: tokens signed with the generated secret stop verifying',
        ],
      }
    }
    return { ...recorded, notes: [] }
  }
}

// ---- the issuer ----------------------------------------------------------------------------------

const ISSUER = 'jwt_issuer'
// Previous issuers kept (each until its last token has expired): a bound on a list nobody prunes by hand.
export const MAX_PREVIOUS_ISSUERS = 8

/** What `jwt_issuer` holds. */
export interface IssuerRecord {
  current: string
  /** Issuers this deployment used before, each accepted until `until` (epoch ms). */
  previous: { issuer: string; until: number }[]
}

/** What the token service asks: whom to sign as, and whether a token's `iss` is one of ours. */
export interface Issuers {
  /** The `iss` of the tokens this process signs now. */
  current(): string
  accepts(iss: string): boolean
  /** A token named an issuer we do not know, perhaps one another process just changed to: re-read soon. */
  reloadSoon(): void
}

export interface IssuerView extends Issuers {
  /** The recorded issuer and the previous ones still accepted. */
  record(): IssuerRecord
  /** Reads the record again (after a broadcast, and every few seconds). */
  reload(): Promise<void>
}

export interface IssuerOptions {
  mode: SettingsMode
  /** JWT_ISSUER, or PUBLIC_URL: an issuer set on purpose. */
  explicit: string | undefined
  /** What a first start records when neither is set: the listen address. */
  fallback: string
  settings: DeploymentSettingsStore
  clock: Clock
  /** How long the previous issuer's tokens may still be valid: the access-token lifetime, and slack. */
  retainMs: number
  /** The record changed under us, or this process signs with an issuer the record no longer names. */
  onNote?: (message: string) => void
  onError?: (err: unknown) => void
}

const parseIssuer = (text: string): IssuerRecord => {
  const value = JSON.parse(text) as Partial<IssuerRecord>
  if (typeof value.current !== 'string' || !Array.isArray(value.previous))
    throw new Error(`${ISSUER}: bad record`)
  return { current: value.current, previous: value.previous }
}

const UNKNOWN_ISSUER_RELOAD_GAP_MS = 1_000

/**
 * Records the issuer on first start; a server told another one (JWT_ISSUER, PUBLIC_URL) makes it
 * current, keeping the old one accepted until its tokens have expired. Returns the view the
 * token service reads, and what changed (for the log).
 */
export async function openIssuers(options: IssuerOptions): Promise<{ view: IssuerView; notes: string[] }> {
  const { mode, explicit, settings, clock, onError = () => {} } = options
  const notes: string[] = []
  let text = await settings.get(ISSUER)
  let record: IssuerRecord
  if (text === undefined) {
    const first: IssuerRecord = { current: explicit ?? options.fallback, previous: [] }
    if (mode === 'read') {
      record = first
    } else {
      text = await settings.getOrInsert(ISSUER, JSON.stringify(first))
      record = parseIssuer(text)
    }
  } else {
    record = parseIssuer(text)
  }
  while (mode === 'adopt' && explicit !== undefined && explicit !== record.current && text !== undefined) {
    const now = clock.now()
    const until = now + options.retainMs
    const next: IssuerRecord = {
      current: explicit,
      previous: [
        { issuer: record.current, until },
        ...record.previous.filter(
          (p) => p.until > now && p.issuer !== explicit && p.issuer !== record.current,
        ),
      ].slice(0, MAX_PREVIOUS_ISSUERS),
    }
    const nextText = JSON.stringify(next)
    if (await settings.replace(ISSUER, text, nextText)) {
      notes.push(
        `the issuer changes from ${record.current} to ${explicit} (JWT_ISSUER or PUBLIC_URL); tokens of ` +
          `${record.current} keep verifying until ${new Date(until).toISOString()}`,
      )
      record = next
      text = nextText
      break
    }
    text = (await settings.get(ISSUER)) ?? nextText
    record = parseIssuer(text)
  }

  // A server with JWT_ISSUER or PUBLIC_URL signs as that; any other process as the record says.
  const signing = () => (mode === 'adopt' && explicit !== undefined ? explicit : record.current)
  let warned: string | undefined
  let lastUnknown = Number.NEGATIVE_INFINITY
  const view: IssuerView = {
    current: signing,
    record: () => record,
    accepts(iss) {
      if (iss === record.current || iss === signing()) return true
      const now = clock.now()
      return record.previous.some((p) => p.issuer === iss && p.until > now)
    },
    async reload() {
      const fresh = await settings.get(ISSUER)
      if (fresh === undefined || fresh === text) return
      text = fresh
      record = parseIssuer(fresh)
      if (signing() !== record.current && warned !== record.current) {
        warned = record.current
        options.onNote?.(
          `another process changed the issuer to ${record.current}, but this one signs as ${signing()} ` +
            '(its JWT_ISSUER or PUBLIC_URL): restart it with the new setting',
        )
      }
    },
    reloadSoon() {
      const t = performance.now()
      if (t - lastUnknown < UNKNOWN_ISSUER_RELOAD_GAP_MS) return
      lastUnknown = t
      view.reload().catch(onError)
    },
  }
  return { view, notes }
}

/** A fixed issuer: what unit tests and a bare token service use. */
export function fixedIssuer(issuer: string): Issuers {
  return { current: () => issuer, accepts: (iss) => iss === issuer, reloadSoon: () => {} }
}
