// The scale curve (#14): does a request cost more, and does a server hold more memory, when the
// node has 10, 1,000, 10,000 (or, with --scale-max 100000, 100,000) SQLite tenants, or 10 vs
// 10,000 Postgres schemas? One home grows through the sizes (creates from the template, as the
// provisioning group measures); at each size a fresh process opens it and only serves.
import { fork } from 'node:child_process'
import { once } from 'node:events'
import { join } from 'node:path'
import type { Tenantry, TenantryConfig } from 'tenantry'
import { findPostgres } from 'tenantry/testing'
import { openTenantry, provisionTenants, slugFor } from '../fixtures.js'
import { fmt, mib, repoRoot, type BenchContext } from '../harness.js'
import { openPgScratch } from '../pg-scratch.js'
import type { ScaleServeRequest, ScaleServeResult } from '../scale-serve.js'
import { seedJobs } from '../server-fixture.js'

/** The SQLite sizes; 100,000 only when asked (`--scale-max 100000`): minutes of creates and ~GBs of files. */
const SQLITE_SIZES = [10, 1000, 10_000, 100_000]
const DEFAULT_SQLITE_MAX = 10_000
const HOT = 10
const PREFIX = 's'
/** Postgres: each open schema tenant holds connections as its own role, and max_connections is shared. */
const PG_HANDLE_BUDGET = 24
/** How much a request or the server's memory may grow from the smallest size to the largest. */
const FLAT = 1.2

/** One size of the curve, as results.json keeps it (metrics.scaleRows) and the chart draws it. */
export interface ScaleRow {
  engine: 'sqlite' | 'postgres schema'
  tenants: number
  hotP50Ms: number
  hotP99Ms: number
  spreadP50Ms: number
  spreadP99Ms: number
  /** The serving process's RSS after the measured rounds (and a forced GC when available). */
  rssMiB: number
  rssAtStartupMiB: number
  /** Handles open at the end: the RSS follows them (each SQLite handle keeps its page cache). */
  openHandles: number
  /** Seconds spent creating the tenants added for this size. */
  setupSec: number
}

export async function scaleGroup(ctx: BenchContext): Promise<void> {
  const sqliteMax = ctx.options.scaleMax ?? DEFAULT_SQLITE_MAX
  const sqliteSizes = SQLITE_SIZES.filter((n) => n <= sqliteMax)
  const pgSizes = [10, ctx.size(10_000, 1000)]
  const rows: ScaleRow[] = []
  ctx.metric('scaleRows', rows)

  const home = await ctx.workDir('sqlite')
  const sqlite = await grow(ctx, 'sqlite', home, {}, sqliteSizes, (config) => openTenantry(home, config))
  rows.push(...sqlite)

  const found = await findPostgres()
  if ('skip' in found) ctx.note(`Postgres part skipped: ${found.skip}`)
  else {
    const pgHome = await ctx.workDir('pg')
    const scratch = await openPgScratch(found.url, pgHome, `bench_s_${process.pid}`, ['schema'], {
      router: { maxOpenHandles: PG_HANDLE_BUDGET },
    })
    try {
      const opened = scratch.tenantry
      const pg = await grow(ctx, 'postgres schema', pgHome, scratch.config, pgSizes, async () => opened)
      rows.push(...pg)
    } finally {
      await scratch.drop()
    }
  }

  ctx.table({
    kind: 'table',
    title: `Scale curve: withTenant + point read and the serving process's RSS by tenant count (${HOT} hot tenants read in every round)`,
    headers: ['engine', 'tenants', 'hot p50 ms', 'hot p99 ms', 'random-of-all p50 ms', 'random-of-all p99 ms', 'RSS', 'handles open', 'RSS at startup', 'setup s'],
    rows: rows.map((r) => [r.engine, r.tenants, fmt(r.hotP50Ms), fmt(r.hotP99Ms), fmt(r.spreadP50Ms), fmt(r.spreadP99Ms), `${r.rssMiB.toFixed(1)} MiB`, r.openHandles, `${r.rssAtStartupMiB.toFixed(1)} MiB`, fmt(r.setupSec)]),
  })
  for (const engine of ['sqlite', 'postgres schema'] as const) {
    const curve = rows.filter((r) => r.engine === engine)
    if (curve.length < 2) continue
    const first = curve[0]!
    const last = curve.at(-1)!
    const latency = last.hotP50Ms / first.hotP50Ms
    ctx.goal({
      name: `${engine}: hot p50 with ${last.tenants} tenants vs ${first.tenants}`,
      target: `flat within ${FLAT}×`,
      measured: `${latency.toFixed(2)}× (${fmt(last.hotP50Ms)} vs ${fmt(first.hotP50Ms)} ms; p99 ${fmt(last.hotP99Ms)} vs ${fmt(first.hotP99Ms)} ms)`,
      met: latency <= FLAT,
    })
    if (engine === 'sqlite') {
      const rss = last.rssMiB / first.rssMiB
      ctx.goal({
        name: `${engine}: serving RSS with ${last.tenants} tenants vs ${first.tenants}`,
        target: `flat within ${FLAT}×`,
        measured: `${rss.toFixed(2)}× (${last.rssMiB.toFixed(1)} vs ${first.rssMiB.toFixed(1)} MiB, with ${last.openHandles} vs ${first.openHandles} handles open)`,
        met: rss <= FLAT,
      })
    }
  }
  ctx.note(
    `"hot" is the same ${HOT} tenants at every size, handles open: what the tenant count alone costs a request. ` +
      '"random of all" walks every tenant through the handle budget: once the count exceeds it, most reads are cold opens (the cold group measures those).',
  )
  if (!sqliteSizes.includes(100_000)) ctx.note('100,000 SQLite tenants are measured with `npm run bench -- --only scale --scale-max 100000` (minutes of creates, ~GBs of tenant files)')
}

/**
 * Creates tenants up to each size in turn (the first `HOT` seeded with jobs) and measures each
 * size in a fresh process.
 */
async function grow(
  ctx: BenchContext,
  engine: ScaleRow['engine'],
  home: string,
  config: Omit<TenantryConfig, 'home'>,
  sizes: number[],
  open: (config: Omit<TenantryConfig, 'home'>) => Promise<Tenantry>,
): Promise<ScaleRow[]> {
  const rows: ScaleRow[] = []
  const tenantry = await open(config)
  let created = 0
  let hotJobId = 0
  try {
    for (const size of sizes) {
      ctx.log(`${engine}: creating tenants ${created} → ${size}…`)
      const started = performance.now()
      const progress = (done: number) => ctx.log(`${engine}: ${created + done} tenants`)
      await provisionTenants(tenantry, size - created, { prefix: PREFIX, offset: created, ...(size - created >= 5000 ? { progress } : {}) })
      if (created === 0) {
        for (let i = 0; i < HOT; i++) hotJobId = await seedJobs(tenantry, slugFor(PREFIX, i), 100, () => 'x'.repeat(60))
      }
      const setupSec = (performance.now() - started) / 1000
      created = size
      const served = await serve({
        home,
        config,
        prefix: PREFIX,
        tenantCount: size,
        hotCount: HOT,
        hotJobId,
        samplesPerRound: ctx.size(500, 200),
        rounds: ctx.size(6, 3),
      })
      const { hot, spread } = served
      const row: ScaleRow = {
        engine,
        tenants: size,
        hotP50Ms: hot.p50Ms,
        hotP99Ms: hot.p99Ms,
        spreadP50Ms: spread.p50Ms,
        spreadP99Ms: spread.p99Ms,
        rssMiB: served.rss / 2 ** 20,
        rssAtStartupMiB: served.rssAtStartup / 2 ** 20,
        openHandles: served.routerStats.openHandles ?? 0,
        setupSec,
      }
      rows.push(row)
      ctx.log(
        `${engine}, ${size} tenants (setup ${fmt(setupSec)} s): hot p50 ${fmt(hot.p50Ms)} ms p99 ${fmt(hot.p99Ms)} ms; ` +
          `random of all p50 ${fmt(spread.p50Ms)} ms p99 ${fmt(spread.p99Ms)} ms; RSS ${mib(served.rss)}${served.gcAvailable ? ' after forced GC' : ''}; ` +
          `router ${JSON.stringify(served.routerStats)}`,
      )
    }
  } finally {
    await tenantry.close()
  }
  return rows
}

async function serve(request: ScaleServeRequest): Promise<ScaleServeResult> {
  const child = fork(join(repoRoot, 'bench/scale-serve.ts'), [JSON.stringify(request)], { cwd: repoRoot, execArgv: ['--import', 'tsx'] })
  const results: ScaleServeResult[] = []
  child.on('message', (message: ScaleServeResult) => results.push(message))
  const [code] = (await once(child, 'exit')) as [number | null]
  const served = results[0]
  if (code !== 0 || !served) throw new Error(`scale-serve exited with ${String(code)} and ${served ? 'a' : 'no'} result`)
  return served
}
