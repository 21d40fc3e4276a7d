// Request and response schemas for /auth: validation, types and OpenAPI from one source.
import { type Static, Type } from 'typebox'

// Hard caps that stop absurd input before any work; the configurable password policy
// (PASSWORD_MIN_LENGTH / PASSWORD_MAX_LENGTH) is applied by the domain inside them.
const USERNAME_INPUT_MAX = 256
const PASSWORD_INPUT_MAX = 1024

// The docs page's sign-up example, sent as it is by "Try it out": not the README's `testuser`
// (a 409 for anyone who followed the README), and a password the policy accepts.
const EXAMPLE_USER = { username: 'grace.hopper', password: 'violet harbor 42 lantern' }

export const CreateUserRequest = Type.Object(
  {
    username: Type.String({
      minLength: 1,
      maxLength: USERNAME_INPUT_MAX,
      description: 'Compared case-insensitively (NFKC + case folding); shown as typed.',
      examples: [EXAMPLE_USER.username],
    }),
    password: Type.String({
      minLength: 1,
      maxLength: PASSWORD_INPUT_MAX,
      description: '8 to 128 characters by default; common passwords are refused. Never trimmed.',
      examples: [EXAMPLE_USER.password],
    }),
    email: Type.Optional(
      Type.String({
        maxLength: 320,
        description:
          "Optional (the seed's body stays valid). A verification link is mailed to it; once verified it is " +
          'unique (compared after Unicode NFKC and lower-casing) and can receive password reset links.',
      }),
    ),
  },
  // Other fields are accepted and ignored, as the seed's pydantic model did: additionalProperties
  // is left unset rather than `true`, which Swagger UI fills with "additionalProp1".
  { examples: [EXAMPLE_USER] },
)
export type CreateUserRequest = Static<typeof CreateUserRequest>

const REFRESH_TOKEN_MAX = 512

// The token endpoint: the OAuth2 password grant (RFC 6749 §4.3.2), as FastAPI's
// OAuth2PasswordRequestForm, the refresh grant (§6) and the client credentials grant (§4.4), as a form.
export const TokenRequest = Type.Object({
  grant_type: Type.Optional(
    Type.String({
      maxLength: 64,
      description:
        '`password` (the default), `authorization_code`, `refresh_token`, `client_credentials`, or the ' +
        'second step of a password login that answered `mfa_required`: ' +
        '`urn:authgate:grant-type:mfa-otp` or `urn:authgate:grant-type:mfa-recovery-code`.',
    }),
  ),
  code: Type.Optional(
    Type.String({ maxLength: 128, description: 'authorization_code: the code from the redirect.' }),
  ),
  redirect_uri: Type.Optional(
    Type.String({
      maxLength: 2048,
      description: 'authorization_code: the redirect_uri of the authorization request, identical.',
    }),
  ),
  code_verifier: Type.Optional(
    Type.String({
      maxLength: 128,
      description: 'authorization_code: the PKCE code verifier (RFC 7636 §4.5) the challenge was made from.',
    }),
  ),
  username: Type.Optional(Type.String({ maxLength: USERNAME_INPUT_MAX, description: 'Password grant.' })),
  password: Type.Optional(Type.String({ maxLength: PASSWORD_INPUT_MAX, description: 'Password grant.' })),
  refresh_token: Type.Optional(Type.String({ maxLength: REFRESH_TOKEN_MAX, description: 'Refresh grant.' })),
  scope: Type.Optional(
    Type.String({
      maxLength: 1024,
      description:
        "client_credentials: the scopes asked for, within the client's (default: all of them but " +
        '`openid` and `offline_access`). Password grant: accepted and ignored, as in the seed.',
    }),
  ),
  client_id: Type.Optional(
    Type.String({
      maxLength: 256,
      description:
        'The client: with client_secret (client_secret_post), or alone for a public client (`none`). ' +
        "Ignored by the password grant; a refresh token of a client's session needs its client.",
    }),
  ),
  client_secret: Type.Optional(Type.String({ maxLength: 256 })),
  mfa_token: Type.Optional(
    Type.String({
      maxLength: 128,
      description: "The mfa grants: the `mfa_token` of the password grant's `mfa_required` answer.",
    }),
  ),
  otp: Type.Optional(
    Type.String({
      maxLength: 16,
      description: '`urn:authgate:grant-type:mfa-otp`: the 6-digit code of the authenticator app.',
    }),
  ),
  recovery_code: Type.Optional(
    Type.String({
      maxLength: 64,
      description: '`urn:authgate:grant-type:mfa-recovery-code`: one unused recovery code; it is burnt.',
    }),
  ),
})
export type TokenRequest = Static<typeof TokenRequest>

export const TokenResponse = Type.Object({
  access_token: Type.String({ description: 'A JWT; send it as `Authorization: Bearer <token>`.' }),
  token_type: Type.Literal('bearer'),
  expires_in: Type.Integer({ description: 'Seconds until the access token expires.' }),
  refresh_token: Type.Optional(
    Type.String({
      description:
        'Opaque, single use: trade it at this endpoint with `grant_type=refresh_token`. None for ' +
        'client_credentials (RFC 6749 §4.4.3); for a code, only with `offline_access` or to a ' +
        'first-party client.',
    }),
  ),
  scope: Type.Optional(
    Type.String({
      description: 'client_credentials and authorization_code: the scopes granted (RFC 6749 §5.1).',
    }),
  ),
  id_token: Type.Optional(
    Type.String({
      description: 'authorization_code with the `openid` scope: the ID token (OpenID Connect Core §3.1.3.3).',
    }),
  ),
})

// 401 at the token endpoint: the seed's `{detail}` for a wrong password, and RFC 6749 §5.2's
// invalid_client, which carries `error` too, for a client that failed to authenticate.
export const TokenUnauthorizedResponse = Type.Object(
  {
    error: Type.Optional(Type.String({ description: '`invalid_client` (client authentication failed).' })),
    error_description: Type.Optional(Type.String()),
    detail: Type.String(),
    code: Type.String(),
    mfa_token: Type.Optional(
      Type.String({
        description:
          'With `code: mfa_required`: the password was right and the account has a second factor. ' +
          'Single use, for 5 minutes: send it back with `grant_type=urn:authgate:grant-type:mfa-otp` ' +
          'and `otp`, or `urn:authgate:grant-type:mfa-recovery-code` and `recovery_code`.',
      }),
    ),
  },
  {
    $id: 'TokenUnauthorizedResponse',
    description: 'A wrong password, a second factor due, or a client that failed to authenticate.',
  },
)

// RFC 6749 §5.2, with FastAPI's `detail` beside it.
export const OAuthErrorResponse = Type.Object(
  {
    error: Type.String({
      description:
        '`invalid_request`, `invalid_grant`, `unsupported_grant_type`, `invalid_client`, ' +
        '`unauthorized_client` or `invalid_scope`.',
    }),
    error_description: Type.String(),
    detail: Type.String(),
    code: Type.String(),
  },
  { $id: 'OAuthErrorResponse', description: 'An OAuth 2.0 error (RFC 6749 §5.2).' },
)

// RFC 7009 §2.1; client_id and client_secret are client_secret_post (RFC 6749 §2.3.1).
export const RevokeRequest = Type.Object({
  token: Type.String({ maxLength: 4096, description: 'A refresh token (or an access token) to revoke.' }),
  token_type_hint: Type.Optional(Type.String({ maxLength: 64 })),
  client_id: Type.Optional(Type.String({ maxLength: 256 })),
  client_secret: Type.Optional(Type.String({ maxLength: 256 })),
})
export type RevokeRequest = Static<typeof RevokeRequest>

// RFC 7662 §2.1. `token` is checked by the handler, after the client has authenticated (§2.1).
export const IntrospectRequest = Type.Object({
  // No maxLength: ajv counts a string's characters one by one (code points), 1.4 µs for a
  // 700-character JWT on every request; one longer than any of ours is inactive (domain/introspection.ts).
  token: Type.Optional(
    Type.String({
      description:
        'The access token to look at. Longer than 8192 characters: inactive, like any token not ours.',
    }),
  ),
  token_type_hint: Type.Optional(Type.String({ maxLength: 64, description: 'Accepted and ignored.' })),
  client_id: Type.Optional(Type.String({ maxLength: 256 })),
  client_secret: Type.Optional(Type.String({ maxLength: 256 })),
})
export type IntrospectRequest = Static<typeof IntrospectRequest>

// RFC 7662 §2.2.
export const IntrospectResponse = Type.Object(
  {
    active: Type.Boolean({ description: 'Whether the token is valid now: ours, unexpired, not revoked.' }),
    scope: Type.Optional(Type.String({ description: 'Client tokens: the scopes granted.' })),
    client_id: Type.Optional(Type.String({ description: 'Client tokens: the client they were issued to.' })),
    sub: Type.Optional(
      Type.String({ description: "The token's `sub`: the client id, or a user token's username." }),
    ),
    username: Type.Optional(Type.String({ description: 'User tokens: whose.' })),
    exp: Type.Optional(Type.Integer()),
    iat: Type.Optional(Type.Integer()),
    iss: Type.Optional(Type.String()),
    aud: Type.Optional(Type.String()),
    jti: Type.Optional(Type.String()),
    token_type: Type.Optional(Type.Literal('Bearer')),
  },
  { description: 'Only `active` when the token is not active: never why (RFC 7662 §2.2).' },
)
