// `npm test`: install and build if needed, type-check the tests too, then run every suite once.
// Extra arguments go to vitest: `npm test -- packages/core/src/router`. `--node 24` runs the
// suite under that Node major, set up by scripts/node.mjs (this script and tsc stay on the machine's).
import { execFileSync, spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { prepareNode, takeNodeOption } from './node.mjs'

const { major, rest } = takeNodeOption(process.argv.slice(2))

execFileSync(process.execPath, ['scripts/ensure.mjs'], { stdio: 'inherit' })
// vitest only strips types: without this, a test could call an API that no longer exists and still compile.
execFileSync('npx', ['tsc', '-p', 'tsconfig.test.json'], { stdio: 'inherit' })

const dir = mkdtempSync(join(tmpdir(), 'tenantry-vitest-'))
const report = join(dir, 'report.json')
const args = ['vitest', 'run', '--reporter=default', '--reporter=json', `--outputFile.json=${report}`, ...rest]
const node = major === undefined ? undefined : prepareNode(major)
if (node) console.log(`tests under Node ${node.version}`)
const result = spawnSync('npx', args, { stdio: 'inherit', ...(node ? { env: node.env } : {}) })
try {
  // One plain closing line that any CI can read, whatever vitest prints above it.
  const { numPassedTests, numFailedTests, numPendingTests } = JSON.parse(readFileSync(report, 'utf8'))
  console.log(`tests${node ? ` (Node ${node.version})` : ''}: ${numPassedTests} passed, ${numFailedTests} failed, ${numPendingTests} skipped`)
} catch {
  console.log('tests: the run ended without a report')
} finally {
  rmSync(dir, { recursive: true, force: true })
}
process.exit(result.status ?? 1)
