import { execFile } from 'node:child_process'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { cpus, loadavg, tmpdir, totalmem } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'

export const repoRoot = fileURLToPath(new URL('..', import.meta.url))

// --- comparing variants ------------------------------------------------------

export interface ThroughputVariant {
  name: string
  /**
   * Performs `ops` operations. Called once per round. May return the milliseconds it measured
   * itself (work done in another process), which then replace the harness's own timing.
   */
  run(ops: number): Promise<number | void> | number | void
  /** Operations per round for this variant. @default the comparison's opsPerRound */
  opsPerRound?: number
  note?: string
}

export interface ThroughputOptions {
  title: string
  /** Name of the variant every other one is compared with. */
  baseline: string
  variants: ThroughputVariant[]
  opsPerRound: number
  rounds: number
  warmupRounds: number
  /** What one operation is, for the table header. @default 'ops' */
  unit?: string
}

export interface ThroughputRow {
  name: string
  opsPerRound: number
  rounds: number
  medianOpsPerSec: number
  minOpsPerSec: number
  maxOpsPerSec: number
  /** Microseconds per operation at the median rate. */
  medianUsPerOp: number
  /** Time per operation relative to the baseline: 1.10 means 10 % slower, 0.20 means 5× faster. */
  timeVsBaseline: number
  /** Every measured round's rate, in round order. */
  roundRates: number[]
  note?: string
}

export interface ThroughputResult {
  kind: 'throughput'
  title: string
  baseline: string
  unit: string
  rows: ThroughputRow[]
}

/**
 * Runs every variant in interleaved rounds (A, B, C, A, B, C, …) after warm-up rounds, so
 * drift in the machine (other load, page cache, GC, JIT) hits all variants alike, and
 * reports each variant's median rate.
 */
export async function compareThroughput(options: ThroughputOptions): Promise<ThroughputResult> {
  const rates = new Map<string, number[]>(options.variants.map((v) => [v.name, []]))
  for (let round = 0; round < options.warmupRounds + options.rounds; round++) {
    for (const variant of rotate(options.variants, round)) {
      const ops = variant.opsPerRound ?? options.opsPerRound
      const started = performance.now()
      const reported = await variant.run(ops)
      const seconds = (typeof reported === 'number' ? reported : performance.now() - started) / 1000
      if (round >= options.warmupRounds) rates.get(variant.name)!.push(ops / seconds)
    }
  }
  const base = median(rates.get(options.baseline) ?? fail(`No baseline variant ${options.baseline}`))
  const rows = options.variants.map((variant): ThroughputRow => {
    const r = rates.get(variant.name)!
    const m = median(r)
    return {
      name: variant.name,
      opsPerRound: variant.opsPerRound ?? options.opsPerRound,
      rounds: r.length,
      medianOpsPerSec: m,
      minOpsPerSec: Math.min(...r),
      maxOpsPerSec: Math.max(...r),
      medianUsPerOp: 1e6 / m,
      timeVsBaseline: base / m,
      roundRates: r,
      ...(variant.note ? { note: variant.note } : {}),
    }
  })
  return { kind: 'throughput', title: options.title, baseline: options.baseline, unit: options.unit ?? 'ops', rows }
}

export interface LatencyVariant {
  name: string
  /** One timed operation. */
  op(): Promise<void> | void
  /** Untimed preparation before each operation. */
  before?(): Promise<void> | void
  /** @default the comparison's samplesPerRound */
  samplesPerRound?: number
  note?: string
}

export interface LatencyOptions {
  title: string
  baseline: string
  variants: LatencyVariant[]
  samplesPerRound: number
  rounds: number
  warmupRounds: number
  /** Called after every timed sample, for side measurements such as memory. */
  afterSample?(variant: string): void
}

export interface LatencyRow {
  name: string
  samples: number
  p50Ms: number
  p95Ms: number
  p99Ms: number
  meanMs: number
  maxMs: number
  /** p50 relative to the baseline's p50. */
  p50VsBaseline: number
  note?: string
}

export interface LatencyResult {
  kind: 'latency'
  title: string
  baseline: string
  rows: LatencyRow[]
}

/** Like `compareThroughput`, but times every operation and reports percentiles. */
export async function compareLatency(options: LatencyOptions): Promise<LatencyResult> {
  const samples = new Map<string, number[]>(options.variants.map((v) => [v.name, []]))
  for (let round = 0; round < options.warmupRounds + options.rounds; round++) {
    const measured = round >= options.warmupRounds
    for (const variant of rotate(options.variants, round)) {
      const into = samples.get(variant.name)!
      const count = variant.samplesPerRound ?? options.samplesPerRound
      for (let i = 0; i < count; i++) {
        await variant.before?.()
        const started = performance.now()
        await variant.op()
        const ms = performance.now() - started
        if (measured) {
          into.push(ms)
          options.afterSample?.(variant.name)
        }
      }
    }
  }
  const rows = options.variants.map((variant) => summarizeLatency(variant.name, samples.get(variant.name)!, variant.note))
  const base = rows.find((r) => r.name === options.baseline) ?? fail(`No baseline variant ${options.baseline}`)
  for (const row of rows) row.p50VsBaseline = row.p50Ms / base.p50Ms
  return { kind: 'latency', title: options.title, baseline: options.baseline, rows }
}

export function summarizeLatency(name: string, samples: number[], note?: string): LatencyRow {
  const sorted = [...samples].sort((a, b) => a - b)
  return {
    name,
    samples: sorted.length,
    p50Ms: percentile(sorted, 50),
    p95Ms: percentile(sorted, 95),
    p99Ms: percentile(sorted, 99),
    meanMs: sorted.reduce((a, b) => a + b, 0) / Math.max(1, sorted.length),
    maxMs: sorted.at(-1) ?? NaN,
    p50VsBaseline: 1,
    ...(note ? { note } : {}),
  }
}

/** Later rounds start at a different variant, so none is always first after a slow step. */
function rotate<T>(items: readonly T[], round: number): T[] {
  const k = round % items.length
  return [...items.slice(k), ...items.slice(0, k)]
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

/** Nearest-rank percentile of sorted values. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!
}

function fail(message: string): never {
  throw new Error(message)
}

// --- reporting -------------------------------------------------------------------

export interface Goal {
  name: string
  target: string
  measured: string
  met: boolean
}

/**
 * How many µs of work per operation a baseline would have to add to run at `perSec`. `points`
 * are yardstick variants: the baseline itself (`us: 0`) and the baseline after `us` µs of busy
 * work, with their measured rates. Their time per operation (1 / rate) is fitted as a line
 * against `us` (least squares) and solved for `perSec`: the slope is below 1 where the added
 * work overlaps with time the baseline spent waiting.
 */
export function addedWorkUs(points: ReadonlyArray<{ us: number; perSec: number }>, perSec: number): number {
  const xs = points.map((p) => p.us)
  const ys = points.map((p) => 1e6 / p.perSec)
  const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length
  const mx = mean(xs)
  const my = mean(ys)
  const slope = xs.reduce((sum, x, i) => sum + (x - mx) * (ys[i]! - my), 0) / xs.reduce((sum, x) => sum + (x - mx) ** 2, 0)
  const intercept = my - slope * mx
  return (1e6 / perSec - intercept) / slope
}

/**
 * The goal that `variant` takes at most `max` times as long per operation as `baseline`, two
 * rows of the same run (a ratio of medians, so both saw the same machine).
 */
export function slowdownGoal(name: string, variant: ThroughputRow, baseline: ThroughputRow, max: number, unit = 'query'): Goal {
  const ratio = baseline.medianOpsPerSec / variant.medianOpsPerSec
  return {
    name,
    target: `≤ ${max.toFixed(2)}×`,
    measured: `${ratio.toFixed(2)}× (${fmt(variant.medianUsPerOp)} vs ${fmt(baseline.medianUsPerOp)} µs/${unit})`,
    met: ratio <= max,
  }
}

export interface KeyValueTable {
  kind: 'table'
  title: string
  headers: string[]
  rows: Array<Array<string | number>>
}

export type GroupTable = ThroughputResult | LatencyResult | KeyValueTable

export interface GroupReport {
  name: string
  durationSec: number
  /** Load averages when the group started and ended. */
  loadAverage: { start: number[]; end?: number[] }
  tables: GroupTable[]
  goals: Goal[]
  notes: string[]
  /** Loose numbers worth keeping that fit no table (setup rates, router stats…). */
  metrics: Record<string, unknown>
}

/** Options from the command line that only some groups read. */
export interface BenchOptions {
  /** `--scale-max`: the largest SQLite tenant count the `scale` group provisions. */
  scaleMax?: number
  /** `--full`: also the largest cases (the move group's ~100 MB tenant). */
  full?: boolean
}

/** What a group gets: sizes, scratch directories and a report that prints as it fills. */
export class BenchContext {
  readonly quick: boolean
  readonly options: BenchOptions
  readonly report: GroupReport
  readonly #dirs: string[] = []

  constructor(group: string, quick: boolean, options: BenchOptions = {}) {
    this.quick = quick
    this.options = options
    this.report = { name: group, durationSec: 0, loadAverage: { start: loadAverage() }, tables: [], goals: [], notes: [], metrics: {} }
  }

  /** Full size, or about a tenth of it with `--quick`. */
  size(full: number, quick = Math.max(1, Math.round(full / 10))): number {
    return this.quick ? quick : full
  }

  async workDir(label: string): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), `tenantry-bench-${this.report.name}-${label}-`))
    this.#dirs.push(dir)
    return dir
  }

  async cleanup(): Promise<void> {
    await Promise.all(this.#dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })))
  }

  table(table: GroupTable): void {
    this.report.tables.push(table)
    console.log(formatTable(table))
  }

  goal(goal: Goal): void {
    this.report.goals.push(goal)
    console.log(`  goal ${goal.met ? 'MET    ' : 'NOT MET'}  ${goal.name}: target ${goal.target}, measured ${goal.measured}`)
  }

  metric(key: string, value: unknown): void {
    this.report.metrics[key] = value
  }

  note(text: string): void {
    this.report.notes.push(text)
    console.log(`  note: ${text}`)
  }

  log(text: string): void {
    console.log(`  · ${text}`)
  }
}

export function formatTable(table: GroupTable): string {
  switch (table.kind) {
    case 'throughput':
      return render(
        `${table.title} (median of interleaved rounds; baseline: ${table.baseline})`,
        ['variant', `${table.unit}/s (median)`, 'min…max', 'µs/op', 'time vs base', 'rounds × ops'],
        table.rows.map((r) => [
          r.name,
          fmt(r.medianOpsPerSec),
          `${fmt(r.minOpsPerSec)}…${fmt(r.maxOpsPerSec)}`,
          fmt(r.medianUsPerOp),
          `${r.timeVsBaseline.toFixed(2)}×`,
          `${r.rounds} × ${r.opsPerRound}`,
        ]),
        table.rows.flatMap((r) => (r.note ? [`${r.name}: ${r.note}`] : [])),
      )
    case 'latency':
      return render(
        `${table.title} (baseline: ${table.baseline})`,
        ['variant', 'samples', 'p50 ms', 'p95 ms', 'p99 ms', 'mean ms', 'max ms', 'p50 vs base'],
        table.rows.map((r) => [
          r.name,
          r.samples,
          fmt(r.p50Ms),
          fmt(r.p95Ms),
          fmt(r.p99Ms),
          fmt(r.meanMs),
          fmt(r.maxMs),
          `${r.p50VsBaseline.toFixed(2)}×`,
        ]),
        table.rows.flatMap((r) => (r.note ? [`${r.name}: ${r.note}`] : [])),
      )
    case 'table':
      return render(table.title, table.headers, table.rows, [])
  }
}

function render(title: string, headers: string[], rows: Array<Array<string | number>>, footnotes: string[]): string {
  const cells = [headers, ...rows.map((row) => row.map(String))]
  const widths = headers.map((_, i) => Math.max(...cells.map((row) => (row[i] ?? '').length)))
  const line = (row: string[]) =>
    '  | ' + row.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join(' | ') + ' |'
  return [
    '',
    `  ${title}`,
    line(cells[0]!),
    '  |' + widths.map((w, i) => (i === 0 ? '-'.repeat(w + 2) : '-'.repeat(w + 1) + ':')).join('|') + '|',
    ...cells.slice(1).map(line),
    ...footnotes.map((f) => `    ${f}`),
  ].join('\n')
}

/** Three significant digits, no exponent: 52100, 1.23, 0.0456. */
export function fmt(value: number): string {
  if (!Number.isFinite(value)) return String(value)
  const abs = Math.abs(value)
  if (abs >= 1000) return Math.round(value).toString()
  if (abs >= 100) return value.toFixed(0)
  if (abs >= 10) return value.toFixed(1)
  if (abs >= 1) return value.toFixed(2)
  return value.toPrecision(3)
}

export function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`
}

export function machine() {
  const cpu = cpus()
  return {
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
    cpus: cpu.length,
    cpuModel: cpu[0]?.model ?? 'unknown',
    totalMemGiB: Math.round((totalmem() / 1024 ** 3) * 10) / 10,
    loadAverage: loadAverage(),
  }
}

/** 1, 5 and 15 minute load averages: other work on the machine skews every absolute number. */
export function loadAverage(): number[] {
  return loadavg().map((l) => Math.round(l * 100) / 100)
}

let collect: (() => void) | undefined | null = null

/**
 * A full garbage collection, when the engine allows it without a command-line flag (the bench
 * runs under `npm run bench`, which passes none). Tells retained memory from garbage not yet collected.
 */
export function collectGarbage(): boolean {
  if (collect === null) {
    try {
      setFlagsFromString('--expose-gc')
      collect = runInNewContext('gc') as () => void
    } catch {
      collect = undefined
    }
  }
  collect?.()
  return collect !== undefined
}

/**
 * Writes every dirty page of the machine's file systems to disk (`sync`) and returns how long
 * that took, in ms. A group calls it between its setup and a timed phase when the setup wrote
 * much (10,000 tenant files, say): otherwise the kernel's write-back of the setup competes with
 * whatever is timed first, and that variant pays for work that is not its own.
 */
export async function settleDisk(): Promise<number> {
  const started = performance.now()
  await promisify(execFile)('sync')
  return performance.now() - started
}

export async function writeResults(path: string, results: unknown): Promise<void> {
  await mkdir(dirname(path), { recursive: true })
  await writeFile(path, JSON.stringify(results, null, 2) + '\n')
}
