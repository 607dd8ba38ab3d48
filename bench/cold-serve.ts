// The serving half of the `cold` group, in a process of its own: it opens an already
// provisioned home and only serves, as an app server would, so its RSS is not inflated by the
// 10,000 creates that built the home.
import type { CvBuilderDatabase } from '../examples/cv-builder/schema.js'
import { openTenantry } from './fixtures.js'
import { collectGarbage, compareLatency, type LatencyResult } from './harness.js'

export interface ColdServeRequest {
  home: string
  ringPrefix: string
  hotPrefix: string
  budget: number
  fullRounds: number
  samplesPerRound: number
}

export interface RssSample {
  access: number
  rss: number
  heapUsed: number
  /** V8 heap pages committed: RSS keeps them after a GC until V8 gives them back. */
  heapTotal: number
  openHandles: number
}

export interface ColdServeResult {
  tenantCount: number
  hotCount: number
  rssAtStartup: number
  latency: LatencyResult
  samples: RssSample[]
  sampleEvery: number
  afterGc: Array<RssSample & { round: number }>
  gcAvailable: boolean
  routerStats: Record<string, number>
}

const rssAtStartup = process.memoryUsage().rss
const request = JSON.parse(process.argv[2] ?? fail('usage: cold-serve.ts <request json>')) as ColdServeRequest

const tenantry = await openTenantry(request.home, {
  router: { maxOpenHandles: request.budget, placementTtlMs: 3_600_000 },
})
try {
  const all = await tenantry.catalog.listTenants({ status: ['ready'] })
  const ring = all.filter((t) => t.slug.startsWith(request.ringPrefix))
  const hot = all.filter((t) => t.slug.startsWith(request.hotPrefix))
  const tenantCount = ring.length
  for (const tenant of ring) await tenantry.router.resolve(tenant.slug)

  // Two disjoint halves of the ring, one per cold variant, so invalidating one half's
  // placements never turns the other variant's accesses into placement misses.
  const halves = [ring.filter((_, i) => i % 2 === 0), ring.filter((_, i) => i % 2 === 1)] as const
  const pointers = [0, 0]
  const nextOf = (half: 0 | 1) => halves[half][pointers[half]!++ % halves[half].length]!
  const read = (slug: string) =>
    tenantry
      .withTenant(slug, () => tenantry.db<CvBuilderDatabase>().selectFrom('jobs').selectAll().where('id', '=', 1).executeTakeFirst())
      .then(() => {})

  const samples: RssSample[] = []
  const afterGc: Array<RssSample & { round: number }> = []
  const sampleEvery = Math.max(1, Math.floor(tenantCount / 25))
  let coldAccesses = 0
  let gcAvailable = false
  const reading = (): RssSample => {
    const memory = process.memoryUsage()
    return {
      access: coldAccesses,
      rss: memory.rss,
      heapUsed: memory.heapUsed,
      heapTotal: memory.heapTotal,
      openHandles: tenantry.router.stats().openHandles,
    }
  }
  const onColdAccess = () => {
    coldAccesses++
    if (coldAccesses % sampleEvery === 0) samples.push(reading())
    // At the end of each full round, a forced GC tells what is retained from what is merely uncollected.
    if (coldAccesses % tenantCount === 0 && (gcAvailable = collectGarbage())) {
      afterGc.push({ round: coldAccesses / tenantCount, ...reading() })
    }
  }
  samples.push(reading())

  let h = 0
  let missSlug = ''
  const before = tenantry.router.stats()
  const latency = await compareLatency({
    title: `withTenant + first point read, ${tenantCount} tenants round-robin through a ${request.budget}-handle budget`,
    baseline: 'warm: handle open',
    samplesPerRound: request.samplesPerRound,
    rounds: Math.ceil((request.fullRounds * tenantCount) / (2 * request.samplesPerRound)),
    warmupRounds: 0,
    afterSample: (variant) => {
      if (variant.startsWith('cold')) onColdAccess()
    },
    variants: [
      {
        name: 'warm: handle open',
        op: () => read(hot[h++ % hot.length]!.slug),
        note: `${hot.length} tenants used every round, never evicted`,
      },
      {
        name: 'cold: open handle, placement cached',
        op: () => read(nextOf(0).slug),
        note: 'handle miss: open the file, 3 pragmas, a Kysely instance; and one eviction; catalog not asked',
      },
      {
        name: 'cold: open handle + placement miss',
        before: () => {
          const next = nextOf(1)
          tenantry.router.invalidate(next.id)
          missSlug = next.slug
        },
        op: () => read(missSlug),
        note: 'as above plus one catalog lookup for the placement',
      },
    ],
  })
  samples.push(reading())
  const after = tenantry.router.stats()
  const result: ColdServeResult = {
    tenantCount,
    hotCount: hot.length,
    rssAtStartup,
    latency,
    samples,
    sampleEvery,
    afterGc,
    gcAvailable,
    routerStats: {
      opens: after.opens - before.opens,
      evictions: after.evictions - before.evictions,
      handleHits: after.handleHits - before.handleHits,
      placementMisses: after.placementMisses - before.placementMisses,
      placementHits: after.placementHits - before.placementHits,
      openHandlesAtEnd: after.openHandles,
      cachedPlacementsAtEnd: after.cachedPlacements,
    },
  }
  await new Promise<void>((resolve, reject) => process.send!(result, undefined, {}, (error) => (error ? reject(error) : resolve())))
} finally {
  await tenantry.close()
  process.disconnect()
}

function fail(message: string): never {
  throw new Error(message)
}
