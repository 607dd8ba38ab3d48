import { describe, it } from 'vitest'
import { createTestDatabase, findPostgres, runConformance } from 'tenantry/testing'

// The same suite with the catalog on Postgres and tenant data in SQLite files: the
// control plane must behave the same on both engines.
const postgres = await findPostgres()

if ('skip' in postgres) {
  describe.skip(`conformance with a Postgres catalog (skipped: ${postgres.skip})`, () => it('needs Postgres', () => {}))
} else {
  runConformance({
    engine: 'sqlite',
    isolation: 'database',
    setup: async ({ home, migrations }) => {
      const catalog = await createTestDatabase(postgres.url, 'tenantry_catalog')
      return {
        config: { home, catalogUrl: catalog.url, migrations: { tenant: migrations }, dataSources: [{ id: 'local', engine: 'sqlite' }] },
        teardown: () => catalog.drop(),
      }
    },
  })
}
