import fp from 'fastify-plugin'
import type { FeatureOptions, ServerInstance } from '../feature.js'
import { isLevelEnabled } from './lazy-child.js'
import { metricsRoutes } from './metrics.js'

export { TenantLabels, type MetricsOptions } from './metrics.js'

/**
 * Operations: one log line per request (after tenant resolution, so it carries the tenant
 * id; no headers, no query string), Prometheus `/metrics` with per-tenant series (behind a
 * token), and
 * `/healthz`. Wrapped in `fastify-plugin`: its hooks must see every route of the app.
 */
export interface ObservabilityOptions extends FeatureOptions {
  /** The bearer token `/metrics` asks for; without one it is not served (see `MetricsOptions.token`). */
  metricsToken?: string
}

export const observability = fp(
  async (app: ServerInstance, { tenantry, config, metricsToken }: ObservabilityOptions) => {
    app.addHook('onResponse', (request, reply, done) => {
      // Usage metering: one request for the tenant it was admitted to, or for a token's tenant
      // (SQL-over-HTTP authenticates its token itself and admits no tenant scope).
      const principal = request.principal
      const meteredTenant = request.tenant?.id ?? (principal?.kind === 'token' ? principal.tenantId : undefined)
      if (meteredTenant) tenantry.usage.record(meteredTenant, { requests: 1 })
      // The line's fields are gathered only when it is written.
      if (isLevelEnabled(request.log, 'info')) {
        request.log.info(
          {
            method: request.method,
            route: request.routeOptions.url ?? null,
            path: request.url.split('?')[0],
            status: reply.statusCode,
            ms: Math.round(reply.elapsedTime),
            tenantId: request.tenant?.id ?? null,
            principal: principal?.kind ?? null,
          },
          'request completed',
        )
      }
      done()
    })
    // A client that went away mid-request (closed its socket, or was cut off by a timeout) is
    // routine under load and no server fault: one line, no stack trace, and no error reply.
    app.addHook('onRequestAbort', async (request) => {
      request.log.info(
        {
          method: request.method,
          route: request.routeOptions.url ?? null,
          path: request.url.split('?')[0],
          tenantId: request.tenant?.id ?? null,
        },
        'request aborted by the client',
      )
    })
    metricsRoutes(app, { topTenants: config.metrics.topTenants, usage: tenantry.usage, ...(metricsToken ? { token: metricsToken } : {}) })
    app.get('/healthz', { schema: { hide: true } }, async () => {
      await tenantry.catalog.countTenants(['ready'])
      return { status: 'ok' }
    })
  },
  { name: 'tenantry-observability', fastify: '5.x' },
)
