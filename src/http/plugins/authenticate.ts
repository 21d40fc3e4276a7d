// The bearer-token check for protected routes: `onRequest: app.authenticate`, then request.user.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { ErrorCode } from '../../domain/errors.js'
import type { RevocationView } from '../../domain/revocations.js'
import type { TokenService, VerifiedToken } from '../../domain/tokens.js'
import { sendError } from './errors.js'

declare module 'fastify' {
  interface FastifyInstance {
    authenticate(request: FastifyRequest, reply: FastifyReply): Promise<void>
  }
  interface FastifyRequest {
    user: VerifiedToken | null
  }
}

/** The token after a case-insensitive `Bearer` scheme (RFC 6750 §2.1, RFC 9110 §11.1), or undefined. */
export function bearerToken(header: string | undefined): string | undefined {
  if (header === undefined) return undefined
  const space = header.indexOf(' ')
  if (space !== 6 || header.slice(0, 6).toLowerCase() !== 'bearer') return undefined
  return header.slice(7).trim()
}

function registerAuthenticate(app: FastifyInstance, tokens: TokenService, revocations: RevocationView): void {
  app.decorateRequest('user', null)
  app.decorate('authenticate', async (request: FastifyRequest, reply: FastifyReply) => {
    const token = bearerToken(request.headers.authorization)
    // The seed's messages, word for word: FastAPI's OAuth2PasswordBearer and get_current_user.
    if (token === undefined) return sendError(reply, 401, ErrorCode.notAuthenticated, 'Not authenticated')
    const user = tokens.verify(token)
    // A revoked session's tokens fail at once, not at exp: the view is in memory, kept current.
    if (user === undefined || revocations.isRevoked(user)) {
      return sendError(reply, 401, ErrorCode.invalidToken, 'Could not validate credentials')
    }
    request.user = user
  })
}

/** app.authenticate and request.user; the routes that use them name 'authgate-authenticate'. */
export const authenticatePlugin = fp<{ tokens: TokenService; revocations: RevocationView }>(
  async (app, { tokens, revocations }) => registerAuthenticate(app, tokens, revocations),
  { name: 'authgate-authenticate', dependencies: ['authgate-errors'] },
)
