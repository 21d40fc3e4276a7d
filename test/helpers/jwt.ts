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
