// Hand-made JWTs for attack tests: any header, any payload, any (or no) signature.
import { createHmac, createSign, generateKeyPairSync, type KeyObject } from 'node:crypto'

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
