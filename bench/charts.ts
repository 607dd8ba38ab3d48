// Charts drawn from a run's results.json, never by hand (#16): the scale curve, a quiet tenant's
// latency over time while a neighbour attacks, and each hot path against its physical limit.
// Vega-Lite specs rendered by Vega to SVG in Node (renderer 'none': no canvas, text widths
// estimated), so the same results always give the same bytes: no timestamps, no random ids,
// no clip paths (their ids come from a process-wide counter). bench/charts.test.ts holds the
// committed charts in docs/benchmarks/ to that.
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import * as vega from 'vega'
import { compile, type TopLevelSpec } from 'vega-lite'
import type { GroupReport, ThroughputResult } from './harness.js'
import type { NoisyTimeline } from './groups/noisy.js'
import type { ScaleRow } from './groups/scale.js'

/** The parts of .bench/results.json the charts read. */
export interface BenchResults {
  startedAt: string
  quick: boolean
  revision: { commit?: string; changedFiles?: number }
  groups: Array<GroupReport & { error?: string }>
}

export interface Chart {
  /** File name, e.g. `scale.svg`. */
  file: string
  /** What the chart shows, in a sentence: the image's alt text in BENCHMARKS.md. */
  alt: string
  spec: TopLevelSpec
}

const WIDTH = 560
const FONT = 'Helvetica, Arial, sans-serif'
const config = {
  font: FONT,
  view: { stroke: '#ccc' },
  axis: { labelFontSize: 11, titleFontSize: 11, gridColor: '#eee' },
  legend: { labelFontSize: 11, titleFontSize: 11, orient: 'bottom' as const },
  title: { fontSize: 14, subtitleFontSize: 11, subtitleColor: '#555', anchor: 'start' as const },
}

/** Which run a chart comes from, under its title. */
function provenance(results: BenchResults): string {
  const commit = results.revision.commit ?? 'unknown revision'
  const changed = results.revision.changedFiles ? ` + ${results.revision.changedFiles} uncommitted changes` : ''
  return `${results.quick ? '--quick run' : 'full run'} of ${results.startedAt.slice(0, 10)}, revision ${commit}${changed}`
}

function group(results: BenchResults, name: string): GroupReport | undefined {
  return results.groups.find((g) => g.name === name && !g.error)
}

// --- the scale curve ---------------------------------------------------------------

function scaleChart(results: BenchResults): Chart | undefined {
  const rows = group(results, 'scale')?.metrics.scaleRows as ScaleRow[] | undefined
  if (!rows?.length) return undefined
  const round = (n: number) => Math.round(n * 1000) / 1000
  const values = rows.map((r) => ({ engine: r.engine, tenants: r.tenants, p50: round(r.hotP50Ms), p99: round(r.hotP99Ms), rss: Math.round(r.rssMiB * 10) / 10 }))
  // The goal: flat within 1.2× of the smallest size's p50, per engine.
  const goals = [...new Set(rows.map((r) => r.engine))].map((engine) => ({ engine, p50: round(rows.find((r) => r.engine === engine)!.hotP50Ms * 1.2) }))
  const x = {
    field: 'tenants',
    type: 'quantitative' as const,
    scale: { type: 'log' as const },
    title: 'tenants (log scale)',
    axis: { values: [...new Set(rows.map((r) => r.tenants))], format: ',d', labelOverlap: true },
  }
  const color = { field: 'engine', type: 'nominal' as const, title: null, legend: { labelLimit: 300 } }
  const panel = (field: 'p50' | 'p99' | 'rss', title: string, unit: string) => ({
    width: 160,
    height: 180,
    title: { text: title, fontSize: 12 },
    layer: [
      {
        data: { values },
        mark: { type: 'line' as const, point: true },
        encoding: { x, y: { field, type: 'quantitative' as const, title: unit, scale: { zero: true } }, color },
      },
      ...(field === 'p50'
        ? [
            {
              data: { values: goals },
              mark: { type: 'rule' as const, strokeDash: [4, 3] },
              encoding: { y: { field: 'p50', type: 'quantitative' as const }, color },
            },
          ]
        : []),
    ],
  })
  return {
    file: 'scale.svg',
    alt: 'Scale curve: p50 and p99 of a routed point read on the same hot tenants, and the serving process RSS, against the tenant count',
    spec: {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      title: {
        text: "Scale curve: a hot tenant's point read and the server's RSS by tenant count",
        subtitle: [`the same 10 hot tenants read at every size; dashed: the goal, 1.2× the smallest size's p50.`, provenance(results)],
      },
      description: 'p50 and p99 latency of withTenant + point read on 10 hot tenants, and RSS of the serving process, against the number of tenants',
      config,
      hconcat: [panel('p50', 'p50 (ms)', 'ms'), panel('p99', 'p99 (ms)', 'ms'), panel('rss', 'serving process RSS', 'MiB')],
    },
  }
}

// --- a neighbour's latency over time ---------------------------------------------------

function noisyChart(results: BenchResults): Chart | undefined {
  const timelines = group(results, 'noisy')?.metrics.noisyTimeline as NoisyTimeline[] | undefined
  if (!timelines?.length) return undefined
  const points = timelines.flatMap((t) =>
    t.points.flatMap((p) => [
      { attack: t.attack, phase: p.phase, tSec: p.tSec, measure: 'p50', ms: p.p50Ms },
      { attack: t.attack, phase: p.phase, tSec: p.tSec, measure: 'p99', ms: p.p99Ms },
    ]),
  )
  const starts = timelines.map((t) => ({ attack: t.attack, tSec: t.attackStartSec, label: 'attack starts' }))
  return {
    file: 'noisy-timeline.svg',
    alt: "A quiet tenant's read latency over time, alone and then while a neighbour attacks, one panel per attack",
    spec: {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      title: { text: "A quiet tenant's point read over time while a neighbour attacks", subtitle: `per 200 ms of samples; dashed line: the attacker starts. ${provenance(results)}` },
      description: "Quiet tenant's p50 and p99 latency per 200 ms over time, before and during each attack",
      config,
      data: { values: [...points.map((p) => ({ ...p, kind: 'point' })), ...starts.map((s) => ({ ...s, kind: 'start' }))] },
      facet: { row: { field: 'attack', type: 'nominal', title: null, sort: timelines.map((t) => t.attack), header: { labelAngle: 0, labelAlign: 'left', labelAnchor: 'start', labelOrient: 'top', labelFontSize: 11 } } },
      spec: {
        width: WIDTH,
        height: 110,
        layer: [
          {
            transform: [{ filter: "datum.kind === 'point'" }],
            mark: { type: 'line', interpolate: 'step-after', strokeWidth: 1.2 },
            encoding: {
              x: { field: 'tSec', type: 'quantitative', title: 'seconds since the quiet reader started' },
              y: { field: 'ms', type: 'quantitative', title: 'ms (log)', scale: { type: 'log' } },
              color: { field: 'measure', type: 'nominal', title: null, scale: { range: ['#4c78a8', '#e45756'] } },
              // A line per phase: no line across the attacker's ramp-up, when the quiet reader was not sampling.
              detail: { field: 'phase', type: 'nominal' },
            },
          },
          {
            transform: [{ filter: "datum.kind === 'start'" }],
            mark: { type: 'rule', strokeDash: [4, 3], color: '#333' },
            encoding: { x: { field: 'tSec', type: 'quantitative' } },
          },
        ],
      },
    },
  }
}

// --- hot paths against their physical limits ----------------------------------------------

interface HotPath {
  path: string
  /** What the path is held to: the fastest way to do the same work without Tenantry. */
  limit: string
  /** The limit's time per operation over Tenantry's: 1 = as fast as the limit. */
  ofLimit: number
  /** The goal as a share of the limit's speed, when there is one. */
  goal?: number
}

function throughput(report: GroupReport | undefined, titleStart: string): ThroughputResult | undefined {
  return report?.tables.find((t): t is ThroughputResult => t.kind === 'throughput' && t.title.startsWith(titleStart))
}

/** `limit`'s time per operation over `ours`'s, from one throughput table. */
function share(table: ThroughputResult | undefined, ours: string, limit: string): number | undefined {
  const row = (name: string) => table?.rows.find((r) => r.name === name || r.name.startsWith(name))
  const a = row(ours)
  const b = row(limit)
  return a && b ? b.medianUsPerOp / a.medianUsPerOp : undefined
}

/** Every hot path the run measured, each against its limit. Paths whose group did not run are left out. */
export function hotPaths(results: BenchResults): HotPath[] {
  const paths: HotPath[] = []
  const add = (path: string, limit: string, ofLimit: number | undefined, goal?: number) => {
    if (ofLimit !== undefined && Number.isFinite(ofLimit)) paths.push({ path, limit, ofLimit, ...(goal ? { goal } : {}) })
  }
  const query = throughput(group(results, 'query'), 'Point read by primary key')
  add('query: withTenant + db() point read', 'raw better-sqlite3 statement', share(query, 'tenantry: withTenant + db() per query', 'raw better-sqlite3 statement'))
  add('query: withTenant + db() point read', 'plain Kysely', share(query, 'tenantry: withTenant + db() per query', 'plain Kysely'), 1 / 1.05)
  const server = throughput(group(results, 'server'), 'HTTP point read by id')
  add('server: data API GET by id', 'bare Fastify + prepared statement', share(server, 'data API:', 'bare Fastify + better-sqlite3 statement'), 0.8)
  add('server: SQL-over-HTTP pipeline', 'bare Fastify + prepared statement', share(server, 'SQL-over-HTTP:', 'bare Fastify + better-sqlite3 statement'))
  const postgres = group(results, 'postgres')
  add('postgres schema: point read', 'raw pg, same statement', share(throughput(postgres, 'Postgres schema isolation'), 'tenantry:', 'raw pg'), 1 / 1.1)
  add('postgres row: point read', 'raw pg, same statement', share(throughput(postgres, 'Postgres row isolation'), 'tenantry:', 'raw pg, same statement as the tenant role'), 1 / 1.1)
  const cache = group(results, 'cache')
  for (const inFlight of ['1 call in flight', '16 calls in flight']) {
    const table = cache?.tables.find((t): t is ThroughputResult => t.kind === 'throughput' && t.title.endsWith(inFlight))
    add(`cache.get, ${inFlight}`, 'raw ioredis GET', share(table, 'tenantry.cache.get', 'raw ioredis GET'), 1 / 1.2)
    add(`cache.set, ${inFlight}`, 'raw ioredis SET', share(table, 'tenantry.cache.set', 'raw ioredis SET'), 1 / 1.2)
  }
  return paths
}

function hotPathChart(results: BenchResults): Chart | undefined {
  const paths = hotPaths(results)
  if (!paths.length) return undefined
  const round = (n: number) => Math.round(n * 1000) / 1000
  const values = paths.map((p) => ({
    label: `${p.path} vs ${p.limit}`,
    ofLimit: round(p.ofLimit),
    text: `${p.ofLimit.toFixed(2)}`,
    goal: p.goal === undefined ? null : round(p.goal),
    status: p.goal === undefined ? 'no goal' : p.ofLimit >= p.goal ? 'goal met' : 'goal not met',
  }))
  const y = { field: 'label', type: 'nominal' as const, title: null, sort: null, axis: { labelLimit: 1000 } }
  return {
    file: 'hot-paths.svg',
    alt: "Each hot path's speed as a share of its physical limit (the same work without Tenantry), with its goal",
    spec: {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      title: { text: 'Hot paths as a share of their physical limit (1 = as fast as the limit)', subtitle: `limit's time per operation ÷ Tenantry's; black tick: the goal. ${provenance(results)}` },
      description: "Each hot path's throughput as a share of the same work done without Tenantry, with the goal where there is one",
      config,
      data: { values },
      width: 300,
      layer: [
        {
          mark: { type: 'bar', height: 14 },
          encoding: {
            y,
            x: { field: 'ofLimit', type: 'quantitative', title: 'share of the limit', scale: { domain: [0, Math.max(1.1, ...values.map((v) => v.ofLimit))] } },
            color: { field: 'status', type: 'nominal', title: null, scale: { domain: ['goal met', 'goal not met', 'no goal'], range: ['#54a24b', '#e45756', '#9d9d9d'] } },
          },
        },
        {
          mark: { type: 'text', align: 'left', dx: 3, fontSize: 10 },
          encoding: { y, x: { field: 'ofLimit', type: 'quantitative' }, text: { field: 'text' } },
        },
        {
          transform: [{ filter: 'datum.goal !== null' }],
          mark: { type: 'tick', color: 'black', thickness: 2, size: 20 },
          encoding: { y, x: { field: 'goal', type: 'quantitative' } },
        },
        { data: { values: [{ x: 1 }] }, mark: { type: 'rule', strokeDash: [2, 2], color: '#666' }, encoding: { x: { field: 'x', type: 'quantitative' } } },
      ],
    },
  }
}

// --- rendering -----------------------------------------------------------------------

/** The charts a run's results can draw: a group that did not run (or failed) draws none. */
export function charts(results: BenchResults): Chart[] {
  return [scaleChart(results), noisyChart(results), hotPathChart(results)].filter((c): c is Chart => c !== undefined)
}

export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' })
  try {
    return `${await view.toSVG()}\n`
  } finally {
    view.finalize()
  }
}

export async function renderCharts(results: BenchResults): Promise<Array<Chart & { svg: string }>> {
  const out: Array<Chart & { svg: string }> = []
  for (const chart of charts(results)) out.push({ ...chart, svg: await renderSvg(chart.spec) })
  return out
}

/** Renders every chart into `dir`; returns the files written. */
export async function writeCharts(results: BenchResults, dir: string): Promise<string[]> {
  await mkdir(dir, { recursive: true })
  const rendered = await renderCharts(results)
  for (const chart of rendered) await writeFile(join(dir, chart.file), chart.svg)
  return rendered.map((c) => c.file)
}
