// RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0, issue 12 item 6): what a logout
// request asks for, checked before anything ends. The route (http/routes/logout.ts) then ends the
// browser session (browser-sessions.ts end: the session and every session it started, through the
// revocation feed, so their tokens are refused on every instance at once) and sends the browser
// on: to a post_logout_redirect_uri registered for the client, exactly, or to our own page.
import { compactVerify, createLocalJWKSet, type JSONWebKeySet } from 'jose'
import type { AuditLog } from './audit.js'
import type { Client } from './clients.js'

/** The request's parameters (§2), as sent by GET or by a form POST. ui_locales is ignored. */
export interface LogoutRequest {
  id_token_hint?: string | undefined
  client_id?: string | undefined
  post_logout_redirect_uri?: string | undefined
  state?: string | undefined
}

/** What an id_token_hint, once verified, tells: who the ID token was for, and which session. */
export interface LogoutHint {
  clientId: string
  subject: string
  /** The browser session its authentication belongs to (the ID token's sid). */
  sid: string | undefined
}

export type LogoutCheck =
  | { ok: false; problem: string }
  | {
      ok: true
      /** The client the request is from, when the hint or client_id named one. */
      client: Client | undefined
      hint: LogoutHint | undefined
      /** Where the browser goes once logged out: the registered URI, with state; else our page. */
      redirectTo: string | undefined
    }

export interface LogoutService {
  check(request: LogoutRequest): Promise<LogoutCheck>
  /** Records a logout that ended `ended` sessions (the browser session and what it started). */
  loggedOut(facts: { userId: number; sessionId: string; clientId: string | undefined; ended: number }): void
}

export interface LogoutDeps {
  clients: { show(clientId: string): Promise<Client | undefined> }
  /** The public keys that verify now (the JWKS), and the algorithms ID tokens are signed with. */
  jwks: () => JSONWebKeySet
  algorithms: () => string[]
  /** The deployment's issuer now: a hint from another issuer is not ours. */
  issuer: () => string
  audit: AuditLog
}

// An ID token is a few hundred bytes; a hint far beyond that is not one of ours.
const MAX_HINT = 8192

export function createLogout({ clients, jwks, algorithms, issuer, audit }: LogoutDeps): LogoutService {
  /**
   * The hint, if it is an ID token this server signed (§2: "previously issued by the OP"); its
   * expiry does not matter, as the spec expects expired ones (§4: the RP may hold only an old one).
   */
  async function verifyHint(token: string): Promise<LogoutHint | undefined> {
    if (token.length > MAX_HINT) return undefined
    let payload: Record<string, unknown>
    try {
      // RFC 8725 §3.1: the algorithms are ours, pinned; the key is found by kid among our own.
      const { payload: bytes, protectedHeader } = await compactVerify(token, createLocalJWKSet(jwks()), {
        algorithms: algorithms(),
      })
      // RFC 8725 §3.11: an access token (typ at+jwt) is not an ID token.
      if (protectedHeader.typ !== undefined && protectedHeader.typ !== 'JWT') return undefined
      payload = JSON.parse(new TextDecoder().decode(bytes)) as Record<string, unknown>
    } catch {
      return undefined
    }
    const { iss, aud, sub, sid, nonce, auth_time: authTime } = payload
    if (iss !== issuer() || typeof sub !== 'string' || typeof aud !== 'string') return undefined
    // OIDC Core §2: auth_time is in every ID token we mint; an access token of ours has client_id
    // and no auth_time, so it is refused here too.
    if (typeof authTime !== 'number' || payload.client_id !== undefined) return undefined
    if (sid !== undefined && typeof sid !== 'string') return undefined
    if (nonce !== undefined && typeof nonce !== 'string') return undefined
    return { clientId: aud, subject: sub, sid }
  }

  return {
    async check(request) {
      let hint: LogoutHint | undefined
      if (request.id_token_hint !== undefined) {
        hint = await verifyHint(request.id_token_hint)
        if (!hint) return { ok: false, problem: 'The id_token_hint is not an ID token this server issued.' }
      }
      // §2: client_id, when sent with a hint, must be the hint's audience.
      if (hint && request.client_id !== undefined && request.client_id !== hint.clientId) {
        return { ok: false, problem: 'The client_id is not the one the id_token_hint was issued to.' }
      }
      const clientId = hint?.clientId ?? request.client_id
      const client = clientId === undefined ? undefined : await clients.show(clientId)
      if (clientId !== undefined && !client)
        return { ok: false, problem: 'The client is not registered here.' }
      const uri = request.post_logout_redirect_uri
      if (uri === undefined) return { ok: true, client, hint, redirectTo: undefined }
      // §3 and RFC 9700 §4.11 (open redirectors): only a URI registered for the client, compared
      // exactly as a string, and only when the request says which client it is.
      if (!client) {
        return {
          ok: false,
          problem: 'A post_logout_redirect_uri needs the client: send id_token_hint or client_id.',
        }
      }
      if (!client.postLogoutRedirectUris.includes(uri)) {
        return { ok: false, problem: 'The post_logout_redirect_uri is not registered for this client.' }
      }
      // As registered, character for character, with state added (§3); a registered URI has no
      // fragment (clients.ts), so the query is its end.
      const redirectTo =
        request.state === undefined
          ? uri
          : `${uri}${uri.includes('?') ? '&' : '?'}${new URLSearchParams({ state: request.state })}`
      return { ok: true, client, hint, redirectTo }
    },

    loggedOut({ userId, sessionId, clientId, ended }) {
      audit.record({
        type: 'session.logged_out',
        outcome: 'success',
        userId,
        detail: { sessionId, via: 'end_session_endpoint', clientId: clientId ?? null, endedSessions: ended },
      })
    },
  }
}
