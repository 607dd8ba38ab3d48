// vitest's globalSetup: the CLI and e2e tests run the built `tenantry` (packages/*/dist), as users
// do. `npm test` builds before vitest starts; a bare `npx vitest` builds here when nothing is built.
import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

export default function build() {
  const repo = fileURLToPath(new URL('..', import.meta.url))
  if (!existsSync(`${repo}packages/cli/dist/bin.js`)) execFileSync('npx', ['tsc', '-b'], { cwd: repo, stdio: 'inherit' })
}
