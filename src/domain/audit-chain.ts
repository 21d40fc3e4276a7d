// The audit log's hash chain: what an entry holds, how it is hashed and linked, and how a chain is
// checked. Pure functions; the writer is audit-writer.ts and the SQL is storage/audit.repository.ts.
import { sha256Hex } from '../lib/crypto.js'
import type { AuditEvent, AuditEventType } from './audit.js'

/** The prev_hash of the first entry ever written. */
export const GENESIS_HASH = '0'.repeat(64)

// Bumping this changes every hash; it exists so a future format can be told apart from this one.
const CHAIN_FORMAT = 'authgate-audit-v1'

/** An entry's recorded facts, as stored: the fields the hash covers. */
export interface AuditFacts {
  /** Epoch milliseconds, when the event happened (not when it was written). */
  at: number
  type: AuditEventType
  outcome: 'success' | 'failure'
  userId: number | null
  username: string | null
  ip: string | null
  userAgent: string | null
  /** Canonical JSON text (sorted keys), or null. Hashed as stored, never re-serialised. */
  detail: string | null
}

export interface AuditEntry extends AuditFacts {
  seq: number
  prevHash: string
  hash: string
}

/**
 * The fields the hash covers, in their one fixed order. The serialisation is JSON.stringify of
 * this array (numbers, strings or null), so a port to another language must escape strings as
 * ECMAScript's JSON.stringify does. `seq` is not hashed: order is proven by the prev_hash links,
 * and a database may leave gaps in its sequence.
 */
const HASHED_FIELDS = ['at', 'type', 'outcome', 'userId', 'username', 'ip', 'userAgent', 'detail'] as const

export function canonicalFacts(facts: AuditFacts): string {
  return JSON.stringify(HASHED_FIELDS.map((field) => facts[field] ?? null))
}

/** SHA-256, hex, over the format tag, the previous entry's hash and the entry's canonical facts. */
export function entryHash(prevHash: string, facts: AuditFacts): string {
  return sha256Hex(`${CHAIN_FORMAT}\n${prevHash}\n${canonicalFacts(facts)}`)
}

/** Links facts, in order, after the entry whose hash is `prevHash`. */
export function chainFacts(
  prevHash: string,
  batch: readonly AuditFacts[],
): (AuditFacts & { prevHash: string; hash: string })[] {
  let prev = prevHash
  return batch.map((facts) => {
    const hash = entryHash(prev, facts)
    const linked = { ...facts, prevHash: prev, hash }
    prev = hash
    return linked
  })
}

// Row size stays bounded whatever a client sends (a login attempt's username is attacker-chosen).
const MAX = { username: 256, ip: 128, userAgent: 512, detailValue: 256 } as const

// A second line of defence: the interface has no field for a secret, and no caller should put one
// in `detail`. If one does, under a key naming a secret or in the shape of a JWT, it is withheld.
const SECRET_WORDS = new Set([
  'password',
  'passwd',
  'passphrase',
  'secret',
  'token',
  'authorization',
  'cookie',
  'credential',
  'credentials',
  'signature',
])
// ...unless the key names an identifier of one: a session id, a key id, a token id.
const ID_WORDS = new Set(['id', 'kid', 'sid', 'jti', 'count', 'kind', 'type', 'reason', 'scheme'])
const JWT_SHAPE = /^eyJ[\w-]*\.[\w-]*\./

function namesASecret(key: string): boolean {
  const words = key
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .toLowerCase()
    .split(/[^a-z0-9]+/)
    .filter(Boolean)
  const last = words.at(-1)
  return words.some((w) => SECRET_WORDS.has(w)) && !(last !== undefined && ID_WORDS.has(last))
}

// U+0000, which PostgreSQL text cannot hold, and lone surrogates (an astral character cut in two),
// which come back from either database as U+FFFD: made U+FFFD before hashing, so what is stored
// is exactly what was hashed, on SQLite and PostgreSQL alike.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g

function clamp(value: string | null | undefined, max: number): string | null {
  if (value === undefined || value === null) return null
  const text = value.length <= max ? value : `${value.slice(0, max)}…`
  return text.replaceAll('\u0000', '\uFFFD').replace(LONE_SURROGATE, '\uFFFD')
}

/** The detail object as canonical JSON: keys sorted, secret-looking strings withheld, strings bounded. */
export function canonicalDetail(detail: AuditEvent['detail']): string | null {
  if (!detail) return null
  const keys = Object.keys(detail).sort()
  if (keys.length === 0) return null
  const out: Record<string, string | number | boolean | null> = {}
  for (const key of keys) {
    const value = detail[key] ?? null
    if (typeof value === 'string') {
      out[key] = namesASecret(key) || JWT_SHAPE.test(value) ? '[withheld]' : clamp(value, MAX.detailValue)
    } else if (typeof value === 'number' && !Number.isFinite(value)) out[key] = null
    else out[key] = value
  }
  return JSON.stringify(out)
}

/** What will be stored for an event that happened at `at`. */
export function factsOf(event: AuditEvent, at: number): AuditFacts {
  return {
    at,
    type: event.type,
    outcome: event.outcome,
    userId: event.userId ?? null,
    username: clamp(event.username, MAX.username),
    ip: clamp(event.ip, MAX.ip),
    userAgent: clamp(event.userAgent, MAX.userAgent),
    detail: canonicalDetail(event.detail),
  }
}

/**
 * Where the remaining chain must start. Never pruned: seq 0 and the genesis hash. After a prune:
 * the seq and hash of the last entry removed, so the oldest remaining entry must link to it.
 */
export interface ChainAnchor {
  seq: number
  hash: string
}

export const GENESIS_ANCHOR: ChainAnchor = { seq: 0, hash: GENESIS_HASH }

export type ChainBreakKind = 'edited' | 'missing' | 'reordered' | 'unlinked'

export interface ChainBreak {
  /** The first entry that fails. */
  seq: number
  kind: ChainBreakKind
  message: string
}

export type ChainReport =
  | { ok: true; count: number; first?: { seq: number }; head?: { seq: number; hash: string } }
  | { ok: false; count: number; broken: ChainBreak }

/**
 * Walks entries in seq order and reports the first broken link: an entry whose facts do not match
 * its hash (edited), or whose prev_hash is not the previous entry's hash (entries missing,
 * reordered, or a rewritten entry whose hash was recomputed). `count` is how many entries checked
 * out before the break. The anchor says what the oldest entry must link to (see ChainAnchor).
 */
export async function verifyChain(
  entries: Iterable<AuditEntry> | AsyncIterable<AuditEntry>,
  anchor: ChainAnchor = GENESIS_ANCHOR,
): Promise<ChainReport> {
  let prev: AuditEntry | undefined
  let cur: AuditEntry | undefined
  let count = 0
  let first: number | undefined
  // One entry of lookahead: an entry that links to the one stored after it was reordered.
  const step = (next: AuditEntry | undefined): ChainBreak | undefined => {
    if (!cur) return undefined
    const broken = checkEntry(prev, cur, next, anchor)
    if (broken) return broken
    first ??= cur.seq
    count++
    prev = cur
    return undefined
  }
  for await (const next of entries) {
    const broken = step(next)
    if (broken) return { ok: false, count, broken }
    cur = next
  }
  const broken = step(undefined)
  if (broken) return { ok: false, count, broken }
  if (!prev || first === undefined) return { ok: true, count }
  return { ok: true, count, first: { seq: first }, head: { seq: prev.seq, hash: prev.hash } }
}

function checkEntry(
  prev: AuditEntry | undefined,
  cur: AuditEntry,
  next: AuditEntry | undefined,
  anchor: ChainAnchor,
): ChainBreak | undefined {
  const at = (kind: ChainBreakKind, message: string): ChainBreak => ({
    seq: cur.seq,
    kind,
    message: `seq ${cur.seq}: ${message}`,
  })
  if (entryHash(cur.prevHash, cur) !== cur.hash) {
    return at('edited', 'its contents do not match its hash (the entry was edited)')
  }
  const expected = prev ? prev.hash : anchor.hash
  if (cur.prevHash === expected) return undefined
  if (next && cur.prevHash === next.hash) {
    return at('reordered', `it links to seq ${next.seq}, which is stored after it (entries reordered)`)
  }
  if (prev && prev.prevHash === cur.hash) {
    return at('reordered', `seq ${prev.seq} links to it, but is stored before it (entries reordered)`)
  }
  const before = prev ? prev.seq : anchor.seq
  if (cur.seq > before + 1) {
    const gap = cur.seq === before + 2 ? `seq ${before + 1} is` : `seq ${before + 1} to ${cur.seq - 1} are`
    return at(
      'missing',
      prev
        ? `it does not link to seq ${prev.seq}: ${gap} missing (deleted)`
        : `it does not link to the retention anchor: ${gap} missing (deleted, not pruned by retention)`,
    )
  }
  return at(
    'unlinked',
    prev
      ? `it does not link to seq ${prev.seq} (its prev_hash was edited, or seq ${prev.seq} was rewritten and its hash recomputed)`
      : 'it does not link to the start of the chain (its prev_hash was edited, or the entry before it was rewritten)',
  )
}
