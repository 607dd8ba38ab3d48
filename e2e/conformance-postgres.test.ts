import { describe, it } from 'vitest'
import { Catalog, type Isolation } from 'tenantry'
import { createManagedAdmin, createTestDatabase, dropAppRoles, dropDatabases, findPostgres, runConformance } from 'tenantry/testing'

// Postgres under schema, database and row isolation: the same suite, the same fixture migrations,
// with a superuser admin and with one as managed Postgres gives it (LOGIN CREATEDB CREATEROLE only).
const postgres = await findPostgres()

for (const admin of ['superuser', 'managed'] as const) {
  for (const isolation of ['schema', 'database', 'row'] as const satisfies readonly Isolation[]) {
    if ('skip' in postgres) {
      describe.skip(`conformance: postgres × ${isolation} (skipped: ${postgres.skip})`, () => it('needs Postgres', () => {}))
      continue
    }
    const dataSource = `pg_${admin === 'managed' ? 'm' : 's'}_${isolation}_${process.pid}`
    runConformance({
      engine: 'postgres',
      isolation,
      variant: `${admin} admin`,
      skip:
        isolation === 'row'
          ? [{ reason: 'row tenants share one schema: a migration applies to all of them at once or to none', tests: ['one tenant failing a migration does not stop or corrupt another'] }]
          : [],
      setup: async ({ home, migrations }) => {
        const data = admin === 'managed' ? await createManagedAdmin(postgres.url) : await createTestDatabase(postgres.url, `tenantry_data_${isolation}`)
        const catalogUrl = `${home}/catalog.db`
        return {
          config: {
            home,
            catalogUrl,
            migrations: { tenant: migrations },
            dataSources: [{ id: dataSource, engine: 'postgres', url: data.url, isolations: [isolation] }],
            defaults: { isolation, dataSource },
          },
          teardown: async () => {
            // Database-isolated tenants live outside the test database: drop them by the names the catalog holds.
            const catalog = Catalog.open({ url: catalogUrl })
            const tenants = await catalog.listTenants({ includePurged: true })
            await catalog.close()
            await dropDatabases(postgres.url, tenants.filter((t) => t.placement.isolation === 'database').map((t) => t.placement.locator))
            await data.drop()
            await dropAppRoles(postgres.url, [dataSource])
          },
        }
      },
    })
  }
}
