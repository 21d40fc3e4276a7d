// OAuth clients in tests: registering one in an app's own database (as `authgate clients create`
// does, through the same domain service), and the requests machine clients make: the client
// credentials grant, introspection and revocation, authenticated by HTTP Basic or in the form.
import type { FastifyInstance } from 'fastify'
import { servicesOf } from '../../src/app.js'
import type { NewClient } from '../../src/domain/clients.js'

export const OPERATOR = { actor: 'cli', osUser: 'test' } as const

/** What every failed client authentication answers (RFC 6749 §5.2): one message, whatever failed. */
export const INVALID_CLIENT = {
  error: 'invalid_client',
  error_description: 'Client authentication failed',
  detail: 'Client authentication failed',
  code: 'invalid_client',
}

export interface RegisteredClient {
  id: string
  /** Undefined for a public client. */
  secret: string | undefined
}

/** Registers a client in the app's database; a machine client (client_credentials) by default. */
export async function registerClient(
  app: FastifyInstance,
  input: Partial<NewClient> = {},
): Promise<RegisteredClient> {
  const services = servicesOf(app)
  if (!services) throw new Error('not an app from buildApp')
  const { client, secret } = await services.clients.create(OPERATOR, {
    name: 'Machine client',
    grantTypes: ['client_credentials'],
    scope: 'reports:read reports:write',
    ...input,
  })
  return { id: client.clientId, secret }
}

/** RFC 6749 §2.3.1: Basic over the form-urlencoded id and secret. */
export const basicHeader = (id: string, secret: string) =>
  `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`

/** How a request authenticates its client: Basic, in the form (post), client_id alone (none), or not at all. */
export type ClientAuth =
  | { basic: RegisteredClient | { id: string; secret: string } }
  | { post: RegisteredClient | { id: string; secret: string } }
  | { none: string }
  | Record<string, never>

function authenticated(auth: ClientAuth, form: Record<string, string>) {
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' }
  const fields = { ...form }
  if ('basic' in auth) headers.authorization = basicHeader(auth.basic.id, auth.basic.secret ?? '')
  if ('post' in auth)
    Object.assign(fields, { client_id: auth.post.id, client_secret: auth.post.secret ?? '' })
  if ('none' in auth) fields.client_id = auth.none
  return { headers, payload: new URLSearchParams(fields).toString() }
}

/** POST /auth/token with grant_type=client_credentials. */
export function clientCredentials(app: FastifyInstance, auth: ClientAuth, form: Record<string, string> = {}) {
  return app.inject({
    method: 'POST',
    url: '/auth/token',
    ...authenticated(auth, { grant_type: 'client_credentials', ...form }),
  })
}

/** The access token of a client credentials grant that must succeed. */
export async function clientToken(
  app: FastifyInstance,
  client: RegisteredClient,
  scope?: string,
): Promise<string> {
  const res = await clientCredentials(app, { basic: client }, scope === undefined ? {} : { scope })
  if (res.statusCode !== 200) throw new Error(`client_credentials failed: ${res.statusCode} ${res.body}`)
  return res.json().access_token
}

/** POST /auth/introspect (RFC 7662). */
export function introspect(app: FastifyInstance, auth: ClientAuth, token: string | undefined) {
  return app.inject({
    method: 'POST',
    url: '/auth/introspect',
    ...authenticated(auth, token === undefined ? {} : { token }),
  })
}

/** POST /auth/revoke (RFC 7009). */
export function revoke(app: FastifyInstance, auth: ClientAuth, token: string) {
  return app.inject({ method: 'POST', url: '/auth/revoke', ...authenticated(auth, { token }) })
}
