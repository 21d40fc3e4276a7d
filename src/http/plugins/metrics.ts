// METRICS_PORT: every response counted and timed (src/metrics.ts), and the scrape listener closed
// with the app.
import fp from 'fastify-plugin'
import type { Metrics } from '../../metrics.js'

export const metricsPlugin = fp<{ metrics: Metrics }>(
  async (app, { metrics }) => {
    metrics.instrument(app)
    app.addHook('onClose', () => metrics.close())
  },
  { name: 'authgate-metrics' },
)
