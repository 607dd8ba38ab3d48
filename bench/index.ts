// `npm run bench [-- --only <group>] [-- --quick] [-- --full]`: runs the benchmark groups in sequence,
// prints a table per comparison and writes everything to .bench/results.json, and its charts to
// .bench/charts/. `--record` then copies both into docs/benchmarks/ (bench/record.ts).
// `--node 24`: the same run under this Node and Node 24, side by side (bench/node-versions.ts).
import { execFileSync } from 'node:child_process'
import { dirname, join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { cacheGroup } from './groups/cache.js'
import { claimGroup } from './groups/claim.js'
import { clientSizeGroup } from './groups/client-size.js'
import { coldGroup } from './groups/cold.js'
import { executorGroup } from './groups/executor.js'
import { fanoutGroup } from './groups/fanout.js'
import { jobsGroup } from './groups/jobs.js'
import { noisyGroup } from './groups/noisy.js'
import { offloopGroup } from './groups/offloop.js'
import { postgresGroup } from './groups/postgres.js'
import { provisionGroup } from './groups/provision.js'
import { scaleGroup } from './groups/scale.js'
import { queryGroup } from './groups/query.js'
import { searchGroup } from './groups/search.js'
import { serverGroup } from './groups/server.js'
import { moveGroup } from './groups/move.js'
import { backupGroup } from './groups/backup.js'
import { writeCharts } from './charts.js'
import { BenchContext, loadAverage, machine, repoRoot, writeResults, type GroupReport } from './harness.js'
import { record, whyNotRecordable } from './record.js'
import { compareNodes } from './node-versions.js'

const GROUPS: Record<string, (ctx: BenchContext) => Promise<void>> = {
  query: queryGroup,
  provision: provisionGroup,
  fanout: fanoutGroup,
  cold: coldGroup,
  postgres: postgresGroup,
  server: serverGroup,
  noisy: noisyGroup,
  offloop: offloopGroup,
  search: searchGroup,
  cache: cacheGroup,
  jobs: jobsGroup,
  claim: claimGroup,
  'client-size': clientSizeGroup,
  scale: scaleGroup,
  move: moveGroup,
  backup: backupGroup,
  executor: executorGroup,
}

const { values } = parseArgs({
  options: {
    only: { type: 'string', multiple: true },
    quick: { type: 'boolean', default: false },
    record: { type: 'boolean', default: false },
    'scale-max': { type: 'string' },
    // Groups' largest cases (the move group's ~100 MB tenant), left out of a default run.
    full: { type: 'boolean', default: false },
    node: { type: 'string' },
    /** Where the results go (the charts beside them, in charts/): `--node` runs write one file per Node. */
    results: { type: 'string' },
  },
})
const only = values.only?.flatMap((o) => o.split(',')) ?? Object.keys(GROUPS)
const unknown = only.filter((name) => !(name in GROUPS))
if (unknown.length) {
  console.error(`Unknown group ${unknown.join(', ')}; groups are ${Object.keys(GROUPS).join(', ')}`)
  process.exit(2)
}

// Refused before the run, not after it: `--record` replaces every recorded group.
const notRecordable = values.record ? await whyNotRecordable(only) : undefined
if (notRecordable) {
  console.error(`--record: ${notRecordable}`)
  process.exit(2)
}

if (values.node !== undefined) {
  const args = process.argv.slice(2).filter((a, i, all) => a !== '--node' && all[i - 1] !== '--node' && !a.startsWith('--node='))
  process.exit((await compareNodes(values.node, args)) ? 0 : 1)
}

const quick = values.quick ?? false
const scaleMax = values['scale-max'] === undefined ? undefined : Number(values['scale-max'])
if (scaleMax !== undefined && !(Number.isInteger(scaleMax) && scaleMax >= 10)) {
  console.error(`--scale-max takes a whole number of tenants ≥ 10, not ${values['scale-max']}`)
  process.exit(2)
}
const git = (...args: string[]) => {
  try {
    return execFileSync('git', args, { cwd: repoRoot, encoding: 'utf8' }).trim()
  } catch {
    return undefined
  }
}
const resultsPath = values.results === undefined ? join(repoRoot, '.bench/results.json') : resolve(values.results)
const results = {
  startedAt: new Date().toISOString(),
  quick,
  groupsRun: only,
  machine: machine(),
  revision: { commit: git('rev-parse', '--short', 'HEAD'), changedFiles: git('status', '--porcelain')?.split('\n').filter(Boolean).length },
  groups: [] as Array<GroupReport & { error?: string }>,
  durationSec: 0,
}
const started = performance.now()
const m = results.machine
const { commit, changedFiles } = results.revision
console.log(
  `tenantry bench${quick ? ' (--quick)' : ''}: node ${m.node}, ${m.cpus} × ${m.cpuModel}, ${m.totalMemGiB} GiB, ${m.platform}, load average ${m.loadAverage.join(' ')}`,
)
console.log(`revision ${commit ?? 'unknown'}${changedFiles ? ` with ${changedFiles} uncommitted changes` : ''}`)

let failed = false
for (const name of only) {
  const ctx = new BenchContext(name, quick, { ...(scaleMax ? { scaleMax } : {}), ...(values.full ? { full: true } : {}) })
  console.log(`\n== ${name} ${'='.repeat(Math.max(0, 70 - name.length))}`)
  const groupStarted = performance.now()
  let error: string | undefined
  try {
    await GROUPS[name]!(ctx)
  } catch (e) {
    failed = true
    error = e instanceof Error ? (e.stack ?? e.message) : String(e)
    console.error(`  group ${name} failed: ${error}`)
  } finally {
    await ctx.cleanup()
  }
  ctx.report.durationSec = Math.round((performance.now() - groupStarted) / 100) / 10
  ctx.report.loadAverage.end = loadAverage()
  console.log(`  (${name}: ${ctx.report.durationSec} s; load average ${ctx.report.loadAverage.start.join(' ')} → ${ctx.report.loadAverage.end.join(' ')})`)
  results.groups.push({ ...ctx.report, ...(error ? { error } : {}) })
  results.durationSec = Math.round((performance.now() - started) / 100) / 10
  await writeResults(resultsPath, results)
}

const goals = results.groups.flatMap((g) => g.goals.map((goal) => ({ group: g.name, ...goal })))
console.log(`\n== goals ${'='.repeat(65)}`)
for (const goal of goals) console.log(`  ${goal.met ? 'MET    ' : 'NOT MET'}  [${goal.group}] ${goal.name}: ${goal.measured} (target ${goal.target})`)
const chartsDir = join(dirname(resultsPath), 'charts')
const charts = await writeCharts(results, chartsDir)
console.log(`\ntotal ${results.durationSec} s; results in ${resultsPath}${charts.length ? `, charts (${charts.join(', ')}) in ${chartsDir}/` : ''}`)
if (failed) process.exitCode = 1
if (values.record) {
  await record().then(
    (written) => console.log(`recorded in docs/benchmarks/: results.json, ${written.join(', ')}`),
    (error: Error) => {
      console.error(error.message)
      process.exitCode = 1
    },
  )
}
