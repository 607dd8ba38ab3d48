// Makes a fresh clone runnable: installs dependencies when missing or stale, then builds.
// Used by `npm start`, `npm test` and `npm run bench`, so each is one command on a new machine.
import { execSync } from 'node:child_process'
import { existsSync, readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'

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

// The web console (packages/console, a Vite build the server serves at `/`): built when its
// dist/ is missing or older than any of its sources (its own, the client's it bundles, and the
// example app's declarations).
const newest = (path) => {
  if (!existsSync(path)) return 0
  const stat = statSync(path)
  if (!stat.isDirectory()) return stat.mtimeMs
  return Math.max(stat.mtimeMs, ...readdirSync(path).map((name) => newest(join(path, name))))
}
const consoleBuilt = mtime('packages/console/dist/index.html')
const consoleSources = ['packages/console/src', 'packages/console/index.html', 'packages/console/vite.config.ts', 'packages/console/package.json', 'packages/client/src', 'examples/cv-builder/collections.ts']
if (!consoleBuilt || Math.max(...consoleSources.map(newest)) > consoleBuilt) {
  console.log('tenantry: building the web console (vite build)…')
  run('npm run build --silent -w @tenantry/console')
}

