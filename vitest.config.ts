import { fileURLToPath } from 'node:url'
import { defineConfig } from 'vitest/config'

const at = (path: string) => fileURLToPath(new URL(path, import.meta.url))

export default defineConfig({
  resolve: {
    // Tests run against the source, not a stale dist/.
    alias: [
      { find: /^tenantry\/testing$/, replacement: at('./packages/core/src/testing/index.ts') },
      { find: /^tenantry$/, replacement: at('./packages/core/src/index.ts') },
      { find: /^@tenantry\/server\/testing$/, replacement: at('./packages/server/src/testing/index.ts') },
      { find: /^@tenantry\/server$/, replacement: at('./packages/server/src/index.ts') },
      { find: /^@tenantry\/client\/semantics$/, replacement: at('./packages/client/src/semantics.ts') },
      { find: /^@tenantry\/cli\/testing$/, replacement: at('./packages/cli/src/testing/index.ts') },
      { find: /^@tenantry\/cli$/, replacement: at('./packages/cli/src/index.ts') },
    ],
  },
  test: {
    include: ['packages/*/src/**/*.test.ts', 'e2e/**/*.test.ts', 'examples/**/*.test.ts', 'bench/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    globalSetup: ['./scripts/vitest-built.mjs'],
  },
})
