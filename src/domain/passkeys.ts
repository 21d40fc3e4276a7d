// Passkeys (issue 13 item 2): WebAuthn Level 3 registration and passwordless sign-in, through
// @simplewebauthn/server. This file decides what is asked for and what is stored; the library
// checks the signatures, the origin, the relying-party ID and the flags.
//
// - Every challenge is random, short-lived and spent once (WebAuthn §13.4.3): the library hands
//   the challenge it found in clientDataJSON to `expectedChallenge`, which spends it with a
//   compare-and-swap before anything else, so a replayed response, or two racing, fail.
// - A sign-in's challenge is stored only when it is spent: the options (unauthenticated, asked
//   for on every view of the login page, for autofill) hand out a random nonce with its expiry,
//   MACed under a deployment secret (signedLoginChallenge), and write nothing; verification checks
//   the MAC and the expiry, then records the challenge as spent with an INSERT that only one of
//   racing requests wins (OWASP ASVS 5.0 2.4.1: no unbounded writes from anonymous requests).
// - The origin must be PUBLIC_URL's, and the relying-party ID its host (§7.1 steps 9, 15; §7.2).
// - User verification is required (§7.2 step 17): a passkey alone is then two factors (something
//   held, and a PIN or biometric), which is why it stands in for the password and TOTP both
//   (NIST SP 800-63B §5.1.8/§5.1.9 multi-factor cryptographic authenticators).
// - A signature counter that does not move forward flags a possibly cloned authenticator
//   (§6.1.1, §7.2 step 21): refused, and audited.

import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import type {
  AuthenticationResponseJSON,
  PublicKeyCredentialCreationOptionsJSON,
  PublicKeyCredentialRequestOptionsJSON,
  RegistrationResponseJSON,
  verifyAuthenticationResponse,
  verifyRegistrationResponse,
} from '@simplewebauthn/server'
import type { Clock } from '../lib/clock.js'
import type { AuditLog } from './audit.js'
import type { AuthMethod } from './browser-sessions.js'
import { DomainError, ErrorCode } from './errors.js'
import type { UsersRepository, VerifiedUser } from './users.js'

/** How long a ceremony may take, options to verify (WebAuthn §15.1 suggests 5 to 10 minutes). */
export const WEBAUTHN_TIMEOUT_MS = 5 * 60_000
export const PASSKEY_REFUSED = 'The passkey could not be verified'
export const PASSKEY_EXISTS = 'This passkey is registered already'
export const PASSKEYS_UNAVAILABLE =
  'Passkeys are not available on this server: PUBLIC_URL must name the host by a domain name (https, or http://localhost)'

export interface StoredPasskey {
  id: string
  userId: number
  /** base64url COSE key. */
  publicKey: string
  counter: number
  transports: string[]
  deviceType: string
  backedUp: boolean
  name: string
  createdAt: number
  lastUsedAt: number | null
}

export type ChallengePurpose = 'register' | 'login'

// A sign-in challenge: 16 random bytes, the expiry (ms, 8 bytes big-endian) and 16 bytes of
// HMAC-SHA256 over both under the deployment's secret, with a purpose label of its own.
const NONCE_BYTES = 16
const MAC_BYTES = 16
const LOGIN_CHALLENGE_BYTES = NONCE_BYTES + 8 + MAC_BYTES
const loginMac = (secret: string, body: Uint8Array) =>
  createHmac('sha256', secret)
    .update('authgate-webauthn-login-v1!')
    .update(body)
    .digest()
    .subarray(0, MAC_BYTES)

/** The bytes of a fresh sign-in challenge valid until `expiresAt`. */
export function signedLoginChallenge(secret: string, expiresAt: number): Uint8Array<ArrayBuffer> {
  const body = Buffer.alloc(NONCE_BYTES + 8)
  randomBytes(NONCE_BYTES).copy(body)
  body.writeBigUInt64BE(BigInt(expiresAt), NONCE_BYTES)
  const bytes = new Uint8Array(LOGIN_CHALLENGE_BYTES)
  bytes.set(body)
  bytes.set(loginMac(secret, body), body.length)
  return bytes
}

/** The expiry of a sign-in challenge (base64url, as clientDataJSON carries it) we made, or undefined. */
export function loginChallengeExpiry(secret: string, challenge: string): number | undefined {
  const bytes = Buffer.from(challenge, 'base64url')
  if (bytes.length !== LOGIN_CHALLENGE_BYTES || bytes.toString('base64url') !== challenge) return undefined
  const body = bytes.subarray(0, NONCE_BYTES + 8)
  if (!timingSafeEqual(loginMac(secret, body), bytes.subarray(NONCE_BYTES + 8))) return undefined
  return Number(body.readBigUInt64BE(NONCE_BYTES))
}

export interface PasskeysRepository {
  insertChallenge(c: {
    challenge: string
    purpose: ChallengePurpose
    userId: number | null
    createdAt: number
    expiresAt: number
  }): Promise<void>
  /**
   * Records a sign-in challenge (signedLoginChallenge) as spent: true for the first request to
   * spend it, false for every later or concurrent one.
   */
  spendLoginChallenge(challenge: string, at: number, expiresAt: number): Promise<boolean>
  /** Spends the challenge if it is unspent, unexpired at `at`, and for `purpose` and `userId`. */
  consumeChallenge(
    challenge: string,
    purpose: ChallengePurpose,
    userId: number | null,
    at: number,
  ): Promise<boolean>
  /** False when a credential with that id exists already (any user's). */
  insert(passkey: StoredPasskey): Promise<boolean>
  find(id: string): Promise<StoredPasskey | undefined>
  list(userId: number): Promise<StoredPasskey[]>
  /**
   * Records a use: the counter moves to `counter` only if it is later than the stored one (or both
   * are 0, an authenticator without a counter). False when it changed nothing.
   */
  recordUse(id: string, counter: number, backedUp: boolean, at: number): Promise<boolean>
  delete(userId: number, id: string): Promise<boolean>
  deleteExpiredChallenges(before: number): Promise<number>
}

/** The relying party: PUBLIC_URL's origin and host. Undefined when the host is an IP address. */
export interface RelyingParty {
  id: string
  origin: string
  name: string
}

/** The relying party PUBLIC_URL makes, or undefined: WebAuthn §5.1.3 needs a domain, not an IP. */
export function relyingPartyOf(publicUrl: string): RelyingParty | undefined {
  const url = new URL(publicUrl)
  const host = url.hostname
  if (/^[0-9.]+$/.test(host) || host.startsWith('[')) return undefined
  return { id: host, origin: url.origin, name: 'AuthGate' }
}

/** Who is registering (the bearer token's user) and from where. */
export interface PasskeyOwner {
  id: number
  username: string
  ip: string
  userAgent: string | null
}

export interface PasskeySignIn {
  /** The passkey's owner, at the credential epoch of now (sessions are stored under it). */
  user: VerifiedUser
  credentialId: string
  /** RFC 8176: `hwk` for a device-bound key, `swk` for a synced one; `user` for the verification. */
  amr: AuthMethod[]
}

const b64url = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64url')
// Loaded at the first ceremony, not at start-up: it weighs about 270 ms of imports, which every
// start (and every CLI command) would otherwise pay.
const webauthn = () => import('@simplewebauthn/server')

export function createPasskeyService(deps: {
  repository: PasskeysRepository
  relyingParty: RelyingParty | undefined
  audit: AuditLog
  clock: Clock
  /** The user a WebAuthn user handle (our subject) names, for the sign-in check. */
  users: Pick<UsersRepository, 'findById' | 'findBySubject'>
  /** The deployment's secret (every instance's) that sign-in challenges are MACed under. */
  challengeSecret: string
}) {
  const { repository, relyingParty, audit, clock, users } = deps
  const rp = (): RelyingParty => {
    if (!relyingParty) throw new DomainError(ErrorCode.webauthnUnavailable, PASSKEYS_UNAVAILABLE)
    return relyingParty
  }
  const refused = () => new DomainError(ErrorCode.invalidPasskey, PASSKEY_REFUSED)
  const challengeFor = async (challenge: string, purpose: ChallengePurpose, userId: number | null) => {
    const now = clock.now()
    await repository.insertChallenge({
      challenge,
      purpose,
      userId,
      createdAt: now,
      expiresAt: now + WEBAUTHN_TIMEOUT_MS,
    })
  }
  const spend = (purpose: ChallengePurpose, userId: number | null) => (challenge: string) =>
    repository.consumeChallenge(challenge, purpose, userId, clock.now())
  const spendLogin = async (challenge: string) => {
    const expiresAt = loginChallengeExpiry(deps.challengeSecret, challenge)
    const now = clock.now()
    if (expiresAt === undefined || expiresAt <= now) return false
    return repository.spendLoginChallenge(challenge, now, expiresAt)
  }

  return {
    available: () => relyingParty !== undefined,

    /** Options for navigator.credentials.create(): a discoverable credential, user verification required. */
    async registrationOptions(owner: PasskeyOwner): Promise<PublicKeyCredentialCreationOptionsJSON> {
      const party = rp()
      const stored = await users.findById(owner.id)
      if (!stored) throw new DomainError(ErrorCode.notFound, 'User not found')
      const existing = await repository.list(owner.id)
      const options = await (await webauthn()).generateRegistrationOptions({
        rpName: party.name,
        rpID: party.id,
        userName: owner.username,
        // The user handle: the subject, never reassigned (the id could be, on another install).
        userID: new TextEncoder().encode(stored.subject),
        timeout: WEBAUTHN_TIMEOUT_MS,
        attestationType: 'none',
        excludeCredentials: existing.map((p) => ({ id: p.id, transports: p.transports })),
        // WebAuthn §5.4.6: a resident key is what makes passwordless (username-less) sign-in work.
        authenticatorSelection: { residentKey: 'required', userVerification: 'required' },
      })
      await challengeFor(options.challenge, 'register', owner.id)
      return options
    },

    async register(owner: PasskeyOwner, response: RegistrationResponseJSON, name: string | undefined) {
      const party = rp()
      let verified: Awaited<ReturnType<typeof verifyRegistrationResponse>>
      try {
        verified = await (await webauthn()).verifyRegistrationResponse({
          response,
          expectedChallenge: spend('register', owner.id),
          expectedOrigin: party.origin,
          expectedRPID: party.id,
          requireUserVerification: true,
        })
      } catch (err) {
        audit.record({
          type: 'webauthn.failed',
          outcome: 'failure',
          userId: owner.id,
          username: owner.username,
          ip: owner.ip,
          userAgent: owner.userAgent,
          detail: { ceremony: 'register', reason: reasonOf(err) },
        })
        throw refused()
      }
      if (!verified.verified) throw refused()
      const info = verified.registrationInfo
      const now = clock.now()
      const passkey: StoredPasskey = {
        id: info.credential.id,
        userId: owner.id,
        publicKey: b64url(info.credential.publicKey),
        counter: info.credential.counter,
        transports: info.credential.transports ?? [],
        deviceType: info.credentialDeviceType,
        backedUp: info.credentialBackedUp,
        name: name?.trim() || 'Passkey',
        createdAt: now,
        lastUsedAt: null,
      }
      if (!(await repository.insert(passkey))) throw new DomainError(ErrorCode.passkeyExists, PASSKEY_EXISTS)
      audit.record({
        type: 'webauthn.registered',
        outcome: 'success',
        userId: owner.id,
        username: owner.username,
        ip: owner.ip,
        userAgent: owner.userAgent,
        detail: { credentialId: passkey.id.slice(0, 64), deviceType: passkey.deviceType },
      })
      return passkey
    },

    /** Options for navigator.credentials.get(): any of this site's discoverable passkeys. */
    async loginOptions(): Promise<PublicKeyCredentialRequestOptionsJSON> {
      const party = rp()
      const options = await (await webauthn()).generateAuthenticationOptions({
        rpID: party.id,
        timeout: WEBAUTHN_TIMEOUT_MS,
        userVerification: 'required',
        allowCredentials: [],
        challenge: signedLoginChallenge(deps.challengeSecret, clock.now() + WEBAUTHN_TIMEOUT_MS),
      })
      return options
    },

    /** A passwordless sign-in: the assertion checked, the counter moved on, whose passkey it was. */
    async signIn(
      response: AuthenticationResponseJSON,
      from: { ip: string; userAgent: string | null },
    ): Promise<PasskeySignIn> {
      const party = rp()
      const fail = (reason: string, userId?: number) => {
        audit.recordRepeated(
          {
            type: reason === 'counter' ? 'webauthn.counter_regressed' : 'webauthn.failed',
            outcome: 'failure',
            userId,
            ...from,
            detail: { ceremony: 'login', reason, credentialId: String(response.id).slice(0, 64) },
          },
          { key: from.ip, keepFirst: 5 },
        )
        return refused()
      }
      const passkey = typeof response.id === 'string' ? await repository.find(response.id) : undefined
      if (!passkey) throw fail('unknown_credential')
      // The user handle the authenticator returned must be the owner's (WebAuthn §7.2 step 6).
      const handle = response.response?.userHandle
      const owner =
        typeof handle === 'string'
          ? await users.findBySubject(Buffer.from(handle, 'base64url').toString('utf8'))
          : undefined
      if (!owner || Number(owner.id) !== passkey.userId) throw fail('user_handle', passkey.userId)
      let verified: Awaited<ReturnType<typeof verifyAuthenticationResponse>>
      try {
        verified = await (await webauthn()).verifyAuthenticationResponse({
          response,
          expectedChallenge: spendLogin,
          expectedOrigin: party.origin,
          expectedRPID: party.id,
          credential: {
            id: passkey.id,
            publicKey: Buffer.from(passkey.publicKey, 'base64url'),
            counter: passkey.counter,
            transports: passkey.transports as never,
          },
          requireUserVerification: true,
        })
      } catch (err) {
        throw fail(reasonOf(err), passkey.userId)
      }
      if (!verified.verified) throw fail('signature', passkey.userId)
      const info = verified.authenticationInfo
      // The same check again, in the store: two assertions racing with one counter get one use.
      if (!(await repository.recordUse(passkey.id, info.newCounter, info.credentialBackedUp, clock.now())))
        throw fail('counter', passkey.userId)
      return {
        user: {
          id: passkey.userId,
          username: owner.username,
          epoch: Number(owner.authgate_credential_epoch),
        },
        credentialId: passkey.id,
        amr: [info.credentialDeviceType === 'multiDevice' ? 'swk' : 'hwk', 'user'],
      }
    },

    list: (userId: number) => repository.list(userId),

    async remove(owner: PasskeyOwner, id: string): Promise<boolean> {
      const removed = await repository.delete(owner.id, id)
      if (removed)
        audit.record({
          type: 'webauthn.removed',
          outcome: 'success',
          userId: owner.id,
          username: owner.username,
          ip: owner.ip,
          userAgent: owner.userAgent,
          detail: { credentialId: id.slice(0, 64) },
        })
      return removed
    },

    prune: (before: number) => repository.deleteExpiredChallenges(before),
  }
}

/** A short, fixed reason for the audit trail from the library's error message (never echoed input). */
function reasonOf(err: unknown): string {
  const message = err instanceof Error ? err.message : ''
  if (/counter/i.test(message)) return 'counter'
  if (/challenge/i.test(message)) return 'challenge'
  if (/origin/i.test(message)) return 'origin'
  if (/RP ID/i.test(message)) return 'rp_id'
  if (/verif/i.test(message)) return 'user_verification'
  if (/signature/i.test(message)) return 'signature'
  return 'malformed'
}

export type PasskeyService = ReturnType<typeof createPasskeyService>
