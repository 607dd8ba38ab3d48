// The measuring half of the `scale` group, in a process of its own: it opens a home that already
// holds N tenants and only serves, so its RSS is what a server with N tenants carries, not what
// creating them left behind.
import type { TenantryConfig } from 'tenantry'
import type { CvBuilderDatabase } from '../examples/cv-builder/schema.js'
import { openTenantry, slugFor } from './fixtures.js'
import { collectGarbage, compareLatency, type LatencyResult, type LatencyRow } from './harness.js'

export interface ScaleServeRequest {
  home: string
  /** Everything but `home`, as JSON: the SQLite default or a Postgres data source. */
  config: Omit<TenantryConfig, 'home'>
  prefix: string
  tenantCount: number
  /** The first `hotCount` tenants: seeded with jobs, read in every round. */
  hotCount: number
  /** A job id every hot tenant has. */
  hotJobId: number
  samplesPerRound: number
  rounds: number
}

export interface ScaleServeResult {
  latency: LatencyResult
  /** The same `hotCount` tenants at every size, handles open. */
  hot: LatencyRow
  /** A walk over every tenant through the handle budget. */
  spread: LatencyRow
  rssAtStartup: number
  /** After the measured rounds and a forced GC (raw when the engine allows none). */
  rss: number
  heapUsed: number
  gcAvailable: boolean
  routerStats: Record<string, number>
}

// Not exported: the parent imports this module's types only (importing it would run it).
const HOT_VARIANT = 'hot tenants, handles open'
const SPREAD_VARIANT = 'random tenant of all'

const rssAtStartup = process.memoryUsage().rss
const request = JSON.parse(process.argv[2] ?? fail('usage: scale-serve.ts <request json>')) as ScaleServeRequest

const tenantry = await openTenantry(request.home, request.config)
try {
  const hot = Array.from({ length: request.hotCount }, (_, i) => slugFor(request.prefix, i))
  // A fixed pseudo-random walk over every tenant, the same at every size for the first tenants.
  const spread = (k: number) => slugFor(request.prefix, (Math.imul(k + 1, 2654435761) >>> 0) % request.tenantCount)
  const read = async (slug: string, id: number) =>
    tenantry.withTenant(slug, () => tenantry.db<CvBuilderDatabase>().selectFrom('jobs').selectAll().where('id', '=', id).executeTakeFirst())
  let h = 0
  let s = 0
  // Hot first, then the walk, not interleaved: the walk's cold opens would evict the hot
  // tenants' handles (Postgres runs with a small budget), and the hot reads would be cold too.
  const hotResult = await compareLatency({
    title: `withTenant + point read, ${request.hotCount} hot tenants of ${request.tenantCount}`,
    baseline: HOT_VARIANT,
    samplesPerRound: request.samplesPerRound,
    rounds: request.rounds,
    warmupRounds: 1,
    variants: [
      {
        name: HOT_VARIANT,
        op: async () => {
          if (!(await read(hot[h++ % hot.length]!, request.hotJobId))) throw new Error('hot tenant: row missing')
        },
        note: `the same ${request.hotCount} tenants at every size: what the tenant count costs a request that is not cold`,
      },
    ],
  })
  const spreadResult = await compareLatency({
    title: `withTenant + point read, random tenant of ${request.tenantCount}`,
    baseline: SPREAD_VARIANT,
    samplesPerRound: request.samplesPerRound,
    rounds: request.rounds,
    warmupRounds: 0,
    variants: [
      {
        name: SPREAD_VARIANT,
        op: async () => {
          await read(spread(s++), 1)
        },
        note: 'a fixed pseudo-random walk over every tenant through the handle budget: cold opens once N exceeds it',
      },
    ],
  })
  const latency: LatencyResult = {
    kind: 'latency',
    title: `withTenant + point read with ${request.tenantCount} tenants`,
    baseline: HOT_VARIANT,
    rows: [...hotResult.rows, ...spreadResult.rows],
  }
  for (const row of latency.rows) row.p50VsBaseline = row.p50Ms / hotResult.rows[0]!.p50Ms
  const gcAvailable = collectGarbage()
  const memory = process.memoryUsage()
  const stats = tenantry.router.stats()
  const result: ScaleServeResult = {
    latency,
    hot: latency.rows.find((r) => r.name === HOT_VARIANT)!,
    spread: latency.rows.find((r) => r.name === SPREAD_VARIANT)!,
    rssAtStartup,
    rss: memory.rss,
    heapUsed: memory.heapUsed,
    gcAvailable,
    routerStats: { ...stats },
  }
  await new Promise<void>((resolve, reject) => process.send!(result, undefined, {}, (error) => (error ? reject(error) : resolve())))
} finally {
  await tenantry.close()
  process.disconnect()
}

function fail(message: string): never {
  throw new Error(message)
}
