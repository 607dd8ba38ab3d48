// `npm test`: install and build if needed, type-check the tests too, then run every suite once.
// Extra arguments go to vitest: `npm test -- packages/core/src/router`.
import { execFileSync, spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

execFileSync(process.execPath, ['scripts/ensure.mjs'], { stdio: 'inherit' })
// vitest only strips types: without this, a test could call an API that no longer exists and still compile.
execFileSync('npx', ['tsc', '-p', 'tsconfig.test.json'], { stdio: 'inherit' })

const dir = mkdtempSync(join(tmpdir(), 'tenantry-vitest-'))
const report = join(dir, 'report.json')
const args = ['vitest', 'run', '--reporter=default', '--reporter=json', `--outputFile.json=${report}`, ...process.argv.slice(2)]
const result = spawnSync('npx', args, { stdio: 'inherit' })
try {
  // One plain closing line that any CI can read, whatever vitest prints above it.
  const { numPassedTests, numFailedTests, numPendingTests } = JSON.parse(readFileSync(report, 'utf8'))
  console.log(`tests: ${numPassedTests} passed, ${numFailedTests} failed, ${numPendingTests} skipped`)
} catch {
  console.log('tests: the run ended without a report')
} finally {
  rmSync(dir, { recursive: true, force: true })
}
process.exit(result.status ?? 1)
