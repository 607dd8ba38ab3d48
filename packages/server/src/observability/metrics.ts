import type {} from '@fastify/swagger'
import type { FastifyInstance } from 'fastify'
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client'

export interface MetricsOptions {
  /**
   * How many tenants get their own `tenant` label value. The rest share `other`, and
   * requests outside any tenant are `none`, so series stay bounded at
   * `(topTenants + 2) × routes × methods × statuses` whatever the number of tenants.
   * @default 20
   */
  topTenants?: number
}

/**
 * Keeps the `topTenants` most active tenants (by requests seen by this process). A tenant
 * that overtakes the least active labelled one takes its place; the displaced tenant's
 * series are removed and its later requests count under `other`.
 */
export class TenantLabels {
  readonly #max: number
  readonly #counts = new Map<string, number>()
  readonly #labelled = new Set<string>()

  constructor(max: number, private readonly onEvict: (slug: string) => void = () => {}) {
    this.#max = max
  }

  /** Counts one request for `slug` and returns the label to use. */
  label(slug: string | undefined): string {
    if (!slug) return 'none'
    const count = (this.#counts.get(slug) ?? 0) + 1
    this.#counts.set(slug, count)
    if (this.#labelled.has(slug)) return slug
    if (this.#labelled.size < this.#max) {
      this.#labelled.add(slug)
      return slug
    }
    let least: string | undefined
    for (const s of this.#labelled) if (!least || this.#counts.get(s)! < this.#counts.get(least)!) least = s
    if (least && this.#counts.get(least)! < count) {
      this.#labelled.delete(least)
      this.onEvict(least)
      this.#labelled.add(slug)
      return slug
    }
    return 'other'
  }
}

/** `/metrics` in Prometheus text format, with per-tenant request counts and latency histograms. */
export function metricsRoutes(app: FastifyInstance, options: MetricsOptions = {}): Registry {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry })
  const requests = new Counter({
    name: 'tenantry_http_requests_total',
    help: 'HTTP requests by route template, method, status and tenant (top N tenants by slug, others as "other", none as "none")',
    labelNames: ['method', 'route', 'status', 'tenant'] as const,
    registers: [registry],
  })
  const latency = new Histogram({
    name: 'tenantry_http_request_duration_seconds',
    help: 'HTTP request latency by route template, method and tenant (same tenant labels as tenantry_http_requests_total)',
    labelNames: ['method', 'route', 'tenant'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  })
  // prom-client removes series by their full label set only: remember each labelled tenant's series.
  const series = new Map<string, Map<string, { method: string; route: string; status: string }>>()
  const labels = new TenantLabels(options.topTenants ?? 20, (slug) => {
    for (const s of series.get(slug)?.values() ?? []) {
      requests.remove({ ...s, tenant: slug })
      latency.remove({ method: s.method, route: s.route, tenant: slug })
    }
    series.delete(slug)
  })

  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched'
    const tenant = labels.label(request.tenant?.slug)
    const key = { method: request.method, route, status: String(reply.statusCode) }
    if (tenant !== 'none' && tenant !== 'other') {
      const known = series.get(tenant) ?? new Map()
      known.set(`${key.method} ${key.route} ${key.status}`, key)
      series.set(tenant, known)
    }
    requests.inc({ ...key, tenant })
    latency.observe({ method: request.method, route, tenant }, reply.elapsedTime / 1000)
  })

  app.get('/metrics', { schema: { hide: true } }, async (_request, reply) => {
    return reply.type(registry.contentType).send(await registry.metrics())
  })
  return registry
}
