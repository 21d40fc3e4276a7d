// Schemas for the signed-in user's own account and sessions.
import { type Static, Type } from 'typebox'

export const Me = Type.Object({
  id: Type.Integer(),
  username: Type.String({ description: 'As registered.' }),
  created_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()], {
    description: 'Null for users adopted from the seed database.',
  }),
})

export const ChangePasswordRequest = Type.Object({
  current_password: Type.String({ minLength: 1, maxLength: 1024 }),
  new_password: Type.String({ minLength: 1, maxLength: 1024, description: 'The password policy applies.' }),
})
export type ChangePasswordRequest = Static<typeof ChangePasswordRequest>

export const DeleteAccountRequest = Type.Object({
  password: Type.String({ minLength: 1, maxLength: 1024 }),
})
export type DeleteAccountRequest = Static<typeof DeleteAccountRequest>

export const Session = Type.Object({
  id: Type.String(),
  created_at: Type.String({ format: 'date-time' }),
  last_used_at: Type.String({
    format: 'date-time',
    description: 'The last login or refresh; for a browser session, its last use (to the minute).',
  }),
  user_agent: Type.Union([Type.String(), Type.Null()]),
  ip: Type.Union([Type.String(), Type.Null()]),
  current: Type.Boolean({ description: 'The session of the token making this request.' }),
  kind: Type.Union([Type.Literal('token'), Type.Literal('browser')], {
    description:
      '`token`: access and refresh tokens. `browser`: signed in to AuthGate in a browser (single ' +
      'sign-on); ending it ends the sessions it started.',
  }),
  client_id: Type.Union([Type.String(), Type.Null()], {
    description:
      'The OAuth client the session was issued to; null for the first-party password grant ' +
      '(POST /auth/token) and for browser sessions.',
  }),
})

export const MAX_SESSIONS_PAGE = 100

export const SessionListQuery = Type.Object({
  // Query values are strings (coercion is off everywhere): 1 to 100, digits only.
  limit: Type.Optional(
    Type.String({
      pattern: '^(100|[1-9][0-9]?)$',
      description: `Sessions per page, 1 to ${MAX_SESSIONS_PAGE} (default ${MAX_SESSIONS_PAGE}).`,
    }),
  ),
  cursor: Type.Optional(
    Type.String({
      maxLength: 96,
      pattern: '^[0-9]{1,16}\\.[A-Za-z0-9_-]{1,64}$',
      description: 'Where the page starts: the `next` link of the page before, as given.',
    }),
  ),
})
export type SessionListQuery = Static<typeof SessionListQuery>

export const SessionParams = Type.Object({ id: Type.String({ maxLength: 64 }) })

export const Consent = Type.Object({
  client_id: Type.String(),
  client_name: Type.String({ description: 'As registered; shown on the consent page.' }),
  scopes: Type.Array(Type.String(), {
    description: 'Every scope you have allowed the client, on its consent page (RFC 6749 §3.3 scope tokens).',
  }),
  granted_at: Type.String({ format: 'date-time', description: 'Your last "allow".' }),
})

export const ConsentParams = Type.Object({ client_id: Type.String({ maxLength: 256 }) })
