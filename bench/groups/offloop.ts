// `npm run bench -- --only offloop`: what running the data API's queries off the event loop
// (tenantry.bounded: SQLite executor processes) costs over HTTP, against the in-process
// tenantry.db(), for a point read by primary key and a list page, in one run.
import { z } from 'zod'
import { createTenantry, type Tenantry } from 'tenantry'
import { inTenant, startServer, type RunningServer, type TenantFeature } from '@tenantry/server'
import { compareThroughput, fmt, type BenchContext, type ThroughputVariant } from '../harness.js'
import type { LoadRequest } from '../http-load-child.js'
import { expectAnswer, startLoadClient, type LoadClient } from '../load-client.js'
import { benchServerSetup, seedJobs } from '../server-fixture.js'

const CONNECTIONS = 8
const PAGE = 50

/** The same two queries, in-process (`tenantry.db()`) or off-loop (`tenantry.bounded`), under the real tenant admission. */
function offloopRoutes(tenantry: Tenantry): TenantFeature {
  return async (app) => {
    const params = z.object({ mode: z.enum(['in-process', 'off-loop']), id: z.coerce.number().int() })
    const run = <T>(mode: 'in-process' | 'off-loop', query: (db: any) => Promise<T>) =>
      mode === 'in-process' ? query(tenantry.db()) : tenantry.bounded(query, { readOnly: true })
    app.get('/offloop-bench/:mode/jobs/:id', { schema: { params } }, async (request) => {
      const { mode, id } = request.params
      return inTenant(tenantry, request, () => run(mode, (db) => db.selectFrom('jobs').selectAll().where('id', '=', id).executeTakeFirst()))
    })
    app.get('/offloop-bench/:mode/jobs', { schema: { params: params.pick({ mode: true }) } }, async (request) => {
      const { mode } = request.params
      const items = await inTenant(tenantry, request, () => run(mode, (db) => db.selectFrom('jobs').selectAll().orderBy('id').limit(PAGE).execute()))
      return { items }
    })
  }
}

export async function offloopGroup(ctx: BenchContext): Promise<void> {
  // Small: the group stays under a minute on a quiet two-core machine.
  const opsPerRound = ctx.size(500, 200)
  const rounds = ctx.size(3, 2)
  const { config, env } = await benchServerSetup(ctx)
  const tenantry: Tenantry = await createTenantry(config)
  let server: RunningServer | undefined
  let load: LoadClient | undefined
  try {
    await tenantry.createTenant({ slug: 'bench' })
    const id = await seedJobs(tenantry, 'bench', 1000, () => 'x'.repeat(200))
    const { token } = await tenantry.tokens.create('bench', { readOnly: true, name: 'bench' })
    server = await startServer({
      tenantry,
      port: 0,
      host: '127.0.0.1',
      handleSignals: false,
      app: { logger: { level: 'warn' }, env, tenantFeatures: [offloopRoutes(tenantry)] },
    })
    load = await startLoadClient()
    const loader = load
    const auth = { authorization: `Bearer ${token}` }
    const base = `${server.url}/api/t/bench`
    const targets: Array<{ name: string; url: string; note: string }> = [
      { name: 'point read, in-process', url: `${base}/offloop-bench/in-process/jobs/${id}`, note: 'tenantry.db(): better-sqlite3 on the event loop' },
      { name: 'point read, off-loop', url: `${base}/offloop-bench/off-loop/jobs/${id}`, note: 'tenantry.bounded: one executor round trip' },
      { name: `list ${PAGE}, in-process`, url: `${base}/offloop-bench/in-process/jobs`, note: 'tenantry.db()' },
      { name: `list ${PAGE}, off-loop`, url: `${base}/offloop-bench/off-loop/jobs`, note: 'tenantry.bounded' },
      { name: 'data API GET /data/jobs/:id', url: `${base}/data/jobs/${id}`, note: 'as shipped: in-process' },
      { name: `data API GET /data/jobs?limit=${PAGE}`, url: `${base}/data/jobs?limit=${PAGE}&order=id`, note: 'as shipped: off-loop' },
    ]
    for (const target of targets) await expectAnswer(target.name, target.url, { headers: auth }, 'Company')
    const variants: ThroughputVariant[] = targets.map((target) => ({
      name: target.name,
      note: target.note,
      async run(requests) {
        const request: LoadRequest = { url: target.url, method: 'GET', headers: auth, requests, connections: CONNECTIONS }
        return (await loader.run(request)).ms
      },
    }))
    const result = await compareThroughput({
      title: `Off-loop (executor) vs in-process data API reads over HTTP, ${CONNECTIONS} keep-alive connections, load from a separate process`,
      baseline: targets[0]!.name,
      unit: 'requests',
      opsPerRound,
      rounds,
      warmupRounds: 1,
      variants,
    })
    ctx.table(result)
    const rate = (name: string) => result.rows.find((r) => r.name === name)!.medianOpsPerSec
    const pointRatio = rate(targets[1]!.name) / rate(targets[0]!.name)
    const listRatio = rate(targets[3]!.name) / rate(targets[2]!.name)
    ctx.metric('pointReadOffLoopRatio', pointRatio)
    ctx.metric('listReadOffLoopRatio', listRatio)
    ctx.log(`point read: off-loop at ${pointRatio.toFixed(2)}× the in-process rate (${fmt(rate(targets[1]!.name))} vs ${fmt(rate(targets[0]!.name))} requests/s)`)
    ctx.log(`list of ${PAGE}: off-loop at ${listRatio.toFixed(2)}× the in-process rate (${fmt(rate(targets[3]!.name))} vs ${fmt(rate(targets[2]!.name))} requests/s)`)
    ctx.note('the off-loop rows pay an IPC round trip per query; in exchange no query holds the event loop or runs past its deadline')
  } finally {
    await load?.close()
    await server?.close()
    await tenantry.close()
  }
}
