// A resource server that trusts AuthGate without sharing a secret: it checks access tokens against
// AuthGate's public keys, fetched from its JWKS (RFC 7517) by jose's createRemoteJWKSet.
//
//   AUTHGATE_URL=http://127.0.0.1:8000 PORT=8001 npx tsx examples/resource-server/index.ts
//   curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8001/hello
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { pathToFileURL } from 'node:url'
import { createRemoteJWKSet, jwtVerify } from 'jose'

export interface ResourceServerOptions {
  /** Where AuthGate answers, e.g. http://127.0.0.1:8000. */
  authgateUrl: string
  /** The `iss` AuthGate signs (its JWT_ISSUER). Default: the issuer its discovery document names. */
  issuer?: string | undefined
  /** Required in tokens when set (AuthGate's JWT_AUDIENCE). */
  audience?: string | undefined
  /**
   * Pinned, never taken from the token (RFC 8725 §3.1). Asymmetric only: a JWKS consumer that also
   * allowed HS256 could be fooled into using a public key as an HMAC secret.
   */
  algorithms?: string[]
  /** jose: how long fetched keys are trusted without asking again (default 10 minutes). */
  cacheMaxAgeMs?: number
  /** jose: at most one refetch per this long when a token names an unknown kid (default 30 s). */
  cooldownMs?: number
  port?: number
  host?: string
}

export interface ResourceServer {
  url: string
  server: Server
  close(): Promise<void>
}

const DEFAULT_ALGORITHMS = ['ES256', 'EdDSA', 'RS256']

async function discoverIssuer(authgateUrl: string): Promise<string> {
  const res = await fetch(new URL('/.well-known/openid-configuration', authgateUrl))
  if (!res.ok) throw new Error(`AuthGate discovery answered ${res.status}`)
  const { issuer } = (await res.json()) as { issuer?: unknown }
  if (typeof issuer !== 'string') throw new Error('AuthGate discovery has no issuer')
  return issuer
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
  res.writeHead(status, { 'content-type': 'application/json', ...headers })
  res.end(JSON.stringify(body))
}

export async function startResourceServer(options: ResourceServerOptions): Promise<ResourceServer> {
  const issuer = options.issuer ?? (await discoverIssuer(options.authgateUrl))
  const algorithms = options.algorithms ?? DEFAULT_ALGORITHMS
  if (algorithms.some((alg) => alg.startsWith('HS') || alg === 'none')) {
    throw new Error('only asymmetric algorithms can be verified with public keys')
  }
  // Fetched on first use, cached, and fetched again when a token names a kid not yet seen (after a
  // key rotation), at most once per cooldown. Nothing here ever follows a URL found in a token.
  const jwks = createRemoteJWKSet(new URL('/.well-known/jwks.json', options.authgateUrl), {
    ...(options.cacheMaxAgeMs === undefined ? {} : { cacheMaxAge: options.cacheMaxAgeMs }),
    ...(options.cooldownMs === undefined ? {} : { cooldownDuration: options.cooldownMs }),
  })

  async function hello(req: IncomingMessage, res: ServerResponse) {
    const match = /^Bearer +(\S+)$/i.exec(req.headers.authorization ?? '')
    if (!match?.[1]) {
      return send(res, 401, { detail: 'Not authenticated' }, { 'www-authenticate': 'Bearer' })
    }
    try {
      const { payload, protectedHeader } = await jwtVerify(match[1], jwks, {
        issuer,
        algorithms,
        ...(options.audience === undefined ? {} : { audience: options.audience }),
        requiredClaims: ['exp', 'sub'],
      })
      return send(res, 200, { message: `Hello, ${payload.sub}!`, sub: payload.sub, kid: protectedHeader.kid })
    } catch {
      // Which check failed is for logs, not for the caller.
      return send(
        res,
        401,
        { detail: 'Could not validate credentials' },
        {
          'www-authenticate': 'Bearer error="invalid_token"',
        },
      )
    }
  }

  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]
    if (req.method === 'GET' && path === '/hello') {
      hello(req, res).catch(() => send(res, 500, { detail: 'Internal Server Error' }))
    } else if (req.method === 'GET' && path === '/healthz') send(res, 200, { status: 'ok' })
    else send(res, 404, { detail: 'Not Found' })
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', resolve)
  })
  const { address, port } = server.address() as AddressInfo
  return {
    url: `http://${address.includes(':') ? `[${address}]` : address}:${port}`,
    server,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  }
}

function numberFrom(name: string): number | undefined {
  const value = process.env[name]
  if (value === undefined || value === '') return undefined
  if (!/^\d+$/.test(value)) throw new Error(`${name}: expected a whole number, got ${JSON.stringify(value)}`)
  return Number(value)
}

async function main() {
  const authgateUrl = process.env.AUTHGATE_URL
  if (!authgateUrl) throw new Error('AUTHGATE_URL: required, e.g. http://127.0.0.1:8000')
  const rs = await startResourceServer({
    authgateUrl,
    issuer: process.env.AUTHGATE_ISSUER || undefined,
    audience: process.env.AUTHGATE_AUDIENCE || undefined,
    ...(process.env.AUTHGATE_ALGORITHMS ? { algorithms: process.env.AUTHGATE_ALGORITHMS.split(',') } : {}),
    ...(numberFrom('JWKS_CACHE_MAX_AGE_MS') === undefined
      ? {}
      : { cacheMaxAgeMs: numberFrom('JWKS_CACHE_MAX_AGE_MS') }),
    ...(numberFrom('JWKS_COOLDOWN_MS') === undefined ? {} : { cooldownMs: numberFrom('JWKS_COOLDOWN_MS') }),
    port: numberFrom('PORT') ?? 8001,
    host: process.env.HOST || '127.0.0.1',
  })
  console.log(`resource server listening on ${rs.url}, trusting ${authgateUrl}`)
  const stop = () => {
    rs.close().then(() => process.exit(0))
  }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err)
    process.exit(1)
  })
}
