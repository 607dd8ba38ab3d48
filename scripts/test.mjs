// `npm test`: install and build if needed, type-check the tests too, then run every suite once.
// Extra arguments go to vitest: `npm test -- packages/core/src/router`.
import { execFileSync, spawnSync } from 'node:child_process'

execFileSync(process.execPath, ['scripts/ensure.mjs'], { stdio: 'inherit' })
// vitest only strips types: without this, a test could call an API that no longer exists and still compile.
execFileSync('npx', ['tsc', '-p', 'tsconfig.test.json'], { stdio: 'inherit' })
const result = spawnSync('npx', ['vitest', 'run', ...process.argv.slice(2)], { stdio: 'inherit' })
process.exit(result.status ?? 1)
