// `npm run bench -- --only jobs`: issue 12's fairness promise for `tenantry.jobs` in numbers.
// Tenant B enqueues single jobs, one after the other, first alone, then while tenant A has
// 100,000 jobs queued (10,000 with --quick); each is timed from enqueue to its handler starting,
// and we count how many of A's jobs ran in between. One worker (this process), round-robin over
// the tenants' queues: B's job should wait behind about one of A's, whatever A's backlog.
import { Redis } from 'ioredis'
import { createTenantry, type Tenantry } from 'tenantry'
import { findRedis } from 'tenantry/testing'
import { z } from 'zod'
import { fmt, summarizeLatency, type BenchContext } from '../harness.js'

export async function jobsGroup(ctx: BenchContext): Promise<void> {
  const found = await findRedis()
  if ('skip' in found) throw new Error(`the jobs group needs Redis: ${found.skip}`)
  const prefix = `tenantry-bench-jobs-${process.pid}`
  const home = await ctx.workDir('jobs')
  const tenantry: Tenantry = await createTenantry({ home, services: { jobs: { url: found.url, prefix } } })
  const raw = new Redis(found.url)
  const backlog = ctx.size(100_000, 10_000)
  const samples = ctx.size(30, 10)
  try {
    await tenantry.createTenant({ slug: 'tenant_a' })
    await tenantry.createTenant({ slug: 'tenant_b' })
    let aRan = 0
    let bStarted: (() => void) | undefined
    tenantry.jobs.define('a-work', { schema: z.object({ n: z.number() }), handler: async () => void aRan++ })
    tenantry.jobs.define('b-work', { schema: z.object({}), handler: async () => bStarted?.() })

    /** B's single jobs, one at a time: milliseconds from enqueue to handler, and A's jobs run meanwhile. */
    const measureB = async (): Promise<{ ms: number[]; aBetween: number[] }> => {
      const ms: number[] = []
      const aBetween: number[] = []
      // One more than measured: the first takes the worker's connection setup.
      for (let i = 0; i <= samples; i++) {
        const aBefore = aRan
        const started = performance.now()
        const ran = new Promise<void>((resolve) => (bStarted = resolve))
        await tenantry.withTenant('tenant_b', () => tenantry.jobs.enqueue('b-work', {}))
        await ran
        if (i === 0) continue
        ms.push(performance.now() - started)
        aBetween.push(aRan - aBefore)
      }
      return { ms, aBetween }
    }

    tenantry.jobs.start({ idleMs: 5 })
    const alone = await measureB()
    await tenantry.jobs.stop()

    const enqueueStarted = performance.now()
    await tenantry.withTenant('tenant_a', async () => {
      for (let start = 0; start < backlog; start += 500) {
        await Promise.all(Array.from({ length: Math.min(500, backlog - start) }, (_, i) => tenantry.jobs.enqueue('a-work', { n: start + i })))
      }
    })
    const enqueueSec = (performance.now() - enqueueStarted) / 1000
    ctx.metric('aEnqueuePerSec', backlog / enqueueSec)
    ctx.note(`A's ${backlog.toLocaleString('en')} jobs enqueued in ${enqueueSec.toFixed(1)} s (${Math.round(backlog / enqueueSec).toLocaleString('en')}/s)`)

    tenantry.jobs.start({ idleMs: 5 })
    const behind = await measureB()
    await tenantry.jobs.stop()
    const aLeft = await tenantry.withTenant('tenant_a', () => tenantry.jobs.counts())

    const aloneRow = summarizeLatency('B alone', alone.ms)
    const behindRow = summarizeLatency(`B with A's ${backlog.toLocaleString('en')} queued`, behind.ms, `A's jobs run between B's enqueue and start: max ${Math.max(...behind.aBetween)}`)
    behindRow.p50VsBaseline = behindRow.p50Ms / aloneRow.p50Ms
    ctx.table({ kind: 'latency', title: `tenant B's single job, enqueue → handler, ${samples} samples each`, baseline: 'B alone', rows: [aloneRow, behindRow] })
    const maxBetween = Math.max(...behind.aBetween)
    ctx.metric('aJobsBetweenMax', maxBetween)
    ctx.metric('aWaitingAfter', aLeft.waiting)
    ctx.goal({
      name: `B's job behind A's ${backlog.toLocaleString('en')} queued jobs`,
      target: 'waits behind at most a few of A’s jobs (≤ 3)',
      measured: `at most ${maxBetween} of A's jobs ran first; p50 ${fmt(behindRow.p50Ms)} ms vs ${fmt(aloneRow.p50Ms)} ms alone`,
      met: maxBetween <= 3,
    })
  } finally {
    await tenantry.jobs.stop()
    // Purging removes each tenant's queue (the code under test); then whatever is left of the run.
    for (const slug of ['tenant_a', 'tenant_b']) await tenantry.deleteTenant(slug, { purge: true }).catch(() => undefined)
    const left = await raw.keys(`${prefix}*`)
    if (left.length) await raw.unlink(...left)
    raw.disconnect()
    await tenantry.close()
  }
}
