// The app's plugins name what they need (fastify-plugin `dependencies`): Fastify, not the reader of
// app.ts, refuses one registered before its dependencies.
import Fastify from 'fastify'
import { describe, expect, it } from 'vitest'
import { errorsPlugin } from '../../src/http/plugins/errors.js'
import { securityPlugin } from '../../src/http/plugins/security.js'
import { healthRoutes } from '../../src/http/routes/health.js'

describe('plugin order', () => {
  it('refuses the security plugin before the error handler', async () => {
    const app = Fastify()
    await expect(app.register(securityPlugin, { corsOrigins: [] })).rejects.toThrow(
      "The dependency 'authgate-errors' of plugin 'authgate-security' is not registered",
    )
  })

  it('refuses a route family before the plugins every route needs', async () => {
    const app = Fastify()
    await app.register(errorsPlugin, { isDatabaseUnavailable: () => false })
    await app.register(securityPlugin, { corsOrigins: [] })
    await expect(app.register(healthRoutes, { ready: async () => true })).rejects.toThrow(
      "The dependency 'authgate-docs' of plugin 'authgate-health-routes' is not registered",
    )
  })
})
