// Request and response schemas for /auth: validation, types and OpenAPI from one source.
import { type Static, Type } from 'typebox'

// Hard caps that stop absurd input before any work; the configurable password policy
// (PASSWORD_MIN_LENGTH / PASSWORD_MAX_LENGTH) is applied by the domain inside them.
const USERNAME_INPUT_MAX = 256
const PASSWORD_INPUT_MAX = 1024

export const CreateUserRequest = Type.Object(
  {
    username: Type.String({
      minLength: 1,
      maxLength: USERNAME_INPUT_MAX,
      description: 'Compared case-insensitively (NFKC + case folding); shown as typed.',
      examples: ['testuser'],
    }),
    password: Type.String({
      minLength: 1,
      maxLength: PASSWORD_INPUT_MAX,
      description: '8 to 128 characters by default; common passwords are refused. Never trimmed.',
      examples: ['a long passphrase'],
    }),
  },
  { additionalProperties: true },
)
export type CreateUserRequest = Static<typeof CreateUserRequest>

// OAuth2 password grant (RFC 6749 §4.3.2), as FastAPI's OAuth2PasswordRequestForm.
export const TokenRequest = Type.Object({
  grant_type: Type.Optional(
    Type.String({ pattern: '^password$', description: 'Must be `password` if sent.' }),
  ),
  username: Type.String({ maxLength: USERNAME_INPUT_MAX }),
  password: Type.String({ maxLength: PASSWORD_INPUT_MAX }),
  scope: Type.Optional(Type.String({ default: '', description: 'Accepted and ignored, as in the seed.' })),
  client_id: Type.Optional(Type.String()),
  client_secret: Type.Optional(Type.String()),
})
export type TokenRequest = Static<typeof TokenRequest>

export const TokenResponse = Type.Object({
  access_token: Type.String({ description: 'An HS256 JWT; send it as `Authorization: Bearer <token>`.' }),
  token_type: Type.Literal('bearer'),
  expires_in: Type.Integer({ description: 'Seconds until the access token expires.' }),
})
