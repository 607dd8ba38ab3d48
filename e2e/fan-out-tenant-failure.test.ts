import { copyFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { tempDir } from 'tenantry/testing'
import { ALL_MIGRATIONS, OLD_MIGRATIONS, copyExampleMigrations, createHome, openTenantry, readHome, writeNewMigrations } from './fixtures/homes.js'

const TENANTS = 8
const EVERY_MIGRATION = [...ALL_MIGRATIONS, '0005_unique_company']

describe('a fan-out where some tenants fail', () => {
  const root = tempDir('tenantry-fan-out-failure-')
  const home = join(root.path, 'home')
  const migrations = join(root.path, 'migrations')

  beforeAll(async () => {
    copyExampleMigrations(migrations)
    await createHome(home, migrations, TENANTS)
    writeNewMigrations(migrations)
    writeFileSync(join(migrations, '0005_unique_company.sql'), 'CREATE UNIQUE INDEX jobs_company ON jobs (company);\n')
  })

  afterAll(() => root.cleanup())

  it('records the failures, rolls those tenants back whole, migrates the rest, and converges once fixed', async () => {
    const before = readHome(home)
    const dupe = before.tenants.find((t) => t.slug === 'tenant_03')!
    const broken = before.tenants.find((t) => t.slug === 'tenant_05')!
    const brokenFile = join(home, 'tenants', `${broken.id}.db`)
    copyFileSync(brokenFile, `${brokenFile}.bak`)
    writeFileSync(brokenFile, 'not a database '.repeat(512))

    const tenantry = await openTenantry(home, migrations)
    try {
      await tenantry.withTenant('tenant_03', () =>
        tenantry.db().insertInto('jobs').values({ company: 'tenant_03', title: 'Again', start_date: '2021-01-01' }).execute(),
      )
      const report = await tenantry.migrate({ concurrency: 4 })
      expect(report).toMatchObject({ total: TENANTS, succeeded: TENANTS - 2, failed: 2 })
      const bySlug = new Map(report.results.map((r) => [r.slug, r]))
      expect(bySlug.get('tenant_03')).toMatchObject({ status: 'error', applied: [], error: expect.stringContaining('UNIQUE constraint failed: jobs.company') })
      expect(bySlug.get('tenant_05')).toMatchObject({ status: 'error', applied: [], error: expect.stringContaining('not a database') })
      for (const result of report.results.filter((r) => r.slug !== 'tenant_03' && r.slug !== 'tenant_05')) {
        expect(result).toMatchObject({ status: 'success', applied: [...EVERY_MIGRATION.slice(2)] })
      }
      const failures = (await tenantry.catalog.auditLog(dupe.id)).filter((e) => e.action === 'tenant.migrate.failed')
      expect(failures).toEqual([expect.objectContaining({ details: { error: expect.stringContaining('UNIQUE constraint failed') } })])

      const state = readHome(home)
      for (const tenant of state.tenants) {
        expect(tenant.status, tenant.slug).toBe('ready')
        if (tenant.slug === 'tenant_05') {
          expect(tenant.quickCheck).toBe('file is not a database')
          expect(tenant.ledger).toEqual(OLD_MIGRATIONS)
          continue
        }
        if (tenant.slug === 'tenant_03') {
          // 0003 and 0004 ran before 0005 failed, in the same transaction: none of them stuck.
          expect(tenant.applied).toEqual(OLD_MIGRATIONS)
          expect(tenant.ledger).toEqual(OLD_MIGRATIONS)
          expect(tenant.jobColumns).not.toContain('remote')
          expect(tenant.objects.filter((o) => /jobs_remote|job_tags|jobs_company/.test(o))).toEqual([])
          expect(tenant.jobs).toBe(51)
          expect(tenant.quickCheck).toBe('ok')
          continue
        }
        expect(tenant.applied, tenant.slug).toEqual(EVERY_MIGRATION)
        expect(tenant.ledger, tenant.slug).toEqual(EVERY_MIGRATION)
        expect(tenant.objects, tenant.slug).toContain('index:jobs_company')
      }

      // Fix both and run again: only the two that failed are behind, and both catch up.
      await tenantry.withTenant('tenant_03', () => tenantry.db().deleteFrom('jobs').where('title', '=', 'Again').execute())
      copyFileSync(`${brokenFile}.bak`, brokenFile)
      const rerun = await tenantry.migrate({ concurrency: 4 })
      expect(rerun).toMatchObject({ total: TENANTS, upToDate: TENANTS - 2, succeeded: 2, failed: 0 })
      expect(rerun.results.map((r) => r.slug).sort()).toEqual(['tenant_03', 'tenant_05'])
    } finally {
      await tenantry.close()
    }

    const after = readHome(home)
    expect(after.lock).toBeUndefined()
    for (const tenant of after.tenants) {
      expect(tenant.applied, tenant.slug).toEqual(EVERY_MIGRATION)
      expect(tenant.ledger, tenant.slug).toEqual(EVERY_MIGRATION)
      expect(tenant.jobColumns, tenant.slug).toContain('remote')
      expect(tenant.objects, tenant.slug).toEqual(expect.arrayContaining(['index:jobs_company', 'table:job_tags']))
      expect(tenant.ownRow, tenant.slug).toBe(true)
    }
  })
})
