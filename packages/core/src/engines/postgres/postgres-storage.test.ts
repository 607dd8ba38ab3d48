import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createManagedAdmin, dropAppRoles, findPostgres, tempDir, type ManagedAdmin } from '../../testing/services.js'
import { createTenantry, type Tenantry } from '../../tenantry.js'

const postgres = await findPostgres()

// A row tenant's storage was measured by the admin without naming the tenant: under FORCE ROW
// LEVEL SECURITY a managed admin (no superuser, no BYPASSRLS) saw none of its rows, so the tenant
// always measured 0 bytes and its storage quota never refused a write.
describe.skipIf('skip' in postgres)(`row tenants' storage under a managed admin${'skip' in postgres ? ` (skipped: ${postgres.skip})` : ''}`, () => {
  const dir = tempDir('tenantry-pg-storage-')
  const dataSource = `pg_storage_${process.pid}`
  let admin: ManagedAdmin
  let tenantry: Tenantry

  beforeAll(async () => {
    if ('skip' in postgres) return
    admin = await createManagedAdmin(postgres.url)
    tenantry = await createTenantry({
      home: dir.path,
      dataSources: [{ id: dataSource, engine: 'postgres', url: admin.url, isolations: ['row'] }],
      defaults: { isolation: 'row', dataSource },
      migrations: { tenant: { '0001_notes': { up: (k: any) => k.schema.createTable('notes').addColumn('id', 'integer', (c: any) => c.primaryKey()).addColumn('body', 'text').execute() } } },
      quotas: { storageCheckIntervalMs: 1 },
    })
    await tenantry.createTenant({ slug: 'rowco' })
    await tenantry.createTenant({ slug: 'other' })
  })

  afterAll(async () => {
    if ('skip' in postgres) return
    await tenantry?.close()
    await dropAppRoles(postgres.url, [dataSource]).catch(() => {})
    await admin?.drop()
    dir.cleanup()
  })

  it('measures a row tenant’s own rows, growing with them, and the storage quota refuses writes past it', async () => {
    const tenant = (await tenantry.catalog.findTenantBySlug('rowco'))!
    const insert = (slug: string, id: number) => tenantry.withTenant(slug, () => tenantry.db().insertInto('notes').values({ id, body: 'x'.repeat(20_000) }).execute())
    const empty = (await tenantry.storageBytes(tenant))!
    expect(empty).toBe(0)
    await insert('rowco', 1)
    const one = (await tenantry.storageBytes(tenant))!
    expect(one).toBeGreaterThan(0)
    await insert('rowco', 2)
    const two = (await tenantry.storageBytes(tenant))!
    expect(two).toBeGreaterThan(one)
    // Another tenant's rows in the same tables are not counted.
    await insert('other', 1)
    await insert('other', 2)
    await insert('other', 3)
    expect(await tenantry.storageBytes(tenant)).toBe(two)

    await tenantry.assertStorageQuota(tenant.id)
    await tenantry.quotas.set('rowco', { storageBytes: two })
    await expect(tenantry.assertStorageQuota(tenant.id)).rejects.toMatchObject({ code: 'QUOTA_EXCEEDED', details: { used: two } })
    await tenantry.quotas.set('rowco', { storageBytes: two * 10 })
    await tenantry.assertStorageQuota(tenant.id)
  })
})
