import { fileURLToPath } from 'node:url'
import { defineConfig } from 'vite'

/**
 * The console is a static build (`dist/`) that the server serves at `/`. No framework plugin:
 * Vite's own transform compiles the TSX with React's automatic JSX runtime.
 */
export default defineConfig({
  base: '/',
  // The client from its source: the console's build never waits on (or ships a stale) client dist/.
  resolve: { alias: [{ find: /^@tenantry\/client$/, replacement: fileURLToPath(new URL('../client/src/index.ts', import.meta.url)) }] },
  // Always the production JSX runtime: a build is what the server serves (NODE_ENV may be `test` here).
  oxc: { jsx: { runtime: 'automatic', development: false } },
  // The first chunk holds React, Better Auth's client, Dexie, zod and the CV builder; every other page is a chunk of its own (App.tsx).
  build: { outDir: 'dist', emptyOutDir: true, target: 'es2022', sourcemap: true, chunkSizeWarningLimit: 600 },
})
