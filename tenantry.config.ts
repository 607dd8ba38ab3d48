import { defineConfig } from 'tenantry'

// The repo's own config: Tenantry on the embedded default (a SQLite catalog and one
// SQLite file per tenant under $TENANTRY_HOME, ./.tenantry by default), serving the
// CV builder example app of seed 000.
export default defineConfig({
  migrations: { tenant: './examples/cv-builder/migrations' },
  dataSources: [{ id: 'local', engine: 'sqlite', mode: 'shared', synchronous: 'NORMAL' }],
  defaults: { isolation: 'database', dataSource: 'local' },
  router: { placementTtlMs: 30_000, maxOpenHandles: 256 },
})
