import { fork } from 'node:child_process'
import { once } from 'node:events'
import { join } from 'node:path'
import type { ColdServeRequest, ColdServeResult, RssSample } from '../cold-serve.js'
import { openTenantry, provisionTenants } from '../fixtures.js'
import { fmt, mib, repoRoot, type BenchContext } from '../harness.js'

const BUDGET = 256
const heap = (s: RssSample) => `${(s.heapUsed / 2 ** 20).toFixed(1)} / ${mib(s.heapTotal)}`
const HOT = 10
const FULL_ROUNDS = 3

export async function coldGroup(ctx: BenchContext): Promise<void> {
  const tenantCount = ctx.size(10_000)
  const home = await ctx.workDir('home')

  const tenantry = await openTenantry(home)
  try {
    ctx.log(`provisioning ${tenantCount} + ${HOT} tenants from the template (setup)…`)
    const ring = await provisionTenants(tenantry, tenantCount, { progress: (done) => ctx.log(`${done} tenants`) })
    await provisionTenants(tenantry, HOT, { prefix: 'hot' })
    ctx.log(`setup: ${fmt(ring.tenantsPerSec)} tenants/s`)
  } finally {
    await tenantry.close()
  }

  ctx.log('serving them from a fresh process (only serving, as an app server would)…')
  const request: ColdServeRequest = { home, ringPrefix: 't', hotPrefix: 'hot', budget: BUDGET, fullRounds: FULL_ROUNDS, samplesPerRound: 100 }
  const child = fork(join(repoRoot, 'bench/cold-serve.ts'), [JSON.stringify(request)], { cwd: repoRoot, execArgv: ['--import', 'tsx'] })
  const results: ColdServeResult[] = []
  child.on('message', (message: ColdServeResult) => results.push(message))
  const [code] = (await once(child, 'exit')) as [number | null]
  const served = results[0]
  if (code !== 0 || !served) throw new Error(`cold-serve exited with ${String(code)} and ${served ? 'a' : 'no'} result`)

  ctx.table(served.latency)
  const { samples, afterGc } = served
  const atRound = (k: number) => samples.filter((s) => s.access <= k * served.tenantCount).at(-1)!
  const gcAt = (k: number) => afterGc.find((s) => s.round === k)
  const start = samples[0]!
  const peak = samples.reduce((a, b) => (b.rss > a.rss ? b : a))
  const end = samples.at(-1)!
  const rows: Array<[string, RssSample, RssSample | undefined]> = [
    ['start (tenantry open, placements cached)', start, undefined],
    ...Array.from({ length: FULL_ROUNDS }, (_, i): [string, RssSample, RssSample | undefined] => [`end of round ${i + 1}`, atRound(i + 1), gcAt(i + 1)]),
    ['peak', peak, undefined],
    ['end', end, undefined],
  ]
  ctx.table({
    kind: 'table',
    title: `RSS of the serving process, ${served.tenantCount} tenants round-robin, ${FULL_ROUNDS} full rounds (sampled every ${served.sampleEvery} cold accesses; ${mib(served.rssAtStartup)} right after startup)`,
    headers: ['point', 'cold accesses', 'open handles', 'rss', 'heap used / total', 'after forced GC: rss', 'heap used / total', 'rss − heap total'],
    rows: rows.map(([label, s, gc]) => [
      label,
      s.access,
      s.openHandles,
      mib(s.rss),
      heap(s),
      gc ? mib(gc.rss) : '',
      gc ? heap(gc) : '',
      gc ? mib(gc.rss - gc.heapTotal) : '',
    ]),
  })
  ctx.metric('rssAtStartup', served.rssAtStartup)
  ctx.metric('rssSamples', samples)
  ctx.metric('rssAfterForcedGc', afterGc)
  ctx.metric('routerStats', served.routerStats)
  ctx.table({
    kind: 'table',
    title: 'Router stats over the measured run',
    headers: Object.keys(served.routerStats),
    rows: [Object.values(served.routerStats)],
  })

  const row = (name: string) => served.latency.rows.find((r) => r.name === name)!
  for (const [name, label] of [
    ['cold: open handle, placement cached', 'placement cached'],
    ['cold: open handle + placement miss', 'placement miss too'],
  ] as const) {
    const r = row(name)
    ctx.goal({
      name: `cold open + first query p50 (${label})`,
      target: '≤ 2 ms',
      measured: `p50 ${fmt(r.p50Ms)} ms, p95 ${fmt(r.p95Ms)} ms, p99 ${fmt(r.p99Ms)} ms`,
      met: r.p50Ms <= 2,
    })
  }
  // Flat means nothing is retained per tenant served: judged on the forced-GC readings when
  // there are any, since raw RSS also carries whatever garbage the last GC had not reached.
  const first = gcAt(1) ?? atRound(1)
  const last = gcAt(FULL_ROUNDS) ?? atRound(FULL_ROUNDS)
  const growth = (last.rss - first.rss) / first.rss
  if (gcAt(1) && gcAt(FULL_ROUNDS)) {
    ctx.note(
      `after forced GC, round 1 → ${FULL_ROUNDS}: JS heap used ${mib(first.heapUsed)} → ${mib(last.heapUsed)}, ` +
        `V8 heap committed ${mib(first.heapTotal)} → ${mib(last.heapTotal)}, ` +
        `everything else (rss − heap total: SQLite, native, code) ${mib(first.rss - first.heapTotal)} → ${mib(last.rss - last.heapTotal)}`,
    )
  }
  ctx.goal({
    name: `RSS flat and < 300 MiB, ${served.tenantCount} tenants through ${BUDGET} handles`,
    target: 'round 1 → 3 growth ≤ 5 %, peak < 300 MiB',
    measured:
      `end of round 1 → ${FULL_ROUNDS} (${gcAt(1) ? 'after forced GC' : 'raw'}): ${mib(first.rss)} → ${mib(last.rss)} ` +
      `(${(growth * 100).toFixed(1)} %); raw peak ${mib(peak.rss)}`,
    met: growth <= 0.05 && peak.rss < 300 * 1024 * 1024,
  })
}
