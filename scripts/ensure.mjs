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
// The browser tests (packages/client/src/*.browser.test.ts) drive Debian's `chromium` through
// playwright-core, never a downloaded browser. Tests only (`npm test`, or `--browser`): a
// server start does not need it. As root it is installed; under CI without root it is an error;
// otherwise those tests skip and say why.
const wantsBrowser = process.argv.includes('--browser') || process.env.npm_lifecycle_event === 'test'
if (wantsBrowser && !existsSync('/usr/bin/chromium')) {
  if (process.getuid?.() === 0) {
    console.log('tenantry: installing chromium for the browser tests (apt-get install chromium)…')
    run('apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium')
  } else if (process.env.CI === 'true') {
    console.error('tenantry: /usr/bin/chromium is missing and this user cannot install it: run `apt-get install -y chromium` as root (the browser tests need it in CI)')
    process.exit(1)
  } else {
    console.log('tenantry: /usr/bin/chromium is missing: the browser tests will skip (as root: apt-get install -y chromium)')
  }
}
run('npx tsc -b')
