// Authorization codes with PKCE (issue 12 item 2): issued by the authorization endpoint once the
// user has authenticated (and consented), redeemed once by the token endpoint.
// Sources: OpenID Connect Core 1.0 §3.1.2, RFC 6749 §4.1 (the code grant), RFC 7636 (PKCE),
// RFC 9700 §2.1.1 and §4.5 (the OAuth 2.0 Security BCP: PKCE, code injection).
//
// Single use is a compare-and-swap on consumed_at, done before any other check: the first
// presentation of a code spends it, whatever comes of it. So a wrong code_verifier, another client
// or another redirect URI burns the code too. No RFC requires that (RFC 6749 §4.1.2 says a code is
// used at most once; RFC 9700 §4.8.2 asks only that a code without a challenge refuse a verifier,
// and ours all have one), but it is the safer choice: an attacker holding an intercepted code gets
// one guess at the verifier, never a series, and no check can be raced against a second request.
// A legitimate client that loses its code this way starts the flow again.
import { createHash } from 'node:crypto'
import type { Clock } from '../lib/clock.js'
import { constantTimeEqual, randomToken, sha256Hex } from '../lib/crypto.js'
import type { AuditLog } from './audit.js'
import { DomainError, ErrorCode } from './errors.js'

/**
 * How long a code may be redeemed after it is issued. RFC 6749 §4.1.2 recommends at most 10
 * minutes; a client redeems its code within a second or two of the redirect, so 60 s is plenty.
 */
export const AUTHORIZATION_CODE_TTL_MS = 60_000

/** The only PKCE method (RFC 9700 §2.1.1: plain is not to be used; issue 12 refuses it). */
export const PKCE_METHOD = 'S256'

// RFC 7636 §4.1: code-verifier = 43*128unreserved, unreserved = ALPHA / DIGIT / "-" / "." / "_" / "~".
const CODE_VERIFIER = /^[A-Za-z0-9\-._~]{43,128}$/
// RFC 7636 §4.2: BASE64URL(SHA-256(...)), unpadded: 43 characters.
const S256_CHALLENGE = /^[A-Za-z0-9_-]{43}$/

/** RFC 7636 §4.2: code_challenge = BASE64URL-ENCODE(SHA256(ASCII(code_verifier))). */
export function s256Challenge(codeVerifier: string): string {
  return createHash('sha256').update(codeVerifier, 'ascii').digest('base64url')
}

/** Whether `value` has the syntax of a code_verifier (RFC 7636 §4.1). */
export function isCodeVerifier(value: string): boolean {
  return CODE_VERIFIER.test(value)
}

/**
 * Whether `value` can be an S256 challenge: 43 base64url characters that decode to 32 bytes and
 * back to themselves (the last character's unused bits zero), since no verifier hashes to any other.
 */
export function isS256Challenge(value: string): boolean {
  return S256_CHALLENGE.test(value) && Buffer.from(value, 'base64url').toString('base64url') === value
}

/** A code as the repository stores it. */
export interface StoredAuthorizationCode {
  /** SHA-256 of the code, hex. */
  codeHash: string
  clientId: string
  userId: number
  redirectUri: string
  scope: string
  codeChallenge: string
  nonce: string | null
  /** Epoch ms. */
  authTime: number
  amr: string[]
  browserSessionId: string | null
  createdAt: number
  expiresAt: number
  consumedAt: number | null
  issuedSessionId: string | null
  replayedAt: number | null
}

export interface AuthorizationCodesRepository {
  insert(code: StoredAuthorizationCode): Promise<void>
  /**
   * Sets consumed_at to `at` only if it is still NULL (compare-and-swap): the code as this call
   * consumed it, or undefined when there is no such code or something consumed it first.
   */
  consume(codeHash: string, at: number): Promise<StoredAuthorizationCode | undefined>
  find(codeHash: string): Promise<StoredAuthorizationCode | undefined>
  /**
   * The first replay of a consumed code: sets replayed_at to `at` only if it is still NULL, and in
   * the same statement reads what the first use issued. The code after that update, or undefined
   * when there is no such consumed code or it was replayed before.
   */
  markReplayed(codeHash: string, at: number): Promise<StoredAuthorizationCode | undefined>
  /**
   * Records the session a redemption issued, once (only while none is recorded), and in the same
   * statement reads whether a replay came first. The code after that update, or undefined when
   * there is no such code or a session was recorded already.
   */
  setIssuedSession(codeHash: string, sessionId: string): Promise<StoredAuthorizationCode | undefined>
  /** Deletes the codes expired at `now`; how many. */
  deleteExpired(now: number): Promise<number>
}

export interface CodeRequest {
  clientId: string
  userId: number
  redirectUri: string
  scope: string
  codeChallenge: string
  /** Absent is `plain` (RFC 7636 §4.3), which is refused like anything but S256. */
  codeChallengeMethod: string | undefined
  nonce: string | null | undefined
  /** Epoch ms of the user's authentication. */
  authTime: number
  amr: readonly string[]
  browserSessionId: string | null | undefined
}

export interface CodeRedemption {
  code: string
  /** The client the token endpoint authenticated (or, for a public client, the one named). */
  clientId: string
  redirectUri: string
  codeVerifier: string
  /** Where the request came from, for the audit trail. */
  from?: { ip: string | null; userAgent: string | null } | undefined
}

/** What the token endpoint needs from a redeemed code. */
export interface RedeemedCode {
  /** Opaque: give it to recordIssuedSession. */
  handle: string
  clientId: string
  userId: number
  scope: string
  nonce: string | null
  authTime: number
  amr: string[]
  browserSessionId: string | null
}

export interface AuthorizationCodeService {
  /** A new code (256 random bits, base64url), valid AUTHORIZATION_CODE_TTL_MS; only its hash is kept. */
  issue(request: CodeRequest): Promise<string>
  /** The code's grant, or an InvalidAuthorizationCode that says nothing of what failed. */
  redeem(redemption: CodeRedemption): Promise<RedeemedCode>
  /**
   * After the exchange made its session: records it, so a replay can revoke it. If the code was
   * replayed meanwhile, revokes the session itself and throws InvalidAuthorizationCode: the token
   * endpoint then answers invalid_grant instead of handing out tokens of a revoked session.
   */
  recordIssuedSession(handle: string, sessionId: string): Promise<void>
  /** Deletes expired codes; how many. A replay is detected only while its row is kept. */
  prune(now: number): Promise<number>
}

/**
 * RFC 6749 §5.2 invalid_grant, with one message for every cause (unknown, expired, used, another
 * client, another redirect URI, a bad verifier): which check failed would help only an attacker.
 */
export class InvalidAuthorizationCode extends DomainError {
  constructor() {
    super(ErrorCode.invalidGrant, 'The authorization code is invalid, expired or already used')
  }
}

export interface AuthorizationCodeServiceDeps {
  codes: AuthorizationCodesRepository
  clock: Clock
  audit: AuditLog
  /**
   * Revokes a session an exchange issued (a replay's answer, RFC 6749 §4.1.2: "SHOULD revoke ...
   * all tokens previously issued based on that authorization code"). Must be idempotent: every
   * replay calls it again, so one whose revocation failed is retried by the next.
   */
  revokeIssued(sessionId: string): Promise<void>
}

// Compared against when the verifier's syntax is wrong, so that case costs the same hash and
// compare as a wrong verifier. Random: no verifier hashes to it.
const DUMMY_CHALLENGE = s256Challenge(randomToken())

export function createAuthorizationCodeService(deps: AuthorizationCodeServiceDeps): AuthorizationCodeService {
  const { codes, clock, audit, revokeIssued } = deps

  /**
   * Records a replay: the first one per code (a later one says nothing new, and anyone holding the
   * code could repeat it at will), and once more when an exchange still in flight finds the replay
   * and revokes the session it just made.
   */
  function recordReplay(
    code: StoredAuthorizationCode,
    revokedSessionId: string | null,
    from: CodeRedemption['from'],
  ) {
    audit.record({
      type: 'authorization_code.replayed',
      outcome: 'failure',
      userId: code.userId,
      ip: from?.ip,
      userAgent: from?.userAgent,
      detail: { clientId: code.clientId, revokedSessionId },
    })
  }

  /** A consumed code came back: revoke what its first use issued. */
  async function replayed(codeHash: string, at: number, redemption: CodeRedemption): Promise<void> {
    // Only the first replay's read must be atomic with its mark (recordIssuedSession's race); a
    // later one finds replayed_at set already, and reads the row as it is.
    const first = await codes.markReplayed(codeHash, at)
    const code = first ?? (await codes.find(codeHash))
    if (!code) return // unknown, or pruned: nothing to revoke
    // Recorded before the revocation, so a revocation that fails (and throws) is still on record.
    if (first) recordReplay(code, code.issuedSessionId, redemption.from)
    // Again on every replay (revokeIssued is idempotent), so a revocation that failed is retried.
    if (code.issuedSessionId !== null) await revokeIssued(code.issuedSessionId)
  }

  return {
    async issue(request) {
      // RFC 7636 §4.4.1 / RFC 9700 §2.1.1: PKCE is required, with S256; `plain` (or no method,
      // which means plain, RFC 7636 §4.3) is an invalid_request.
      if (request.codeChallengeMethod !== PKCE_METHOD) {
        throw new DomainError(
          ErrorCode.invalidRequest,
          'code_challenge_method must be S256 (plain is not supported: RFC 9700 §2.1.1)',
        )
      }
      if (!isS256Challenge(request.codeChallenge)) {
        throw new DomainError(
          ErrorCode.invalidRequest,
          'code_challenge must be the 43-character BASE64URL of a SHA-256 (RFC 7636 §4.2)',
        )
      }
      // RFC 6749 §10.10: at most 2^-128 chance of guessing a code; 256 random bits.
      const code = randomToken()
      const at = clock.now()
      await codes.insert({
        codeHash: sha256Hex(code),
        clientId: request.clientId,
        userId: request.userId,
        redirectUri: request.redirectUri,
        scope: request.scope,
        codeChallenge: request.codeChallenge,
        nonce: request.nonce ?? null,
        authTime: request.authTime,
        amr: [...request.amr],
        browserSessionId: request.browserSessionId ?? null,
        createdAt: at,
        expiresAt: at + AUTHORIZATION_CODE_TTL_MS,
        consumedAt: null,
        issuedSessionId: null,
        replayedAt: null,
      })
      return code
    },

    async redeem(redemption) {
      const at = clock.now()
      const codeHash = sha256Hex(redemption.code)
      // The conditional UPDATE is the whole race: of any number of concurrent redemptions, on any
      // number of processes, exactly one gets the row; every other one sees it consumed.
      const code = await codes.consume(codeHash, at)
      if (!code) {
        await replayed(codeHash, at, redemption)
        throw new InvalidAuthorizationCode()
      }
      // Every check runs, and the verifier is always hashed and compared in constant time.
      const verifierOk = isCodeVerifier(redemption.codeVerifier)
      const challengeOk = constantTimeEqual(
        verifierOk ? s256Challenge(redemption.codeVerifier) : DUMMY_CHALLENGE,
        code.codeChallenge,
      )
      const valid =
        at < code.expiresAt &&
        // RFC 6749 §4.1.3: issued to this client; the redirect URI identical (a string compare,
        // RFC 9700 §4.1.3: no normalisation, so case, a trailing slash or a query all differ).
        redemption.clientId === code.clientId &&
        redemption.redirectUri === code.redirectUri &&
        verifierOk &&
        challengeOk
      if (!valid) throw new InvalidAuthorizationCode()
      return {
        handle: codeHash,
        clientId: code.clientId,
        userId: code.userId,
        scope: code.scope,
        nonce: code.nonce,
        authTime: code.authTime,
        amr: code.amr,
        browserSessionId: code.browserSessionId,
      }
    },

    async recordIssuedSession(handle, sessionId) {
      const code = await codes.setIssuedSession(handle, sessionId)
      if (code && code.replayedAt === null) return
      // A replay came between the redemption and now, and found no session to revoke: this is the
      // exchange's half of that race (the two updates of one row are serialised, so the later one
      // sees the earlier). Undefined (the code pruned meanwhile, a wrong handle, a session recorded
      // already): the session is revoked all the same rather than left where no replay can find it.
      if (code) recordReplay(code, sessionId, undefined)
      await revokeIssued(sessionId)
      throw new InvalidAuthorizationCode()
    },

    prune(now) {
      return codes.deleteExpired(now)
    },
  }
}
