// GET and POST /userinfo (OpenID Connect Core 1.0 §5.3): the user a client's access token was
// issued for, as its scopes allow. The token goes in the Authorization header (RFC 6750 §2.1).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyReply, FastifyRequest, RouteShorthandOptions } from 'fastify'
import { Type } from 'typebox'
import { ErrorCode } from '../../domain/errors.js'
import type { UserInfoService } from '../../domain/userinfo.js'
import { bearerToken } from '../plugins/authenticate.js'
import { oauthErrorAnswer, serviceUnavailable } from '../schemas/common.js'
import { routeFamily } from './family.js'

export interface UserInfoRoutesOptions {
  userinfo: UserInfoService
}

const UserInfoResponse = Type.Object(
  {
    sub: Type.String({ description: "The user's subject: stable, never reassigned, not the username." }),
    preferred_username: Type.Optional(Type.String({ description: 'With the `profile` scope.' })),
  },
  { description: 'The claims the access token allows (OpenID Connect Core §5.3.2).' },
)

/**
 * RFC 6750 §3: the error in WWW-Authenticate; with no token at all, the bare challenge (§3.1:
 * "SHOULD NOT include an error code"). The body says the same, in the shape of every error here.
 */
function refuse(reply: FastifyReply, status: 401 | 403, error: string | undefined, description: string) {
  const challenge =
    error === undefined
      ? 'Bearer'
      : `Bearer error="${error}", error_description="${description}"${
          error === 'insufficient_scope' ? ', scope="openid"' : ''
        }`
  const code = error ?? 'not_authenticated'
  return reply
    .code(status)
    .header('www-authenticate', challenge)
    .send({ error: error ?? 'invalid_request', error_description: description, detail: description, code })
}

const routes: FastifyPluginAsyncTypebox<UserInfoRoutesOptions> = async (app, { userinfo }) => {
  const options: RouteShorthandOptions = {
    schema: {
      tags: ['oidc'],
      summary: 'UserInfo',
      description:
        'OpenID Connect Core §5.3: the user an access token from a code exchange was issued for. ' +
        '`sub` always, `preferred_username` with `profile`. Needs a token with the `openid` scope, ' +
        'active (its session not ended), in `Authorization: Bearer`. A client_credentials token, ' +
        'or a first-party password-grant token, is refused.',
      security: [{ ClientAccessToken: [] }],
      response: {
        200: UserInfoResponse,
        401: oauthErrorAnswer(
          'No token (a bare `WWW-Authenticate: Bearer`), or an invalid, expired or revoked one ' +
            '(RFC 6750 §3.1 invalid_token, in WWW-Authenticate too).',
          [ErrorCode.notAuthenticated, 'Not authenticated', 'invalid_request'],
          [ErrorCode.invalidToken, 'The access token is invalid, expired or revoked'],
        ),
        403: oauthErrorAnswer('The token lacks the openid scope (RFC 6750 §3.1).', [
          ErrorCode.insufficientScope,
          'The access token was not granted the openid scope',
        ]),
        503: serviceUnavailable,
      },
    },
  }
  const handler = async (request: FastifyRequest, reply: FastifyReply) => {
    const token = bearerToken(request.headers.authorization)
    if (token === undefined) return refuse(reply, 401, undefined, 'Not authenticated')
    const answer = await userinfo.userinfo(token)
    if ('claims' in answer) {
      // OIDC Core §5.3.2 and RFC 6750 §5: claims about a user are not cached.
      reply.header('cache-control', 'no-store')
      return answer.claims
    }
    return refuse(reply, answer.error === 'insufficient_scope' ? 403 : 401, answer.error, answer.description)
  }
  app.get('/userinfo', options, handler)
  // OIDC Core §5.3.1: POST too; the token still in the header (a form body is not read).
  app.post('/userinfo', options, handler)
}

export const userinfoRoutes = routeFamily({ name: 'authgate-userinfo-routes' }, routes)
