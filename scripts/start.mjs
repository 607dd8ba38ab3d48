// `npm start`: Tenantry on the embedded default (SQLite catalog and one SQLite file per
// tenant under ./.tenantry, or $TENANTRY_HOME). Brings the catalog up to date, makes sure
// a `demo` tenant of the CV builder example exists with a little data (`--demo`: the CLI
// creates none unasked), and shows it.
import { execFileSync } from 'node:child_process'

execFileSync(process.execPath, ['scripts/ensure.mjs'], { stdio: 'inherit' })
const cli = (...args) => execFileSync(process.execPath, ['packages/cli/bin/tenantry.js', ...args], { stdio: 'inherit' })
cli('start', '--demo', ...process.argv.slice(2))
