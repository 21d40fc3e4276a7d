// Hand-made JWTs for attack tests: any header, any payload, any (or no) signature.
import {
  createHmac,
  createPrivateKey,
  createSign,
  generateKeyPairSync,
  type KeyObject,
  sign,
} from 'node:crypto'

const b64 = (value: unknown) =>
  Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url')

export function craft(header: object, payload: object, sign: (input: string) => string = () => ''): string {
  const input = `${b64(header)}.${b64(payload)}`
  return `${input}.${sign(input)}`
}

export const hmac = (alg: 'sha256' | 'sha384' | 'sha512', key: string | Buffer) => (input: string) =>
  createHmac(alg, key).update(input).digest('base64url')

export function rsaKeys(): { privateKey: KeyObject; publicKey: KeyObject } {
  return generateKeyPairSync('rsa', { modulusLength: 2048 })
}

export const rs256 = (privateKey: KeyObject) => (input: string) =>
  createSign('RSA-SHA256').update(input).sign(privateKey).toString('base64url')

export const nowSeconds = () => Math.floor(Date.now() / 1000)

export function ecKeys(): { privateKey: KeyObject; publicKey: KeyObject } {
  return generateKeyPairSync('ec', { namedCurve: 'P-256' })
}

/** ES256 as JWS wants it (RFC 7518 §3.4): R || S, not DER. */
export const es256 = (privateKey: KeyObject | string) => (input: string) =>
  sign('sha256', Buffer.from(input), {
    key: typeof privateKey === 'string' ? createPrivateKey(privateKey) : privateKey,
    dsaEncoding: 'ieee-p1363',
  }).toString('base64url')

// P-256's group order n, and (n - 1) / 2: an ECDSA s above it is the malleable "high" form.
const P256_N = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n
export const P256_HALF_N = Buffer.from(((P256_N - 1n) / 2n).toString(16).padStart(64, '0'), 'hex')

/** The s half of an ES256 token's signature, 32 bytes big-endian. */
export function signatureS(token: string): Buffer {
  return Buffer.from(token.slice(token.lastIndexOf('.') + 1), 'base64url').subarray(32)
}

/** The same ES256 token with s replaced by n - s: the signature's other valid form. */
export function flipSignatureS(token: string): string {
  const dot = token.lastIndexOf('.') + 1
  const sig = Buffer.from(token.slice(dot), 'base64url')
  const s = BigInt(`0x${sig.subarray(32).toString('hex')}`)
  Buffer.from((P256_N - s).toString(16).padStart(64, '0'), 'hex').copy(sig, 32)
  return token.slice(0, dot) + sig.toString('base64url')
}

/** An ES256 signer whose signatures are always low-S, as AuthGate's are. */
export const lowS = (sign: (input: string) => string) => (input: string) => {
  const token = `.${sign(input)}`
  return (signatureS(token).compare(P256_HALF_N) > 0 ? flipSignatureS(token) : token).slice(1)
}

const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'

/**
 * Every other spelling of the token's last character that decodes to the same signature bytes:
 * base64url leaves 2 or 4 low bits of the last character unused (RFC 4648 §3.5).
 */
export function respellLastChar(token: string): string[] {
  const sigLength = token.length - token.lastIndexOf('.') - 1
  const unused = sigLength % 4 === 2 ? 4 : sigLength % 4 === 3 ? 2 : 0
  const value = B64URL.indexOf(token.at(-1) ?? '')
  const high = value & ~((1 << unused) - 1)
  const twins: string[] = []
  for (let low = 0; low < 1 << unused; low++) {
    const c = B64URL[high | low] as string
    if (c !== token.at(-1)) twins.push(token.slice(0, -1) + c)
  }
  const bytes = Buffer.from(token.slice(token.length - sigLength), 'base64url')
  for (const twin of twins) {
    if (!Buffer.from(twin.slice(twin.length - sigLength), 'base64url').equals(bytes))
      throw new Error('not a twin')
  }
  return twins
}
