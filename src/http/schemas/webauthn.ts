// Passkeys' requests and answers (issue 13 item 2). The WebAuthn JSON shapes are the browser's
// (PublicKeyCredential.toJSON(), WebAuthn Level 3 §5.1.10): checked here for their outline only;
// @simplewebauthn/server checks every field that matters.
import { type Static, Type } from 'typebox'

const base64url = (description: string) =>
  Type.String({ minLength: 1, maxLength: 4096, pattern: '^[A-Za-z0-9_-]+$', description })

/** PublicKeyCredentialCreationOptionsJSON / RequestOptionsJSON, for navigator.credentials. */
export const CredentialOptions = Type.Object(
  { challenge: Type.String({ description: 'base64url, single use, valid 5 minutes.' }) },
  {
    additionalProperties: true,
    description:
      'Pass to `navigator.credentials.create()` / `.get()` (through `PublicKeyCredential.parseCreationOptionsFromJSON` / `parseRequestOptionsFromJSON`).',
  },
)

const credentialFields = {
  id: base64url('The credential ID.'),
  rawId: base64url('The same, as the browser gives it.'),
  type: Type.Literal('public-key'),
  authenticatorAttachment: Type.Optional(Type.String({ maxLength: 64 })),
  clientExtensionResults: Type.Optional(Type.Object({}, { additionalProperties: true })),
}

export const RegistrationRequest = Type.Object(
  {
    ...credentialFields,
    response: Type.Object(
      {
        clientDataJSON: base64url('The client data.'),
        attestationObject: base64url('The attestation object.'),
      },
      { additionalProperties: true },
    ),
    name: Type.Optional(Type.String({ maxLength: 64, description: 'A name to tell your passkeys apart.' })),
  },
  { description: "`PublicKeyCredential.toJSON()` of navigator.credentials.create()'s answer, and a name." },
)
export type RegistrationRequest = Static<typeof RegistrationRequest>

export const AuthenticationRequest = Type.Object(
  {
    ...credentialFields,
    response: Type.Object(
      {
        clientDataJSON: base64url('The client data.'),
        authenticatorData: base64url('The authenticator data.'),
        signature: base64url('The signature.'),
        userHandle: Type.Optional(base64url('The user handle (a discoverable credential has one).')),
      },
      { additionalProperties: true },
    ),
  },
  { description: "`PublicKeyCredential.toJSON()` of navigator.credentials.get()'s answer." },
)
export type AuthenticationRequest = Static<typeof AuthenticationRequest>

export const Passkey = Type.Object({
  id: Type.String({ description: 'The credential ID, base64url.' }),
  name: Type.String(),
  device_type: Type.String({ description: '`singleDevice` (device-bound) or `multiDevice` (synced).' }),
  backed_up: Type.Boolean(),
  created_at: Type.String({ format: 'date-time' }),
  last_used_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
})

export const PasskeyParams = Type.Object({ id: Type.String({ maxLength: 4096 }) })
