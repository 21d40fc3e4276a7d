// The reviewed migration files, in order. A static list works the same from src/ (tsx) and dist/.
// Each file writes its DDL out in full and shares no helper with another: an applied migration must
// never change, and a shared helper edited later would change it. Their column lists look alike.
import type { Migration } from 'kysely'
import * as adoptSeedUsers from './2026_11_28_001_adopt_seed_users.js'
import * as sessions from './2026_11_28_002_sessions.js'
import * as signingKeys from './2026_11_28_003_signing_keys.js'
import * as auditLog from './2026_11_28_004_audit_log.js'
import * as throttle from './2026_11_28_005_throttle.js'
import * as revocationFeed from './2026_12_02_001_revocation_feed.js'
import * as credentialEpoch from './2026_12_02_002_credential_epoch.js'
import * as keyActivation from './2026_12_02_003_key_activation.js'
import * as oauthClients from './2026_12_03_001_oauth_clients.js'
import * as authorizationCodes from './2026_12_03_002_authorization_codes.js'
import * as sessionClients from './2026_12_03_003_session_clients.js'
import * as userSubject from './2026_12_03_004_user_subject.js'
import * as signingKeyChains from './2026_12_03_005_signing_key_chains.js'
import * as consents from './2026_12_03_006_consents.js'
import * as mfa from './2026_12_03_007_mfa.js'
import * as passkeys from './2026_12_03_008_passkeys.js'
import * as email from './2026_12_03_009_email.js'

export const migrations: Record<string, Migration> = {
  '2026_11_28_001_adopt_seed_users': adoptSeedUsers,
  '2026_11_28_002_sessions': sessions,
  '2026_11_28_003_signing_keys': signingKeys,
  '2026_11_28_004_audit_log': auditLog,
  '2026_11_28_005_throttle': throttle,
  '2026_12_02_001_revocation_feed': revocationFeed,
  '2026_12_02_002_credential_epoch': credentialEpoch,
  '2026_12_02_003_key_activation': keyActivation,
  '2026_12_03_001_oauth_clients': oauthClients,
  '2026_12_03_002_authorization_codes': authorizationCodes,
  '2026_12_03_003_session_clients': sessionClients,
  '2026_12_03_004_user_subject': userSubject,
  '2026_12_03_005_signing_key_chains': signingKeyChains,
  '2026_12_03_006_consents': consents,
  '2026_12_03_007_mfa': mfa,
  '2026_12_03_008_passkeys': passkeys,
  '2026_12_03_009_email': email,
}
