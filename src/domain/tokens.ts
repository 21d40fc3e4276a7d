// Access tokens: JWTs with the seed's claims (sub, id, exp) plus sid, iat, jti and iss, signed with
// HS256 or with the current key pair of the key ring (ES256, EdDSA, RS256; the kid in the header).
import { createSigner, createVerifier } from 'fast-jwt'
import type { Clock } from '../lib/clock.js'
import { canonicalSignature, isHighS, parseHeaderSegment, toLowS } from '../lib/jws.js'
import { randomId } from '../lib/random.js'
import { fixedIssuer, type Issuers } from './deployment.js'
import type { ActiveKey, KeyRing } from './keys.js'
import { hmacKeyRing } from './keys.js'

export interface TokenSubject {
  id: number
  username: string
  /** The session the token belongs to; absent in tokens issued by the seed app. */
  sid?: string | undefined
}

/** A verified token: its subject, plus what revocation checks need. */
export interface VerifiedToken extends TokenSubject {
  /** Issued-at, epoch seconds; absent in tokens issued by the seed app. */
  iat?: number | undefined
  /** Expiry, epoch seconds. */
  exp: number
  /** The token's own id; absent in tokens issued by the seed app. */
  jti?: string | undefined
  /** The issuer it names (one of the deployment's); absent in tokens issued by the seed app. */
  iss?: string | undefined
}

export interface IssuedToken {
  accessToken: string
  /** Lifetime in seconds (RFC 6749 §5.1 expires_in). */
  expiresIn: number
}

export interface TokenService {
  issue(subject: TokenSubject): IssuedToken
  /** The subject of a valid token, or undefined for anything else. Never throws. */
  verify(token: string): VerifiedToken | undefined
}

export type TokenOptions = {
  expiresInMinutes: number
  clock: Clock
  /**
   * The deployment's issuer (domain/deployment.ts): every token carries the current one as `iss`;
   * a token carrying an `iss` that is not one of the deployment's (current, or previous until its
   * tokens have expired) is refused. A string: that one only.
   */
  issuer?: string | Issuers | undefined
  /** JWT_AUDIENCE: when set, every token carries it as `aud` and must carry it to be accepted. */
  audience?: string | undefined
} & (
  | { keys: KeyRing }
  /** The HMAC key; the seed uses its SECRET_KEY string's UTF-8 bytes, and so do we. */
  | { secret: string }
)

type Verify = (token: string) => { header: Record<string, unknown>; payload: Record<string, unknown> }
type Sign = (payload: Record<string, unknown>) => string

interface CompiledKey {
  key: ActiveKey
  verify: Verify
}

// A header segment longer than this is not one of ours; no need to decode it.
const MAX_HEADER_SEGMENT = 1024
// Distinct header segments remembered; ours are one per key, so this only bounds junk.
const HEADER_MEMO_MAX = 64
// Verified tokens remembered by their exact string, in `verified` below (oldest dropped first;
// fast-jwt's own cache is off, `cache: false`): an ECDSA or RSA check costs tens of microseconds,
// and GET / sees the same token again and again, so a token seen before costs a map lookup
// (bench/run.mjs: ~4 µs a request). exp, nbf and iss are still checked on every use.
const VERIFIED_CACHE_MAX = 10_000
// How far ahead of our clock an iat may be: another instance's clock, a second's rounding (the
// "small leeway" of RFC 7519 §4.1.4-4.1.5). RFC 7519 §4.1.6: iat is when the token was issued, so
// one from the future is not a token we issued (OpenID Connect Core §3.1.3.7 rejects those too).
// It matters here: a sid-less token's iat is what a logout's cutoff compares
// (domain/revocations.ts), and one from the future would outlive every cutoff.
const IAT_SKEW_MS = 60_000

/** RFC 9068 §4: `at+jwt` or `application/at+jwt`, in any case. */
const isAtJwt = (typ: unknown) => typeof typ === 'string' && /^(application\/)?at\+jwt$/i.test(typ)

export function createTokenService(options: TokenOptions): TokenService {
  const { expiresInMinutes, clock, audience } = options
  const issuers = typeof options.issuer === 'string' ? fixedIssuer(options.issuer) : options.issuer
  const ring = 'keys' in options ? options.keys : hmacKeyRing(options.secret)
  const expiresIn = expiresInMinutes * 60

  // RFC 8725 §3.1 and §2.1: the algorithm comes from an allow-list fixed here, never from the
  // token, so `none`, `None`, `NONE` and algorithm switches fail. With key pairs, each key has its
  // own verifier pinned to that key's algorithm, so HS256 keyed with our public key (key
  // confusion) fails, and `jwk`, `jku`, `x5u` and `x5c` headers are never read: no URL from a token
  // is ever fetched. RFC 7515 §4.1.11: fast-jwt rejects a `crit` header naming an extension we do
  // not understand. RFC 8725 §3.8-3.9: `iss` must be ours (checked below, on every use: the
  // deployment's issuers change), and `aud` when one is configured.
  const claimChecks = {
    ...(audience === undefined ? {} : { allowedAud: audience }),
    // exp and nbf are checked below against the injected clock, on every call (cached or not).
    ignoreExpiration: true,
    ignoreNotBefore: true,
  }
  const required = (...claims: string[]) => ['exp', ...claims, ...(audience === undefined ? [] : ['aud'])]

  // HS256: one verifier, and the kid header is ignored. No `iss` required: the seed's own tokens
  // have none. No `aud` by default: python-jose's jwt.decode(token, SECRET_KEY,
  // algorithms=["HS256"]), the seed's verifier, refuses a token with an `aud` it was not told of.
  const hmac =
    ring.algorithm === 'HS256'
      ? {
          sign: createSigner({ key: ring.secret ?? '', algorithm: 'HS256' }) as Sign,
          verify: createVerifier({
            key: ring.secret ?? '',
            algorithms: ['HS256'],
            requiredClaims: required(),
            cache: false,
            complete: true,
            ...claimChecks,
          }) as Verify,
        }
      : undefined

  // Key pairs: verifiers and the signer are built once per key, when the ring's keys change.
  let version = -1
  let compiled = new Map<string, CompiledKey>()
  let signer: { kid: string; alg: string; sign: Sign } | undefined
  const headerMemo = new Map<string, CompiledKey>()
  const verified = new Map<
    string,
    {
      token: string
      subject: VerifiedToken
      expMs: number
      nbfMs: number | undefined
      iss: string | undefined
    }
  >()

  function compileKey(key: ActiveKey): CompiledKey {
    return {
      key,
      verify: createVerifier({
        key: key.publicKey,
        algorithms: [key.alg],
        // With key pairs every token is ours, so iss is required, not only checked when present.
        requiredClaims: required(...(issuers === undefined ? [] : ['iss'])),
        cache: false,
        complete: true,
        ...claimChecks,
      }) as Verify,
    }
  }

  function sync(): void {
    const snap = ring.snapshot()
    if (!snap) throw new Error('the key ring has no keys')
    if (snap.version === version) return
    const next = new Map<string, CompiledKey>()
    for (const [kid, key] of snap.keys) {
      const known = compiled.get(kid)
      next.set(kid, known && known.key.publicKey === key.publicKey ? { ...known, key } : compileKey(key))
    }
    compiled = next
    headerMemo.clear()
    if (signer?.kid !== snap.current.kid) {
      const { kid, alg, privateKey } = snap.current
      signer = { kid, alg, sign: createSigner({ key: privateKey, algorithm: alg, kid }) as Sign }
    }
    version = snap.version
  }

  /**
   * The key a token's header names by kid, among our own keys only; never a key from the token.
   * RFC 8725 §3.10: the kid is only a map lookup, never a path, a query or a URL.
   */
  function keyFor(token: string): CompiledKey | undefined {
    const dot = token.indexOf('.')
    if (dot < 1 || dot > MAX_HEADER_SEGMENT) return undefined
    const segment = token.slice(0, dot)
    const memo = headerMemo.get(segment)
    if (memo) return memo
    const header = parseHeaderSegment(segment)
    if (!header) return undefined
    const { kid, alg, typ } = header
    // RFC 7515 §4.1.4: kid is a string. Without one there is no key to pick: no fallback.
    if (typeof kid !== 'string') return undefined
    // RFC 8725 §3.11: a client access token (RFC 9068, domain/client-tokens.ts) is another kind of
    // token, signed with the same key; it never passes for a user's, and costs no signature check.
    if (isAtJwt(typ)) return undefined
    const found = compiled.get(kid)
    if (!found) {
      // Perhaps rotated in by another process a moment ago; the ring re-reads, at most once a second.
      ring.reloadSoon()
      return undefined
    }
    if (alg !== found.key.alg) return undefined
    if (headerMemo.size >= HEADER_MEMO_MAX) headerMemo.clear()
    headerMemo.set(segment, found)
    return found
  }

  return {
    issue({ id, username, sid }) {
      // iat and exp come from the injected clock: fast-jwt keeps a payload's own iat.
      const iat = Math.floor(clock.now() / 1000)
      const claims = {
        sub: username,
        id,
        ...(sid === undefined ? {} : { sid }),
        iat,
        exp: iat + expiresIn,
        ...(issuers === undefined ? {} : { iss: issuers.current() }),
        ...(audience === undefined ? {} : { aud: audience }),
        jti: randomId(),
      }
      if (hmac) return { accessToken: hmac.sign(claims), expiresIn }
      sync()
      const accessToken = (signer as { sign: Sign }).sign(claims)
      // One token, one spelling: OpenSSL's ECDSA gives a high s half the time; n - s is ours.
      return { accessToken: signer?.alg === 'ES256' ? toLowS(accessToken) : accessToken, expiresIn }
    },
    verify(token) {
      if (typeof token !== 'string') return undefined
      const now = clock.now()
      let found: CompiledKey | undefined
      if (!hmac) {
        sync()
        found = keyFor(token)
        // A retired key verifies until every token it signed has expired, then never again.
        if (!found || found.key.verifiesUntil <= now) return undefined
      }
      // The same token string verified before: its signature and claims are settled; only time
      // can change the answer. Found by its signature segment, then compared whole, so nothing
      // but an identical token hits: hashing the ~86 characters of an ES256 signature instead of
      // the whole ~700-character token saves ~0.7 µs a request (a fresh string is hashed anew).
      const signatureAt = token.lastIndexOf('.') + 1
      const key = token.slice(signatureAt)
      let entry = verified.get(key)
      if (entry?.token !== token) {
        // One token, one spelling (lib/jws.ts): a few byte comparisons, and only for a token not
        // seen before, so a cached token pays nothing. A high s is one we never sign.
        if (!canonicalSignature(token, signatureAt)) return undefined
        if (found?.key.alg === 'ES256' && isHighS(token, signatureAt)) return undefined
        let decoded: ReturnType<Verify>
        try {
          decoded = hmac ? hmac.verify(token) : (found as CompiledKey).verify(token)
        } catch {
          return undefined
        }
        const { header, payload } = decoded
        // RFC 7797 (unencoded payloads) is not supported: a `b64` header, with or without `crit`,
        // would mean the signature covers something else than what we decoded (RFC 7797 §3, §6).
        if (header.b64 !== undefined || isAtJwt(header.typ)) return undefined
        // The seed's get_current_user requires both claims; we also require their types.
        const { sub, id, sid, iat, exp, nbf, jti, iss } = payload
        if (typeof sub !== 'string' || !Number.isSafeInteger(id)) return undefined
        if (sid !== undefined && typeof sid !== 'string') return undefined
        if (jti !== undefined && typeof jti !== 'string') return undefined
        if (iss !== undefined && typeof iss !== 'string') return undefined
        // RFC 7519 §4.1.4-4.1.6: a numeric exp is required; nbf and iat, when present, are numeric,
        // and iat is not in the future (the seed's tokens carry none).
        if (typeof exp !== 'number' || (nbf !== undefined && typeof nbf !== 'number')) return undefined
        if (iat !== undefined && (typeof iat !== 'number' || iat * 1000 > now + IAT_SKEW_MS)) return undefined
        entry = {
          token,
          subject: { id: id as number, username: sub, sid, iat: iat as number | undefined, exp, jti, iss },
          expMs: exp * 1000,
          nbfMs: typeof nbf === 'number' ? nbf * 1000 : undefined,
          iss,
        }
        if (verified.size >= VERIFIED_CACHE_MAX) verified.delete(verified.keys().next().value as string)
        verified.set(key, entry)
      }
      // exp must be in the future and nbf, when present, past: checked on every use.
      if (now >= entry.expMs || (entry.nbfMs !== undefined && now < entry.nbfMs)) return undefined
      // RFC 8725 §3.8: one of our issuers. Without `iss` only with HS256 (the seed's tokens have
      // none; requiredClaims demands it with key pairs). An issuer we do not know may be one
      // another process changed to a moment ago: read the record again, at most once a second.
      if (issuers && entry.iss !== undefined && !issuers.accepts(entry.iss)) {
        issuers.reloadSoon()
        return undefined
      }
      return entry.subject
    },
  }
}
