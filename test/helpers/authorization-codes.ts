// What the authorization-code tests share (unit and integration): RFC 7636's example PKCE pair, a
// code request and its redemption, and what every failed redemption must look like.
import { expect } from 'vitest'
import { type CodeRequest, InvalidAuthorizationCode } from '../../src/domain/authorization-codes.js'
import { ErrorCode } from '../../src/domain/errors.js'

// RFC 7636 Appendix B: the example verifier and its S256 challenge.
export const VERIFIER = 'dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk'
export const CHALLENGE = 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM'
export const REDIRECT = 'https://app.example.com/callback'

/** A request from client-a for `userId`, with a nonce, `amr: ['pwd']` and a browser session. */
export const codeRequest = (
  userId: number,
  authTime: number,
  over: Partial<CodeRequest> = {},
): CodeRequest => ({
  clientId: 'client-a',
  userId,
  redirectUri: REDIRECT,
  scope: 'openid profile',
  codeChallenge: CHALLENGE,
  codeChallengeMethod: 'S256',
  nonce: 'n-0S6_WzA2Mj',
  authTime,
  amr: ['pwd'],
  browserSessionId: 'browser-1',
  ...over,
})

/** The redemption that must succeed for a codeRequest's code. */
export const redemption = (code: string) => ({
  code,
  clientId: 'client-a',
  redirectUri: REDIRECT,
  codeVerifier: VERIFIER,
})

/** Every failed redemption looks the same: invalid_grant, with one message, whatever failed. */
export async function expectInvalidGrant(attempt: Promise<unknown>): Promise<void> {
  const err = await attempt.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(err).toBeInstanceOf(InvalidAuthorizationCode)
  expect(err).toMatchObject({
    code: ErrorCode.invalidGrant,
    detail: 'The authorization code is invalid, expired or already used',
  })
}
