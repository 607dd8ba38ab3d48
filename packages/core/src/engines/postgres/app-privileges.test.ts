import { sql } from 'kysely'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Catalog } from '../../catalog/catalog.js'
import { runDoctor } from '../../doctor/doctor.js'
import { writeFixtureMigrations, type FixtureDatabase } from '../../testing/fixture-migrations.js'
import { createManagedAdmin, createTestDatabase, dropAppRoles, dropDatabases, findPostgres, tempDir } from '../../testing/services.js'
import { createTenantry, type Tenantry } from '../../tenantry.js'
import type { Isolation } from '../engine.js'

const postgres = await findPostgres()

/** Postgres's "insufficient_privilege". */
const INSUFFICIENT_PRIVILEGE = '42501'

// Seed 003's app user: SELECT, INSERT and UPDATE, no DELETE. Under every isolation, with a
// superuser admin and with one as managed Postgres gives it.
for (const admin of ['superuser', 'managed'] as const) {
  for (const isolation of ['schema', 'database', 'row'] as const satisfies readonly Isolation[]) {
    describe.skipIf('skip' in postgres)(`appPrivileges without DELETE: postgres × ${isolation} (${admin} admin)${'skip' in postgres ? ` (skipped: ${postgres.skip})` : ''}`, () => {
      const dir = tempDir('tenantry-app-privileges-')
      const dataSource = `pg_priv_${admin === 'managed' ? 'm' : 's'}_${isolation}_${process.pid}`
      let data: { url: string; drop(): Promise<void> }
      let tenantry: Tenantry

      beforeAll(async () => {
        if ('skip' in postgres) return
        data = admin === 'managed' ? await createManagedAdmin(postgres.url) : await createTestDatabase(postgres.url, `tenantry_priv_${isolation}`)
        tenantry = await createTenantry({
          home: dir.path,
          migrations: { tenant: await writeFixtureMigrations(`${dir.path}/migrations`) },
          dataSources: [{ id: dataSource, engine: 'postgres', url: data.url, isolations: [isolation], appPrivileges: ['SELECT', 'INSERT', 'UPDATE'] }],
          defaults: { isolation, dataSource },
        })
        await tenantry.createTenant({ slug: 'seed_003' })
      })

      afterAll(async () => {
        if ('skip' in postgres) return
        const catalog = tenantry?.catalog as Catalog | undefined
        const tenants = (await catalog?.listTenants({ includePurged: true })) ?? []
        await tenantry?.close()
        await dropDatabases(postgres.url, tenants.filter((t) => t.placement.isolation === 'database').map((t) => t.placement.locator))
        await data?.drop()
        await dropAppRoles(postgres.url, [dataSource])
        dir.cleanup()
      })

      it('reads, inserts and updates, and a delete is refused by Postgres (42501) with the rows kept', async () => {
        await tenantry.withTenant('seed_003', async () => {
          const db = tenantry.db<FixtureDatabase>()
          await db.insertInto('notes').values([{ id: 1, title: 'one' }, { id: 2, title: 'two' }]).execute()
          await db.updateTable('notes').set({ title: 'uno' }).where('id', '=', 1).execute()
          await expect(db.deleteFrom('notes').where('id', '=', 2).execute()).rejects.toMatchObject({ code: INSUFFICIENT_PRIVILEGE })
          await expect(sql`delete from notes`.execute(db)).rejects.toMatchObject({ code: INSUFFICIENT_PRIVILEGE })
          await expect(sql`truncate notes`.execute(db)).rejects.toMatchObject({ code: INSUFFICIENT_PRIVILEGE })
          expect(await db.selectFrom('notes').select(['id', 'title']).orderBy('id').execute()).toEqual([
            { id: 1, title: 'uno' },
            { id: 2, title: 'two' },
          ])
        })
      })

      it('doctor checks the granted set, and fails a privilege granted beyond it', async () => {
        const privileges = async () => (await runDoctor(tenantry)).find((c) => c.name === `${dataSource}: app privileges`)
        expect(await privileges()).toMatchObject({ status: 'ok', detail: expect.stringContaining('SELECT, INSERT, UPDATE') })
        const [tenant] = await tenantry.catalog.listTenants()
        const role = isolation === 'row' ? `tenantry_rows_${dataSource}` : `t_${tenant!.id}_app`
        const where = new URL(data.url)
        if (isolation === 'database') where.pathname = `/${tenant!.placement.locator}`
        const schema = { schema: tenant!.placement.locator, database: 'public', row: 'tenant_rows' }[isolation]
        const client = new pg.Client({ connectionString: where.toString() })
        await client.connect()
        try {
          await client.query(`GRANT DELETE ON "${schema}".notes TO "${role}"`)
          expect(await privileges()).toMatchObject({ status: 'fail', detail: expect.stringContaining(`${role} has SELECT, INSERT, UPDATE, DELETE on ${schema}.notes`) })
        } finally {
          await client.query(`REVOKE DELETE ON "${schema}".notes FROM "${role}"`)
          await client.end()
        }
        expect(await privileges()).toMatchObject({ status: 'ok' })
      })
    })
  }
}

describe('appPrivileges config', () => {
  it('is checked strictly: known DML privileges, SELECT among them, no repeats', async () => {
    const dir = tempDir('tenantry-app-privileges-config-')
    try {
      for (const appPrivileges of [['SELECT', 'TRUNCATE'], ['INSERT'], ['SELECT', 'SELECT'], []]) {
        await expect(
          createTenantry({
            home: dir.path,
            dataSources: [{ id: 'pg_bad', engine: 'postgres', url: 'postgres://u@localhost:5432/d', appPrivileges: appPrivileges as never }],
          }),
        ).rejects.toMatchObject({ code: 'INVALID_CONFIG', message: expect.stringContaining('appPrivileges') })
      }
    } finally {
      dir.cleanup()
    }
  })
})
