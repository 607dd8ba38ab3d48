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

/** Records `from` (a results.json) into `dir`; returns the chart files written. */
export async function record(from = lastRunPath, dir = recordedDir): Promise<string[]> {
  const results = JSON.parse(await readFile(from, 'utf8')) as BenchResults
  if (!Array.isArray(results.groups)) throw new Error(`${from} is not a bench results file (no groups)`)
  await mkdir(dir, { recursive: true })
  // Re-drawing the recorded results (after a change to the charts) leaves them as they are.
  if (resolve(from) !== resolve(dir, 'results.json')) await copyFile(from, join(dir, 'results.json'))
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
