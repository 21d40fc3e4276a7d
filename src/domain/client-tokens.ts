// Access tokens for clients (issue 12 items 4 and 5), JWTs in the RFC 9068 profile (`typ: at+jwt`):
// their issue, verification and revocation. Two kinds, told apart by `sid`:
// - the client credentials grant's (RFC 6749 §4.4): the token speaks for the client itself (`sub`
//   is the client id, RFC 9068 §2.2), with no user, no ID token and no refresh token (§4.4.3);
// - a user's, from a code exchange (or its refreshes): `sub` is the user's subject, `sid` the
//   token session it belongs to, so ending that session voids it at once, like every user token.
// Signed with the deployment's key pair, or on an HS256 deployment with its RS256 key, so resource
// servers verify them through the JWKS alone.
import { createVerifier } from 'fast-jwt'
import type { Clock } from '../lib/clock.js'
import { canonicalSignature, isHighS, parseHeaderSegment } from '../lib/jws.js'
import { randomId } from '../lib/random.js'
import type { AuditLog } from './audit.js'
import type { RequestOrigin } from './client-auth.js'
import { type Client, parseScope } from './clients.js'
import type { Issuers } from './deployment.js'
import { DomainError, ErrorCode } from './errors.js'
import type { ActiveKey, KeyRing } from './keys.js'
import { clientTokenSubject, type RevocationView } from './revocations.js'
import { createKeySigner } from './signing.js'

/** RFC 9068 §2.1: the media type of an access token JWT, in `typ` without `application/`. */
export const AT_JWT = 'at+jwt'

/**
 * Scopes that mean a user: `openid` asks for an ID token and `offline_access` for a refresh token
 * (OpenID Connect Core §3.1.2.1, §11), neither of which a machine client gets (RFC 6749 §4.4.3).
 */
const USER_SCOPES: ReadonlySet<string> = new Set(['openid', 'offline_access'])

export interface ClientAccessToken {
  accessToken: string
  /** Seconds (RFC 6749 §5.1). */
  expiresIn: number
  /** The scope granted (RFC 6749 §5.1: returned when it may differ from the one asked for). */
  scope: string
}

/** A client access token whose signature, issuer, audience and times are good (not revocation). */
export interface VerifiedClientToken {
  clientId: string
  /** The client id (client_credentials), or the user's subject (a code exchange's token). */
  sub: string
  /** A user's token only: the session it belongs to (ended, the token is void). */
  sid?: string | undefined
  scope: string
  /** Epoch seconds. */
  iat: number
  exp: number
  jti: string
  iss: string
  aud: string
}

export interface ClientTokenService {
  /**
   * RFC 6749 §4.4: an access token for `client`, which has authenticated as a confidential client.
   * unauthorized_client unless it may use the grant; invalid_scope unless the scope asked for is
   * within its registered scopes (RFC 6749 §3.3). Without a scope: its scopes but openid and
   * offline_access.
   */
  grant(client: Client, requestedScope: string | undefined, origin: RequestOrigin): ClientAccessToken
  /**
   * A user's access token for `clientId` (RFC 9068 §2.2: `sub` the user's subject), in the token
   * session `sid`: what a code exchange and its refreshes hand the client.
   */
  issueForUser(grant: { clientId: string; subject: string; scope: string; sid: string }): {
    accessToken: string
    expiresIn: number
  }
  /** The token's claims if it is one of our client access tokens and valid now; never throws. */
  verify(token: string): VerifiedClientToken | undefined
  /**
   * verify(), and not revoked (by itself, or by its client's deletion; a user's token by the end
   * of its session): what introspection calls active.
   */
  active(token: string): VerifiedClientToken | undefined
  /**
   * RFC 7009: a client_credentials token stops being valid everywhere (this process at once,
   * others within a poll). A user's token is revoked by ending its session (SessionService.end).
   */
  revoke(token: VerifiedClientToken, origin: RequestOrigin): Promise<void>
}

export interface ClientTokenDeps {
  keys: KeyRing
  issuers: Issuers
  /** JWT_AUDIENCE; the issuer when unset. */
  audience: string | undefined
  clock: Clock
  /** The access tokens' lifetime: a retired key verifies that long (domain/keys.ts), no longer. */
  expiresInSeconds: number
  revocations: RevocationView
  /** storage/sessions.repository.ts: writes into the revocation feed. */
  feed: { insertTokenRevocation(subject: string, at: number, feedExpiresAt: number): Promise<void> }
  audit: AuditLog
}

type Verify = (token: string) => { header: Record<string, unknown>; payload: Record<string, unknown> }

// As in domain/tokens.ts: a header segment longer than this is not ours; junk is bounded.
const MAX_HEADER_SEGMENT = 1024
const HEADER_MEMO_MAX = 64
const VERIFIED_CACHE_MAX = 10_000
// How far ahead of our clock an iat may be (RFC 7519 §4.1.6; see domain/tokens.ts).
const IAT_SKEW_MS = 60_000

const scopeError = (detail: string) => new DomainError(ErrorCode.invalidScope, detail)

/** The scope a client_credentials request gets, or invalid_scope (RFC 6749 §3.3, §4.4.2). */
export function grantedScope(client: Pick<Client, 'scopes'>, requested: string | undefined): string[] {
  if (requested === undefined || requested.trim() === '') {
    const scopes = client.scopes.filter((s) => !USER_SCOPES.has(s))
    if (scopes.length === 0) throw scopeError('The client has no scope it can use without a user')
    return scopes
  }
  const parsed = parseScope(requested)
  if ('problem' in parsed) throw scopeError(`The scope ${parsed.problem}`)
  const user = parsed.scopes.find((s) => USER_SCOPES.has(s))
  if (user !== undefined)
    throw scopeError(`${user} is for users: client_credentials issues no ID or refresh token`)
  const outside = parsed.scopes.find((s) => !client.scopes.includes(s))
  if (outside !== undefined) throw scopeError(`The client is not registered for the scope ${outside}`)
  return parsed.scopes
}

export function createClientTokenService(deps: ClientTokenDeps): ClientTokenService {
  const { keys, issuers, audience, clock, expiresInSeconds, revocations, feed, audit } = deps
  const sign = createKeySigner()
  const verifiers = new Map<string, { publicKey: string; verify: Verify }>()
  const headerMemo = new Map<string, string>() // header segment -> kid
  const verified = new Map<string, { token: string; claims: VerifiedClientToken }>()

  /** The key that signs client tokens now: the deployment's, or with HS256 the RS256 one. */
  function signingKey(): ActiveKey {
    const key = (keys.snapshot() ?? keys.snapshotOf('rs256'))?.current
    if (!key) throw new Error('the key ring has no key pair to sign client access tokens with')
    return key
  }

  /** One of our key pairs that still verifies, by kid: RFC 8725 §3.10, a map lookup only. */
  function keyNamed(kid: string, now: number): ActiveKey | undefined {
    const key = keys.snapshot()?.keys.get(kid) ?? keys.snapshotOf('rs256')?.keys.get(kid)
    return key && key.verifiesUntil > now ? key : undefined
  }

  /**
   * The kid of an RFC 9068 header we could have written: `typ` at+jwt (RFC 9068 §4: also
   * `application/at+jwt`), a string kid, no `b64` (RFC 7797). The algorithm is checked against the key.
   */
  function kidOf(token: string): string | undefined {
    const dot = token.indexOf('.')
    if (dot < 1 || dot > MAX_HEADER_SEGMENT) return undefined
    const segment = token.slice(0, dot)
    const memo = headerMemo.get(segment)
    if (memo !== undefined) return memo
    const header = parseHeaderSegment(segment)
    if (!header) return undefined
    const { typ, kid, alg, b64 } = header
    if (typeof typ !== 'string' || !/^(application\/)?at\+jwt$/i.test(typ)) return undefined
    if (typeof kid !== 'string' || typeof alg !== 'string' || b64 !== undefined) return undefined
    const key = keyNamed(kid, clock.now())
    if (!key) {
      keys.reloadSoon()
      return undefined
    }
    if (key.alg !== alg) return undefined
    if (headerMemo.size >= HEADER_MEMO_MAX) headerMemo.clear()
    headerMemo.set(segment, kid)
    return kid
  }

  function verifierFor(key: ActiveKey): Verify {
    const known = verifiers.get(key.kid)
    if (known && known.publicKey === key.publicKey) return known.verify
    // RFC 8725 §2.1, §3.1: the algorithm is the key's, never the token's choice.
    const verify = createVerifier({
      key: key.publicKey,
      algorithms: [key.alg],
      requiredClaims: ['iss', 'sub', 'aud', 'exp', 'iat', 'jti', 'client_id'],
      ...(audience === undefined ? {} : { allowedAud: audience }),
      ignoreExpiration: true,
      ignoreNotBefore: true,
      cache: false,
      complete: true,
    }) as Verify
    if (verifiers.size >= HEADER_MEMO_MAX) verifiers.clear()
    verifiers.set(key.kid, { publicKey: key.publicKey, verify })
    return verify
  }

  function decode(token: string, key: ActiveKey, now: number): VerifiedClientToken | undefined {
    // One token, one spelling (lib/jws.ts), as for every token we verify.
    const signatureAt = token.lastIndexOf('.') + 1
    if (!canonicalSignature(token, signatureAt)) return undefined
    if (key.alg === 'ES256' && isHighS(token, signatureAt)) return undefined
    let payload: Record<string, unknown>
    try {
      payload = verifierFor(key)(token).payload
    } catch {
      return undefined
    }
    const { iss, sub, aud, exp, iat, jti, client_id: clientId, scope, nbf, sid } = payload
    if (typeof clientId !== 'string' || typeof sub !== 'string') return undefined
    // RFC 9068 §2.2: sub is the client itself when no user is involved; a user's token names its
    // session, which is what revokes it.
    if (sid === undefined ? sub !== clientId : typeof sid !== 'string' || sid === '') return undefined
    if (typeof iss !== 'string' || typeof aud !== 'string' || typeof jti !== 'string') return undefined
    if (scope !== undefined && typeof scope !== 'string') return undefined
    if (typeof exp !== 'number' || typeof iat !== 'number' || nbf !== undefined) return undefined
    if (iat * 1000 > now + IAT_SKEW_MS) return undefined
    return {
      clientId,
      sub,
      ...(typeof sid === 'string' ? { sid } : {}),
      scope: scope ?? '',
      iat,
      exp,
      jti,
      iss,
      aud,
    }
  }

  function verify(token: string): VerifiedClientToken | undefined {
    if (typeof token !== 'string') return undefined
    const now = clock.now()
    const kid = kidOf(token)
    if (kid === undefined) return undefined
    // Looked up on every use: a rotation --now revokes the key, a retired one expires.
    const key = keyNamed(kid, now)
    if (!key) return undefined
    // As in domain/tokens.ts: found by the signature segment (cheaper to hash than the whole
    // token), then compared whole.
    const signature = token.slice(token.lastIndexOf('.') + 1)
    const cached = verified.get(signature)
    let claims = cached?.token === token ? cached.claims : undefined
    if (!claims) {
      claims = decode(token, key, now)
      if (!claims) return undefined
      if (verified.size >= VERIFIED_CACHE_MAX) verified.delete(verified.keys().next().value as string)
      verified.set(signature, { token, claims })
    }
    if (now >= claims.exp * 1000) return undefined
    // RFC 8725 §3.8-3.9 and RFC 9068 §4: our issuer, and our audience.
    if (!issuers.accepts(claims.iss)) {
      issuers.reloadSoon()
      return undefined
    }
    if (audience === undefined && !issuers.accepts(claims.aud)) return undefined
    return claims
  }

  /** RFC 9068 §2.2: iss, exp, aud, sub, client_id, iat, jti; and scope (§2.2.3); a user's sid. */
  function mint(claims: { sub: string; clientId: string; scope: string; sid?: string }) {
    const iss = issuers.current()
    const iat = Math.floor(clock.now() / 1000)
    const jti = randomId()
    const accessToken = sign(
      signingKey(),
      {
        iss,
        sub: claims.sub,
        aud: audience ?? iss,
        client_id: claims.clientId,
        scope: claims.scope,
        ...(claims.sid === undefined ? {} : { sid: claims.sid }),
        iat,
        exp: iat + expiresInSeconds,
        jti,
      },
      AT_JWT,
    )
    return { accessToken, jti }
  }

  return {
    issueForUser({ clientId, subject, scope, sid }) {
      const { accessToken } = mint({ sub: subject, clientId, scope, sid })
      return { accessToken, expiresIn: expiresInSeconds }
    },

    grant(client, requestedScope, origin) {
      // RFC 6749 §4.4: confidential clients only, and only those registered for the grant (§5.2).
      if (client.public || !client.grantTypes.includes('client_credentials')) {
        throw new DomainError(
          ErrorCode.unauthorizedClient,
          'This client is not registered for grant_type=client_credentials',
        )
      }
      const scope = grantedScope(client, requestedScope).join(' ')
      const { accessToken, jti } = mint({ sub: client.clientId, clientId: client.clientId, scope })
      // One entry per client and minute past the first few: a busy machine client asks often.
      audit.recordRepeated(
        {
          type: 'client.token_issued',
          outcome: 'success',
          ip: origin.ip,
          userAgent: origin.userAgent,
          detail: { clientId: client.clientId, scope, jti },
        },
        { key: client.clientId, keepFirst: 5 },
      )
      return { accessToken, expiresIn: expiresInSeconds, scope }
    },

    verify,

    active(token) {
      const claims = verify(token)
      if (!claims) return undefined
      // A user's token lives as long as its session, on every instance (domain/revocations.ts);
      // and no token outlives its client's deletion.
      if (claims.sid !== undefined && revocations.isSessionRevoked(claims.sid)) return undefined
      return revocations.isClientTokenRevoked(claims.clientId, claims.jti, claims.iat) ? undefined : claims
    },

    async revoke(token, origin) {
      if (revocations.isClientTokenRevoked(token.clientId, token.jti, token.iat)) return
      const subject = clientTokenSubject(token.clientId, token.jti)
      const at = clock.now()
      // Remembered until the token would have expired anyway.
      await feed.insertTokenRevocation(subject, at, token.exp * 1000)
      revocations.apply([{ kind: 'token', subject, at, expires_at: token.exp * 1000 }])
      audit.record({
        type: 'client.token_revoked',
        outcome: 'success',
        ip: origin.ip,
        userAgent: origin.userAgent,
        detail: { clientId: token.clientId, jti: token.jti },
      })
    },
  }
}
