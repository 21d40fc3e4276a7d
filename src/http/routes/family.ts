// A family of routes (one file) as an encapsulated plugin with a name, which Fastify refuses to
// load before what every route relies on: the error handler, the security headers, CORS and the
// 405 tracker (it records routes as they are added), and the docs' shared schemas and OpenAPI
// collector. A family names whatever else it uses (app.authenticate, the form parser). Each route
// declares its schema in full beside its handler (validation, types and the OpenAPI document come
// from it), so route declarations read alike.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyPluginOptions } from 'fastify'
import fp from 'fastify-plugin'

const EVERY_ROUTE_NEEDS = ['authgate-errors', 'authgate-security', 'authgate-docs']

export function routeFamily<Options extends FastifyPluginOptions = Record<never, never>>(
  { name, needs = [] }: { name: string; needs?: string[] },
  routes: FastifyPluginAsyncTypebox<Options>,
): FastifyPluginAsyncTypebox<Options> {
  return fp(routes, { name, dependencies: [...EVERY_ROUTE_NEEDS, ...needs], encapsulate: true })
}
