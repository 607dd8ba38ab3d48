import { defineConfig } from 'tenantry'
import { collections } from './examples/cv-builder/collections.js'

// The repo's own config: Tenantry on the embedded default (a SQLite catalog and one
// SQLite file per tenant under $TENANTRY_HOME, ./.tenantry by default), serving the
// CV builder example app of seed 000.
export default defineConfig({
  migrations: { tenant: './examples/cv-builder/migrations' },
  dataSources: [{ id: 'local', engine: 'sqlite', mode: 'shared', synchronous: 'NORMAL' }],
  defaults: { isolation: 'database', dataSource: 'local' },
  router: { placementTtlMs: 30_000, maxOpenHandles: 256 },
  // The HTTP server (@tenantry/server): the CV builder's tables served by the data API, declared
  // once in examples/cv-builder/collections.ts, which the browser app's @tenantry/client shares.
  server: {
    collections,
  },
})
