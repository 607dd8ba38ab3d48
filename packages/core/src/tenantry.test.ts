import { join } from 'node:path'
import { afterAll, expect, it } from 'vitest'
import { createTenantry } from './tenantry.js'
import { tempDir } from './testing/services.js'

const dir = tempDir()
afterAll(() => dir.cleanup())

it('migrationStatus counts applied migrations over the same tenants as its total', async () => {
  // Regression: a deleted (unpurged) tenant's ledger rows counted as applied, so appliedTenants exceeded tenants.
  const tenantry = await createTenantry({
    home: join(dir.path, 'home'),
    migrations: { tenant: { '0001_notes': { up: (db) => db.schema.createTable('notes').addColumn('id', 'integer').execute() } } },
  })
  try {
    await tenantry.tenants.create({ slug: 'kept' })
    await tenantry.tenants.create({ slug: 'gone' })
    await tenantry.tenants.delete('gone')
    const status = await tenantry.migrationStatus()
    expect(status.tenants).toBe(1)
    expect(status.migrations).toEqual([{ name: '0001_notes', appliedTenants: 1, pendingTenants: 0 }])
  } finally {
    await tenantry.close()
  }
})
