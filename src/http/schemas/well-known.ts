// Response schemas for /.well-known: the JWK Set (RFC 7517 §5) and the server metadata (RFC 8414 §2).
import { type Static, Type } from 'typebox'

const b64url = (description: string) => Type.String({ pattern: '^[A-Za-z0-9_-]+$', description })

export const PublicJwk = Type.Object(
  {
    kty: Type.String({ description: '`EC` (ES256), `OKP` (EdDSA) or `RSA` (RS256).' }),
    kid: Type.String({ description: 'The RFC 7638 thumbprint of the key; tokens name their key by it.' }),
    alg: Type.String({ description: 'The only algorithm this key verifies.' }),
    use: Type.Literal('sig'),
    crv: Type.Optional(Type.String({ description: '`P-256` or `Ed25519`.' })),
    x: Type.Optional(b64url('EC or OKP public key.')),
    y: Type.Optional(b64url('EC public key.')),
    n: Type.Optional(b64url('RSA modulus.')),
    e: Type.Optional(b64url('RSA exponent.')),
  },
  { description: 'A public key (RFC 7517 §4). Never private material.' },
)

export const JwksResponse = Type.Object(
  {
    keys: Type.Array(PublicJwk, {
      description:
        'The current signing keys, then retired keys whose tokens may not have expired yet; with HS256, the RS256 key alone.',
    }),
  },
  { description: 'A JWK Set (RFC 7517 §5).' },
)
export type JwksResponse = Static<typeof JwksResponse>

export const ServerMetadataResponse = Type.Object(
  {
    issuer: Type.String({ description: 'The `iss` of every token (JWT_ISSUER).' }),
    authorization_endpoint: Type.String({
      description: 'OpenID Connect Core §3.1.2: the authorization code flow with PKCE (S256).',
    }),
    jwks_uri: Type.String({ description: 'Where the public keys are.' }),
    token_endpoint: Type.String(),
    userinfo_endpoint: Type.String({
      description: 'OpenID Connect Core §5.3; a bearer access token from a code exchange.',
    }),
    end_session_endpoint: Type.String({
      description:
        'OpenID Connect RP-Initiated Logout 1.0: id_token_hint, client_id, a registered ' +
        'post_logout_redirect_uri and state; ends the browser session and every session it started.',
    }),
    revocation_endpoint: Type.String({ description: 'RFC 7009; takes a refresh token or an access token.' }),
    introspection_endpoint: Type.String({ description: 'RFC 7662; for confidential clients.' }),
    grant_types_supported: Type.Array(Type.String()),
    response_types_supported: Type.Array(Type.String(), {
      description: '`code` only: no implicit or hybrid flow (RFC 9700 §2.1.2).',
    }),
    response_modes_supported: Type.Array(Type.String(), { description: '`query` only.' }),
    code_challenge_methods_supported: Type.Array(Type.String(), {
      description: 'PKCE (RFC 7636), required of every client: `S256` only, never `plain`.',
    }),
    authorization_response_iss_parameter_supported: Type.Boolean({
      description: 'RFC 9207: every authorization response carries `iss`.',
    }),
    scopes_supported: Type.Array(Type.String()),
    claims_supported: Type.Array(Type.String()),
    prompt_values_supported: Type.Array(Type.String(), {
      description: '`select_account` is taken as `login`: the login page, to sign in as anyone.',
    }),
    token_endpoint_auth_methods_supported: Type.Array(Type.String()),
    revocation_endpoint_auth_methods_supported: Type.Array(Type.String()),
    introspection_endpoint_auth_methods_supported: Type.Array(Type.String()),
    id_token_signing_alg_values_supported: Type.Array(Type.String(), {
      description:
        "What ID tokens are signed with: RS256 (OpenID Connect Discovery §3), and the deployment's own " +
        'key-pair algorithm when it is another.',
    }),
    subject_types_supported: Type.Array(Type.String()),
  },
  { description: 'Authorization server metadata (RFC 8414 §2), also served as OpenID discovery.' },
)
export type ServerMetadataResponse = Static<typeof ServerMetadataResponse>
