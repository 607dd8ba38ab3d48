import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTenantry, PostgresEngine, type Tenantry } from 'tenantry'
import { createTestDatabase, dropAppRoles, findPostgres, tempDir } from 'tenantry/testing'

// Regression: Kysely's Migrator found its tables by introspecting every schema of the
// database, so each schema tenant's migrate cost more the more tenants there were.
const postgres = await findPostgres()
const dataSource = `pg_intro_${process.pid}`

describe.skipIf('skip' in postgres)(`schema-scoped introspection${'skip' in postgres ? ` (skipped: ${postgres.skip})` : ''}`, () => {
  const dir = tempDir()
  let database: { url: string; drop(): Promise<void> }
  let tenantry: Tenantry

  beforeAll(async () => {
    if ('skip' in postgres) return
    database = await createTestDatabase(postgres.url, 'tenantry_intro')
    tenantry = await createTenantry({
      home: dir.path,
      migrations: { tenant: fileURLToPath(new URL('../examples/cv-builder/migrations', import.meta.url)) },
      dataSources: [{ id: dataSource, engine: 'postgres', url: database.url, isolations: ['schema'] }],
      defaults: { isolation: 'schema', dataSource },
    })
    for (const slug of ['intro_a', 'intro_b', 'intro_c']) await tenantry.createTenant({ slug })
  })

  afterAll(async () => {
    await tenantry?.close()
    await database?.drop()
    if (!('skip' in postgres)) await dropAppRoles(postgres.url, [dataSource])
    dir.cleanup()
  })

  it("sees the tenant's own schema only, with its columns", async () => {
    const tenant = (await tenantry.catalog.findTenantBySlug('intro_b'))!
    const engine = (await tenantry.dataSources.engine(dataSource)) as PostgresEngine
    const handle = engine.open({ tenantId: tenant.id, ...tenant.placement }, 'admin')
    try {
      const tables = await handle.db.introspection.getTables()
      expect(tables.map((t) => [t.schema, t.name]).sort()).toEqual(
        ['highlights', 'jobs', 'tenantry_migration', 'tenantry_migration_lock'].map((name) => [tenant.placement.locator, name]),
      )
      const jobs = tables.find((t) => t.name === 'jobs')!
      expect(jobs.columns.find((c) => c.name === 'id')).toMatchObject({ isAutoIncrementing: true, isNullable: false })
      expect(jobs.columns.find((c) => c.name === 'location')).toMatchObject({ dataType: 'text', isNullable: true })
      expect((await handle.db.introspection.getSchemas()).map((s) => s.name)).toEqual([tenant.placement.locator])
    } finally {
      await handle.close()
    }
  })
})
