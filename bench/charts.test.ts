import { spawnSync } from 'node:child_process'
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { charts, hotPaths, renderCharts, type BenchResults } from './charts.js'
import type { ScaleRow } from './groups/scale.js'
import { repoRoot } from './harness.js'
import { record, recordedDir, whyNotRecordable } from './record.js'

/**
 * The charts in BENCHMARKS.md are drawn from the results recorded beside them
 * (docs/benchmarks/results.json, a copy of a run's .bench/results.json), never by hand:
 * re-rendered here, they must equal the committed SVGs byte for byte.
 */
const recorded = JSON.parse(await readFile(join(recordedDir, 'results.json'), 'utf8')) as BenchResults
const scratch: string[] = []
/** Every file of `dir` with its contents. */
const snapshot = async (dir: string) => Object.fromEntries(await Promise.all((await readdir(dir)).sort().map(async (f) => [f, await readFile(join(dir, f), 'utf8')] as const)))
afterAll(() => Promise.all(scratch.map((dir) => rm(dir, { recursive: true, force: true }))))

describe('the recorded benchmark charts', () => {
  it('are what the recorded results draw: the scale curve, the noisy timeline and the hot paths, each embedded in BENCHMARKS.md', async () => {
    const rendered = await renderCharts(recorded)
    expect(rendered.map((c) => c.file).sort()).toEqual(['hot-paths.svg', 'noisy-timeline.svg', 'scale.svg'])
    const committed = (await readdir(recordedDir)).filter((f) => f.endsWith('.svg')).sort()
    expect(committed).toEqual(rendered.map((c) => c.file).sort())
    const doc = await readFile(join(repoRoot, 'BENCHMARKS.md'), 'utf8')
    for (const chart of rendered) {
      expect(await readFile(join(recordedDir, chart.file), 'utf8'), `${chart.file} is stale: run npm run bench:record`).toBe(chart.svg)
      expect(doc).toContain(`](docs/benchmarks/${chart.file})`)
    }
  })

  it('render the same bytes every time, with no ids, clip paths or dates beyond the run\'s own', async () => {
    const [first, second] = [await renderCharts(recorded), await renderCharts(recorded)]
    expect(second.map((c) => c.svg)).toEqual(first.map((c) => c.svg))
    for (const { svg } of first) {
      expect(svg).not.toMatch(/\sid="/)
      expect(svg).not.toContain('clip-path')
      expect(svg.startsWith('<svg')).toBe(true)
    }
  })

  it('follow the data: other numbers draw another scale curve; a failed or missing group draws no chart', async () => {
    const rows = recorded.groups.find((g) => g.name === 'scale')!.metrics.scaleRows as ScaleRow[]
    const doubled: BenchResults = {
      ...recorded,
      groups: recorded.groups.map((g) => (g.name === 'scale' ? { ...g, metrics: { ...g.metrics, scaleRows: rows.map((r) => ({ ...r, rssMiB: r.rssMiB * 2 })) } } : g)),
    }
    const scale = async (results: BenchResults) => (await renderCharts(results)).find((c) => c.file === 'scale.svg')?.svg
    expect(await scale(doubled)).not.toBe(await scale(recorded))
    const failed: BenchResults = { ...recorded, groups: recorded.groups.map((g) => (g.name === 'scale' ? { ...g, error: 'boom' } : g)) }
    expect(charts(failed).map((c) => c.file)).not.toContain('scale.svg')
    expect(charts({ ...recorded, groups: [] })).toEqual([])
  })

  it('hold each hot path to its limit: the data API against bare Fastify with a prepared statement, goal 0.8', () => {
    const server = recorded.groups.find((g) => g.name === 'server')
    const paths = hotPaths(recorded)
    const dataApi = paths.find((p) => p.path === 'server: data API GET by id')
    if (!server) return expect(dataApi).toBeUndefined()
    const table = server.tables.find((t) => t.kind === 'throughput')!
    if (table.kind !== 'throughput') throw new Error('unreachable')
    const us = (name: string) => table.rows.find((r) => r.name.startsWith(name))!.medianUsPerOp
    expect(dataApi).toEqual({ path: 'server: data API GET by id', limit: 'bare Fastify + prepared statement', ofLimit: us('bare Fastify + better-sqlite3') / us('data API:'), goal: 0.8 })
  })
})

describe('recording a run', () => {
  it('copies results.json into the directory, draws its charts and removes charts the run cannot draw', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tenantry-bench-record-'))
    scratch.push(dir)
    const from = join(dir, 'run.json')
    const onlyScale: BenchResults = { ...recorded, groups: recorded.groups.filter((g) => g.name === 'scale') }
    await writeFile(from, JSON.stringify(onlyScale))
    await writeFile(join(dir, 'noisy-timeline.svg'), '<svg>stale</svg>')
    expect(await record(from, dir)).toEqual(['scale.svg'])
    expect((await readdir(dir)).sort()).toEqual(['results.json', 'run.json', 'scale.svg'])
    expect(await readFile(join(dir, 'results.json'), 'utf8')).toBe(JSON.stringify(onlyScale))
  })

  it('refuses a partial run (--only) over a fuller record, and a run with a failed group, changing nothing', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tenantry-bench-record-'))
    scratch.push(dir)
    const out = join(dir, 'recorded')
    const full = join(dir, 'full.json')
    await writeFile(full, JSON.stringify(recorded))
    const drawn = await record(full, out)
    const before = await snapshot(out)
    const names = recorded.groups.map((g) => g.name)
    expect(names.length).toBeGreaterThan(1)

    const partial = join(dir, 'partial.json')
    await writeFile(partial, JSON.stringify({ ...recorded, groups: recorded.groups.filter((g) => g.name === names[0]) }))
    const dropped = names.slice(1).join(', ')
    await expect(record(partial, out)).rejects.toThrow(`recording it would drop the recorded results of ${dropped}`)
    expect(await whyNotRecordable([names[0]!], out)).toContain(dropped)

    const failed = join(dir, 'failed.json')
    await writeFile(failed, JSON.stringify({ ...recorded, groups: recorded.groups.map((g, i) => (i === 0 ? { ...g, error: 'boom' } : g)) }))
    await expect(record(failed, out)).rejects.toThrow(`Not recorded: ${names[0]} failed in this run`)
    expect(await snapshot(out)).toEqual(before)

    // A run of every group records; so does re-drawing the record itself, and a first record anywhere.
    expect(await whyNotRecordable(names, out)).toBeUndefined()
    expect(await record(join(out, 'results.json'), out)).toEqual(drawn)
    expect(await whyNotRecordable([names[0]!], join(dir, 'nothing-recorded-yet'))).toBeUndefined()
  })

  it('npm run bench -- --only <group> --record is refused before any group runs', () => {
    const run = spawnSync(process.execPath, ['--import', 'tsx', 'bench/index.ts', '--only', 'query', '--record'], { cwd: repoRoot, encoding: 'utf8' })
    expect(run.status).toBe(2)
    expect(run.stderr).toContain('--record: this run has only query: recording it would drop the recorded results of')
    expect(run.stdout).not.toContain('== query')
  })

  it('refuses a file that is not a run\'s results, and writes nothing', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tenantry-bench-record-'))
    scratch.push(dir)
    const from = join(dir, 'run.json')
    await writeFile(from, JSON.stringify({ hello: 'world' }))
    await expect(record(from, join(dir, 'out'))).rejects.toThrow(/not a bench results file/)
    await expect(record(join(dir, 'missing.json'), join(dir, 'out'))).rejects.toThrow(/ENOENT/)
    expect(await readdir(dir)).toEqual(['run.json'])
  })
})
