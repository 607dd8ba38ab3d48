import type {} from '@fastify/swagger'
import { createHash, timingSafeEqual } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import { HttpError } from '../errors.js'
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { UsageCounts, UsageMeter } from 'tenantry'

export interface MetricsOptions {
  /**
   * How many tenants get their own `tenant` label value. The rest share `other`, and
   * requests outside any tenant are `none`, so series stay bounded at
   * `(topTenants + 2) × routes × methods × statuses` whatever the number of tenants.
   * @default 20
   */
  topTenants?: number
  /**
   * The bearer token a scraper must present (`Authorization: Bearer <token>`); any other
   * request is `401 UNAUTHENTICATED`. Without a token `/metrics` is not served (404): it is
   * not public, since its series tell how busy each tenant is.
   */
  token?: string
  /** Usage metered per tenant (`tenantry.usage`): exported as `tenantry_tenant_*` series. */
  usage?: Pick<UsageMeter, 'totals' | 'storage'>
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

  constructor(max: number, private readonly onEvict: (id: string) => void = () => {}) {
    this.#max = max
  }

  /** Counts one request for tenant `id` and returns the label to use. */
  label(id: string | undefined): string {
    if (!id) return 'none'
    const count = (this.#counts.get(id) ?? 0) + 1
    this.#counts.set(id, count)
    if (this.#labelled.has(id)) return id
    if (this.#labelled.size < this.#max) {
      this.#labelled.add(id)
      return id
    }
    let least: string | undefined
    for (const s of this.#labelled) if (!least || this.#counts.get(s)! < this.#counts.get(least)!) least = s
    if (least && this.#counts.get(least)! < count) {
      this.#labelled.delete(least)
      this.onEvict(least)
      this.#labelled.add(id)
      return id
    }
    return 'other'
  }
}

/** The requests of one label set, as `tenantry_http_requests_total` and the latency histogram label them. */
interface RequestSeries {
  readonly counted: { method: string; route: string; status: string; tenant: string }
  readonly timed: { method: string; route: string; tenant: string }
  count: number
}

/** `/metrics` in Prometheus text format, with per-tenant request counts and latency histograms. */
export function metricsRoutes(app: FastifyInstance, options: MetricsOptions = {}): Registry {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry })
  // Per request: one map lookup, a count, and the latency observed with labels built once per
  // series. The request counter is written from these counts when scraped.
  const series = new Map<string, RequestSeries>()
  new Counter({
    name: 'tenantry_http_requests_total',
    help: 'HTTP requests by route template, method, status and tenant (top N tenants by id, others as "other", none as "none")',
    labelNames: ['method', 'route', 'status', 'tenant'] as const,
    registers: [registry],
    collect() {
      this.reset()
      for (const { counted, count } of series.values()) this.inc(counted, count)
    },
  })
  const latency = new Histogram({
    name: 'tenantry_http_request_duration_seconds',
    help: 'HTTP request latency by route template, method and tenant (same tenant labels as tenantry_http_requests_total)',
    labelNames: ['method', 'route', 'tenant'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  })
  const labels = new TenantLabels(options.topTenants ?? 20, (id) => {
    for (const [key, { counted, timed }] of series) {
      if (counted.tenant !== id) continue
      series.delete(key)
      latency.remove(timed)
    }
  })

  app.addHook('onResponse', (request, reply, done) => {
    // Ids, not slugs: a slug names the customer, an id names nothing, and never changes.
    const tenant = labels.label(request.tenant?.id)
    const { method } = request
    const status = reply.statusCode
    const route = request.routeOptions.url ?? 'unmatched'
    const key = `${tenant} ${method} ${status} ${route}`
    let known = series.get(key)
    if (!known) {
      known = { counted: { method, route, status: String(status), tenant }, timed: { method, route, tenant }, count: 0 }
      series.set(key, known)
    }
    known.count++
    latency.observe(known.timed, reply.elapsedTime / 1000)
    done()
  })

  if (options.usage) usageMetrics(registry, options.usage, options.topTenants ?? 20)

  if (options.token === undefined) return registry
  const expected = sha256(options.token)
  app.get('/metrics', { schema: { hide: true } }, async (request, reply) => {
    const presented = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(request.headers.authorization ?? '')?.[1]
    // Hashes of equal length, compared in constant time: the answer's timing tells nothing of the token.
    if (!presented || !timingSafeEqual(sha256(presented), expected)) throw new HttpError('UNAUTHENTICATED', 'Present the metrics token')
    return reply.type(registry.contentType).send(await registry.metrics())
  })
  return registry
}

const USAGE_COUNTERS: ReadonlyArray<[keyof UsageCounts, string, string]> = [
  ['requests', 'tenantry_tenant_requests_total', 'HTTP requests admitted to each tenant'],
  ['statements', 'tenantry_tenant_statements_total', 'SQL statements run on each tenant'],
  ['rowsRead', 'tenantry_tenant_rows_read_total', 'Rows read from each tenant'],
  ['rowsWritten', 'tenantry_tenant_rows_written_total', 'Rows written to each tenant'],
  ['execMs', 'tenantry_tenant_exec_milliseconds_total', 'Time spent running statements of each tenant, in milliseconds'],
]

/**
 * Per-tenant usage since this process started (the counts `tenantry tenant usage` reads from
 * the catalog, before flushing), computed at each scrape. Labelled by tenant id, never slug;
 * the `topTenants` busiest tenants (by statements + requests) get their own label, the rest add
 * up under `other`, so series stay bounded.
 */
function usageMetrics(registry: Registry, usage: Pick<UsageMeter, 'totals' | 'storage'>, top: number): void {
  const busiest = () => {
    const all = [...usage.totals()]
    all.sort(([, a], [, b]) => b.statements + b.requests - (a.statements + a.requests))
    return { labelled: all.slice(0, top), rest: all.slice(top) }
  }
  for (const [field, name, help] of USAGE_COUNTERS) {
    new Counter({
      name,
      help: `${help} (since this process started; top tenants by id, others as "other")`,
      labelNames: ['tenant'] as const,
      registers: [registry],
      collect() {
        this.reset()
        const { labelled, rest } = busiest()
        for (const [id, counts] of labelled) this.inc({ tenant: id }, counts[field])
        const other = rest.reduce((sum, [, counts]) => sum + counts[field], 0)
        if (rest.length) this.inc({ tenant: 'other' }, other)
      },
    })
  }
  new Gauge({
    name: 'tenantry_tenant_storage_bytes',
    help: 'Storage of each tenant as last measured (at a usage flush), for the same tenants as tenantry_tenant_requests_total',
    labelNames: ['tenant'] as const,
    registers: [registry],
    collect() {
      this.reset()
      const sizes = usage.storage()
      for (const [id] of busiest().labelled) {
        const bytes = sizes.get(id)
        if (bytes !== undefined) this.set({ tenant: id }, bytes)
      }
    },
  })
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest()
}
