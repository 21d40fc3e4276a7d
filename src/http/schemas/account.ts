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
  last_used_at: Type.String({ format: 'date-time', description: 'The last login or refresh.' }),
  user_agent: Type.Union([Type.String(), Type.Null()]),
  ip: Type.Union([Type.String(), Type.Null()]),
  current: Type.Boolean({ description: 'The session of the token making this request.' }),
})

export const SessionParams = Type.Object({ id: Type.String({ maxLength: 64 }) })
