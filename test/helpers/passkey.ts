// A software passkey for tests that need many assertions without a browser (the concurrency
// suite): an ES256 key, the authenticator data, attestation object and client data a WebAuthn
// authenticator and browser make (WebAuthn Level 3 §6.1, §6.5, §5.8.1), signed with node:crypto.
// The browser tests use Chromium's virtual authenticator instead; this one is checked against
// the same server, which verifies it with @simplewebauthn/server like any other.
import { createHash, generateKeyPairSync, randomBytes, sign } from 'node:crypto'
import { isoCBOR } from '@simplewebauthn/server/helpers'

const b64url = (bytes: Uint8Array | string) => Buffer.from(bytes).toString('base64url')
const sha256 = (data: Uint8Array | string) => createHash('sha256').update(data).digest()
const FLAGS = { up: 0x01, uv: 0x04, at: 0x40 }

export class SoftwarePasskey {
  readonly id = randomBytes(16)
  readonly #key = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  /** The signature counter the next assertion carries minus one; set it to play a clone. */
  counter = 0
  /** The user handle (WebAuthn §5.4.3) the server gave at registration. */
  userHandle = ''

  constructor(
    readonly rpId: string,
    readonly origin: string,
  ) {}

  get credentialId(): string {
    return b64url(this.id)
  }

  #cosePublicKey(): Uint8Array {
    const jwk = this.#key.publicKey.export({ format: 'jwk' })
    // RFC 9053 §7.1.1: kty EC2 (2), alg ES256 (-7), crv P-256 (1), x, y.
    return isoCBOR.encode(
      new Map<number, number | Uint8Array>([
        [1, 2],
        [3, -7],
        [-1, 1],
        [-2, Buffer.from(jwk.x as string, 'base64url')],
        [-3, Buffer.from(jwk.y as string, 'base64url')],
      ]),
    )
  }

  #authData(flags: number, attested?: Uint8Array): Buffer {
    const count = Buffer.alloc(4)
    count.writeUInt32BE(this.counter)
    return Buffer.concat([sha256(this.rpId), Buffer.from([flags]), count, ...(attested ? [attested] : [])])
  }

  #clientData(type: 'webauthn.create' | 'webauthn.get', challenge: string): Buffer {
    return Buffer.from(JSON.stringify({ type, challenge, origin: this.origin, crossOrigin: false }))
  }

  /** The answer to registration options, as `credential.toJSON()` gives it (attestation `none`). */
  register(options: { challenge: string; user: { id: string } }) {
    this.userHandle = options.user.id
    const idLength = Buffer.alloc(2)
    idLength.writeUInt16BE(this.id.length)
    const attested = Buffer.concat([Buffer.alloc(16), idLength, this.id, this.#cosePublicKey()])
    const authData = this.#authData(FLAGS.up | FLAGS.uv | FLAGS.at, attested)
    type Cbor = Parameters<typeof isoCBOR.encode>[0]
    const attestationObject = isoCBOR.encode(
      new Map<string, Cbor>([
        ['fmt', 'none'],
        ['attStmt', new Map() as Cbor],
        ['authData', authData],
      ]) as Cbor,
    )
    return {
      id: this.credentialId,
      rawId: this.credentialId,
      type: 'public-key',
      response: {
        clientDataJSON: b64url(this.#clientData('webauthn.create', options.challenge)),
        attestationObject: b64url(attestationObject),
        transports: ['internal'],
      },
      clientExtensionResults: {},
    }
  }

  /** An assertion for `challenge`, its counter one more than the last (WebAuthn §6.1.1). */
  assert(challenge: string) {
    this.counter++
    const authData = this.#authData(FLAGS.up | FLAGS.uv)
    const clientData = this.#clientData('webauthn.get', challenge)
    const signature = sign('sha256', Buffer.concat([authData, sha256(clientData)]), this.#key.privateKey)
    return {
      id: this.credentialId,
      rawId: this.credentialId,
      type: 'public-key',
      response: {
        clientDataJSON: b64url(clientData),
        authenticatorData: b64url(authData),
        signature: b64url(signature),
        userHandle: this.userHandle,
      },
      clientExtensionResults: {},
    }
  }
}
