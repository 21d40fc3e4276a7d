// The second factor's requests and answers (issue 13 item 1): enrolment, confirmation, removal.
import { type Static, Type } from 'typebox'

export const BeginTotpRequest = Type.Object({
  password: Type.String({ minLength: 1, maxLength: 1024, description: 'Your current password.' }),
})
export type BeginTotpRequest = Static<typeof BeginTotpRequest>

export const BeginTotpResponse = Type.Object({
  secret: Type.String({
    description: 'The shared secret, base32 (RFC 4648), for typing into an authenticator app. Shown once.',
  }),
  otpauth_uri: Type.String({
    description: 'The same secret as an `otpauth://totp/...` URI, the content of the QR code apps scan.',
  }),
})

export const ConfirmTotpRequest = Type.Object({
  code: Type.String({ minLength: 1, maxLength: 16, description: 'The 6-digit code the app shows now.' }),
})
export type ConfirmTotpRequest = Static<typeof ConfirmTotpRequest>

export const ConfirmTotpResponse = Type.Object({
  recovery_codes: Type.Array(Type.String(), {
    description:
      'Ten single-use codes for when the app is lost, shown once: each signs in once in place of a ' +
      'TOTP code (`grant_type=urn:authgate:grant-type:mfa-recovery-code`). A new enrolment replaces them.',
  }),
})

export const RemoveTotpRequest = Type.Object(
  {
    password: Type.Optional(Type.String({ minLength: 1, maxLength: 1024 })),
    code: Type.Optional(Type.String({ minLength: 1, maxLength: 16 })),
  },
  { description: 'Either the current password or a current TOTP code, not both.' },
)
export type RemoveTotpRequest = Static<typeof RemoveTotpRequest>

export const MfaStatusResponse = Type.Object({
  totp: Type.Union([Type.Literal('enabled'), Type.Literal('pending'), Type.Literal('off')], {
    description: '`pending`: enrolment started, waiting for its first code.',
  }),
  recovery_codes_left: Type.Integer({ description: 'Unused recovery codes.' }),
})
