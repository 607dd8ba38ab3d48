import fp from 'fastify-plugin'
import type { FeatureOptions, ServerInstance } from '../feature.js'
import { metricsRoutes } from './metrics.js'

export { TenantLabels, type MetricsOptions } from './metrics.js'

/**
 * Operations: one log line per request (after tenant resolution, so it carries the tenant
 * id; no headers, no query string), Prometheus `/metrics` with per-tenant series, and
 * `/healthz`. Wrapped in `fastify-plugin`: its hooks must see every route of the app.
 */
export const observability = fp(
  async (app: ServerInstance, { tenantry, config }: FeatureOptions) => {
    app.addHook('onResponse', async (request, reply) => {
      request.log.info(
        {
          method: request.method,
          route: request.routeOptions.url ?? null,
          path: request.url.split('?')[0],
          status: reply.statusCode,
          ms: Math.round(reply.elapsedTime),
          tenantId: request.tenant?.id ?? null,
          principal: request.principal?.kind ?? null,
        },
        'request completed',
      )
    })
    metricsRoutes(app, { topTenants: config.metrics.topTenants })
    app.get('/healthz', { schema: { hide: true } }, async () => {
      await tenantry.catalog.countTenants(['ready'])
      return { status: 'ok' }
    })
  },
  { name: 'tenantry-observability', fastify: '5.x' },
)
