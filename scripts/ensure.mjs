// Makes a fresh clone runnable: installs dependencies when missing or stale, then builds.
// Used by `npm start`, `npm test` and `npm run bench`, so each is one command on a new machine.
import { execSync } from 'node:child_process'
import { existsSync, statSync } from 'node:fs'

const run = (command) => execSync(command, { stdio: 'inherit' })
const mtime = (path) => (existsSync(path) ? statSync(path).mtimeMs : 0)

const installed = 'node_modules/.package-lock.json'
if (!existsSync(installed) || mtime('package-lock.json') > mtime(installed)) {
  console.log('tenantry: installing dependencies (npm ci)…')
  run('npm ci --no-audit --no-fund')
}
run('npx tsc -b')
