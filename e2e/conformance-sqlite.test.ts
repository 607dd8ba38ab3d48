import { runConformance } from 'tenantry/testing'

// SQLite files (the embedded default), on the suite's own fixture migrations.
runConformance({
  engine: 'sqlite',
  isolation: 'database',
  setup: async ({ home, migrations }) => ({
    config: { home, migrations: { tenant: migrations }, dataSources: [{ id: 'local', engine: 'sqlite' }] },
  }),
})
