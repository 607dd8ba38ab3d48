import { fileURLToPath } from 'node:url'
import { runConformance } from 'tenantry/testing'

const migrations = fileURLToPath(new URL('../examples/cv-builder/migrations', import.meta.url))

runConformance({
  engine: 'sqlite',
  isolation: 'database',
  migrations,
  setup: async ({ home, migrations }) => ({
    config: { home, migrations: { tenant: migrations }, dataSources: [{ id: 'local', engine: 'sqlite' }] },
  }),
})
