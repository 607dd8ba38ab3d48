// `npm test`: install and build if needed, then run every test suite once.
// Extra arguments go to vitest: `npm test -- packages/core/src/router`.
import { execFileSync, spawnSync } from 'node:child_process'

execFileSync(process.execPath, ['scripts/ensure.mjs'], { stdio: 'inherit' })
const result = spawnSync('npx', ['vitest', 'run', ...process.argv.slice(2)], { stdio: 'inherit' })
process.exit(result.status ?? 1)
