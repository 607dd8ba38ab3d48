// `npm run bench:record` (or `npm run bench -- --record`): copies the last run's
// .bench/results.json into docs/benchmarks/ and draws its charts there, beside it.
// .bench/ is not committed; docs/benchmarks/ is, and BENCHMARKS.md embeds its charts, so the
// charts in the docs always come from the results committed next to them (bench/charts.test.ts).
import { copyFile, mkdir, readdir, readFile, rm } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { writeCharts, type BenchResults } from './charts.js'
import { repoRoot } from './harness.js'

export const lastRunPath = join(repoRoot, '.bench/results.json')
export const recordedDir = join(repoRoot, 'docs/benchmarks')

/**
 * Why a run whose groups are `ran` cannot replace what `dir` records, or `undefined` if it can:
 * results.json is replaced whole and the charts are drawn from it alone, so a partial run
 * (`--only`) would delete the recorded results and charts of every group it did not run.
 */
export async function whyNotRecordable(ran: readonly string[], dir = recordedDir): Promise<string | undefined> {
  let recorded: BenchResults
  try {
    recorded = JSON.parse(await readFile(join(dir, 'results.json'), 'utf8')) as BenchResults
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw error
  }
  const dropped = (recorded.groups ?? []).map((g) => g.name).filter((name) => !ran.includes(name))
  if (dropped.length === 0) return undefined
  return (
    `this run has only ${ran.join(', ') || 'no groups'}: recording it would drop the recorded results of ${dropped.join(', ')}. ` +
    'Record a run of every group (npm run bench -- --record); keep a partial run in .bench/ and quote it in BENCHMARKS.md'
  )
}

/**
 * Records `from` (a results.json) into `dir`; returns the chart files written. Refuses, writing
 * nothing, a run with fewer groups than `dir` records or with a group that failed.
 */
export async function record(from = lastRunPath, dir = recordedDir): Promise<string[]> {
  const results = JSON.parse(await readFile(from, 'utf8')) as BenchResults
  if (!Array.isArray(results.groups)) throw new Error(`${from} is not a bench results file (no groups)`)
  // Re-drawing the recorded results themselves (after a change to the charts) drops nothing and copies nothing.
  const redraw = resolve(from) === resolve(dir, 'results.json')
  const why = redraw ? undefined : await whyNotRecordable(results.groups.map((g) => g.name), dir)
  if (why) throw new Error(`Not recorded: ${why}`)
  const failed = results.groups.filter((g) => g.error).map((g) => g.name)
  if (failed.length) throw new Error(`Not recorded: ${failed.join(', ')} failed in this run, and would replace the recorded results with none`)
  await mkdir(dir, { recursive: true })
  if (!redraw) await copyFile(from, join(dir, 'results.json'))
  const written = await writeCharts(results, dir)
  // A chart the new results cannot draw must not outlive them.
  for (const file of await readdir(dir)) if (file.endsWith('.svg') && !written.includes(file)) await rm(join(dir, file))
  return written
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  // `bench:record -- --redraw`: the charts again from the recorded results (after a change to bench/charts.ts).
  const from = process.argv.includes('--redraw') ? join(recordedDir, 'results.json') : lastRunPath
  const written = await record(from).catch((error: NodeJS.ErrnoException) => {
    console.error(error.code === 'ENOENT' ? `No ${error.path}: run \`npm run bench\` first` : error.message)
    process.exit(2)
  })
  console.log(`recorded results.json and ${written.join(', ') || 'no charts'} in docs/benchmarks/`)
}
