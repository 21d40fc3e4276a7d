// Security headers (helmet), CORS from CORS_ORIGINS, and 405 for a known path with the wrong method.
import cors from '@fastify/cors'
import helmet from '@fastify/helmet'
import type { FastifyInstance } from 'fastify'
import { ErrorCode } from '../../domain/errors.js'
import { sendError } from './errors.js'

/** Registers helmet and CORS; call before the routes. Returns the 405 check for the 404 handler. */
export async function registerSecurity(
  app: FastifyInstance,
  { corsOrigins }: { corsOrigins: string[] },
): Promise<void> {
  // OWASP ASVS 14.4: nosniff, frame-ancestors 'none', no referrer leaks, HSTS. JSON answers need
  // no scripts at all; the docs pages send their own, narrower CSP (plugins/docs.ts).
  await app.register(helmet, {
    global: true,
    contentSecurityPolicy: { directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] } },
    crossOriginResourcePolicy: { policy: 'same-origin' },
  })
  // No origin is allowed unless configured: a browser app on another origin must be listed.
  if (corsOrigins.length > 0) {
    await app.register(cors, {
      origin: corsOrigins,
      methods: ['GET', 'POST', 'DELETE'],
      allowedHeaders: ['authorization', 'content-type'],
      maxAge: 600,
    })
  }
}

/**
 * Remembers every route's method and path, so the not-found handler can tell "no such path"
 * (404) from "no such method here" (405, with Allow, RFC 9110 §15.5.6).
 */
export function trackMethods(app: FastifyInstance): (method: string, url: string) => string[] {
  const routes: { method: string; pattern: RegExp }[] = []
  app.addHook('onRoute', (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method]
    const pattern = new RegExp(
      `^${route.url
        .replace(/\/$/, '')
        .replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
        .replace(/:[^/]+/g, '[^/]+')}/?$`,
    )
    for (const method of methods) routes.push({ method, pattern })
  })
  return (method, url) => {
    const path = url.split('?', 1)[0] ?? ''
    const allowed = routes.filter((r) => r.pattern.test(path)).map((r) => r.method)
    return allowed.includes(method) ? [] : [...new Set(allowed)]
  }
}

export function registerNotFound(
  app: FastifyInstance,
  allowedFor: (method: string, url: string) => string[],
) {
  app.setNotFoundHandler((request, reply) => {
    const allowed = allowedFor(request.method, request.url)
    if (allowed.length > 0) {
      reply.header('allow', allowed.join(', '))
      return sendError(reply, 405, ErrorCode.methodNotAllowed, 'Method Not Allowed')
    }
    return sendError(reply, 404, ErrorCode.notFound, 'Not Found')
  })
}
