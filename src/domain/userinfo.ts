// The UserInfo endpoint (OpenID Connect Core 1.0 §5.3, issue 12 item 4): what a client's access
// token may tell about its user. The token is one of ours, issued to a client for a user (RFC 9068,
// domain/client-tokens.ts), active (its session not ended, on any instance), and from an OpenID
// request (the `openid` scope); the claims are those its scopes allow (OIDC Core §5.4).
import type { ClientTokenService } from './client-tokens.js'
import type { UsersRepository } from './users.js'

/** OIDC Core §5.3.2: `sub` always; `preferred_username` with the `profile` scope. */
export interface UserInfoClaims {
  sub: string
  preferred_username?: string
}

/** RFC 6750 §3.1: what a refused request is told (and nothing about why beyond it). */
export type UserInfoAnswer =
  | { claims: UserInfoClaims }
  | { error: 'invalid_token'; description: string }
  | { error: 'insufficient_scope'; description: string }

export interface UserInfoService {
  userinfo(token: string): Promise<UserInfoAnswer>
}

// Usernames remembered by subject, oldest dropped first: a username never changes in AuthGate (there
// is no rename), and a subject is never reassigned, so a remembered pair stays true; a deleted user's
// sessions end with the account, so their tokens are refused before this is read.
const USERNAMES_MAX = 10_000

const INVALID = {
  error: 'invalid_token',
  description: 'The access token is invalid, expired or revoked',
} as const

export function createUserInfo({
  clientTokens,
  users,
}: {
  clientTokens: Pick<ClientTokenService, 'active'>
  users: Pick<UsersRepository, 'findBySubject'>
}): UserInfoService {
  const usernames = new Map<string, string>()

  async function usernameOf(subject: string): Promise<string | undefined> {
    const known = usernames.get(subject)
    if (known !== undefined) return known
    const user = await users.findBySubject(subject)
    if (!user) return undefined
    if (usernames.size >= USERNAMES_MAX) usernames.delete(usernames.keys().next().value as string)
    usernames.set(subject, user.username)
    return user.username
  }

  return {
    async userinfo(token) {
      const claims = clientTokens.active(token)
      // A client_credentials token speaks for no user (no sid): there is no one to describe.
      if (!claims || claims.sid === undefined) return INVALID
      const scopes = claims.scope.split(' ')
      // OIDC Core §5.3: the access token is one "obtained from an OpenID Connect Authentication
      // Request"; RFC 6750 §3.1: insufficient_scope otherwise.
      if (!scopes.includes('openid')) {
        return {
          error: 'insufficient_scope',
          description: 'The access token was not granted the openid scope',
        }
      }
      if (!scopes.includes('profile')) return { claims: { sub: claims.sub } }
      const username = await usernameOf(claims.sub)
      if (username === undefined) return INVALID
      return { claims: { sub: claims.sub, preferred_username: username } }
    },
  }
}
