import { fileURLToPath } from 'node:url'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Catalog, createTenantry, runDoctor, type Isolation, type Tenantry, type TenantRecord } from 'tenantry'
import { createManagedAdmin, createTestDatabase, dropAppRoles, dropDatabases, findPostgres, tempDir } from 'tenantry/testing'

// Issue 9: raw SQL through one tenant's TenantDb must not reach another's rows, and no app code may
// write Tenantry's migration records, under each isolation and with either kind of admin.

const migrations = fileURLToPath(new URL('../examples/cv-builder/migrations', import.meta.url))
const postgres = await findPostgres()

/** Postgres's "insufficient_privilege". */
const INSUFFICIENT_PRIVILEGE = '42501'

for (const admin of ['superuser', 'managed'] as const) {
  for (const isolation of ['schema', 'database', 'row'] as const satisfies readonly Isolation[]) {
    describe.skipIf('skip' in postgres)(`raw SQL boundary: postgres × ${isolation} (${admin} admin)`, () => {
      const serverUrl = 'url' in postgres ? postgres.url : ''
      const home = tempDir('tenantry-raw-sql-')
      const dataSource = `raw_${admin === 'managed' ? 'm' : 's'}_${isolation}_${process.pid}`
      let data: { url: string; drop(): Promise<void> }
      let tenantry: Tenantry
      let a: TenantRecord
      let b: TenantRecord

      beforeAll(async () => {
        data = admin === 'managed' ? await createManagedAdmin(serverUrl) : await createTestDatabase(serverUrl, 'tenantry_raw')
        tenantry = await createTenantry({
          home: home.path,
          catalogUrl: `${home.path}/catalog.db`,
          migrations: { tenant: migrations },
          dataSources: [{ id: dataSource, engine: 'postgres', url: data.url, isolations: [isolation] }],
          defaults: { isolation, dataSource },
        })
        a = await tenantry.createTenant({ slug: 'tenant_a' })
        b = await tenantry.createTenant({ slug: 'tenant_b' })
        for (const tenant of [a, b]) {
          await tenantry.withTenant(tenant.slug, () =>
            tenantry.db().insertInto('jobs').values({ company: `${tenant.slug} secret`, title: 'x', start_date: '2024-01-01' }).execute(),
          )
        }
      })

      afterAll(async () => {
        await tenantry?.close()
        const catalog = Catalog.open({ url: `${home.path}/catalog.db` })
        const tenants = await catalog.listTenants({ includePurged: true })
        await catalog.close()
        await dropDatabases(serverUrl, tenants.filter((t) => t.placement.isolation === 'database').map((t) => t.placement.locator))
        await data?.drop()
        await dropAppRoles(serverUrl, [dataSource])
        home.cleanup()
      })

      it('the app cannot delete migration records, and the next migration still runs (regression: issue 9, item 3)', async () => {
        await tenantry.withTenant(a.slug, async () => {
          for (const statement of [sql`delete from tenantry_migration`, sql`truncate tenantry_migration`, sql`insert into tenantry_migration_lock (id, is_locked) values ('x', 0)`]) {
            await expect(statement.execute(tenantry.db())).rejects.toMatchObject({ code: INSUFFICIENT_PRIVILEGE })
          }
          expect((await sql<{ n: number }>`select count(*)::int as n from tenantry_migration`.execute(tenantry.db())).rows[0]!.n).toBe(2)
        })
        expect((await tenantry.migrate()).failed).toBe(0)
      })

      if (isolation === 'schema') {
        it("raw SQL naming another tenant's schema fails with a permission error and returns nothing (regression: issue 9, item 2)", async () => {
          await tenantry.withTenant(a.slug, async () => {
            const other = sql.id(b.placement.locator)
            for (const statement of [sql`select company from ${other}.jobs`, sql`update ${other}.jobs set title = 'a was here'`, sql`delete from ${other}.jobs`]) {
              await expect(statement.execute(tenantry.db())).rejects.toMatchObject({ code: INSUFFICIENT_PRIVILEGE })
            }
            expect((await sql<{ company: string }>`select company from jobs`.execute(tenantry.db())).rows).toEqual([{ company: 'tenant_a secret' }])
          })
          await tenantry.withTenant(b.slug, async () => {
            expect(await tenantry.db().selectFrom('jobs').select(['company', 'title']).execute()).toEqual([{ company: 'tenant_b secret', title: 'x' }])
          })
        })
      }

      if (isolation === 'database') {
        it("raw SQL runs as the tenant's own role, which cannot connect to another tenant's database", async () => {
          await tenantry.withTenant(a.slug, async () => {
            const { rows } = await sql<{ role: string; other: boolean }>`
              select current_user as role, has_database_privilege(${b.placement.locator}, 'CONNECT') as other`.execute(tenantry.db())
            expect(rows).toEqual([{ role: `${a.placement.locator}_app`, other: false }])
          })
        })
      }

      if (isolation === 'row') {
        it("raw SQL that sets the tenant setting, or tries another tenant's role, reaches nothing of it (regression: issue 9, row isolation)", async () => {
          const roleOf = (t: TenantRecord) => `t_${t.id}_app`
          await tenantry.withTenant(a.slug, async () => {
            const db = tenantry.db()
            const outcome = await db.transaction().execute(async (trx) => {
              await sql`select set_config('tenantry.tenant_id', ${b.id}, true)`.execute(trx)
              return {
                seen: (await sql<{ company: string }>`select company from jobs`.execute(trx)).rows.map((r) => r.company),
                updated: (await sql`update jobs set title = 'a was here' where tenant_id = ${b.id}`.execute(trx)).numAffectedRows,
                deleted: (await sql`delete from jobs where tenant_id = ${b.id}`.execute(trx)).numAffectedRows,
              }
            })
            expect(outcome).toEqual({ seen: ['tenant_a secret'], updated: 0n, deleted: 0n })
            for (const statement of [sql`set role ${sql.id(roleOf(b))}`, sql`set session authorization ${sql.id(roleOf(b))}`]) {
              await expect(statement.execute(db)).rejects.toMatchObject({ code: INSUFFICIENT_PRIVILEGE })
            }
            const afterReset = await db.transaction().execute(async (trx) => {
              await sql`reset role`.execute(trx)
              return (await sql<{ role: string }>`select current_user as role`.execute(trx)).rows[0]!.role
            })
            expect(afterReset).toBe(roleOf(a))
            await expect(
              sql`insert into jobs (tenant_id, company, title, start_date) values (${b.id}, 'forged', 'x', '2024-01-01')`.execute(db),
            ).rejects.toMatchObject({ code: INSUFFICIENT_PRIVILEGE })
          })
          await tenantry.withTenant(b.slug, async () => {
            expect(await tenantry.db().selectFrom('jobs').select(['company', 'title']).execute()).toEqual([{ company: 'tenant_b secret', title: 'x' }])
          })
        })
      }

      it('doctor finds each tenant with its own login role, and raw SQL confined', async () => {
        const checks = await runDoctor(tenantry)
        expect(checks.find((c) => c.name === `${dataSource}: tenant roles`)).toMatchObject({ status: 'ok' })
        expect(checks.find((c) => c.name === `${dataSource}: raw SQL boundary`)).toMatchObject({ status: 'ok' })
        expect(checks.find((c) => c.name === `${dataSource}: tenant role memberships`)).toMatchObject({ status: 'ok' })
        expect(checks.filter((c) => c.dataSource === dataSource && c.status !== 'ok')).toEqual([])
      })
    })
  }
}
