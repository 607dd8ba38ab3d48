import { execFileSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTenantry, type Tenantry, type TenantryConfig } from 'tenantry'
import { createManagedAdmin, createTestDatabase, dropAppRoles, findPostgres, tempDir } from 'tenantry/testing'

// Seed 003's limited user: a per-tenant read-only Postgres role and URL that psql can use.
const postgres = await findPostgres()

// With a superuser admin and with one as managed Postgres gives it (LOGIN CREATEDB CREATEROLE only).
for (const admin of ['superuser', 'managed'] as const) {
  const dataSource = `pg_ro_${admin === 'managed' ? 'm' : 's'}_${process.pid}`

  describe.skipIf('skip' in postgres)(`per-tenant read-only Postgres access, ${admin} admin${'skip' in postgres ? ` (skipped: ${postgres.skip})` : ''}`, () => {
    const dir = tempDir()
    const migrations = join(dir.path, 'migrations')
    let database: { url: string; drop(): Promise<void> }
    let config: TenantryConfig
    let tenantry: Tenantry

    beforeAll(async () => {
      if ('skip' in postgres) return
      database = admin === 'managed' ? await createManagedAdmin(postgres.url) : await createTestDatabase(postgres.url, 'tenantry_ro')
      execFileSync('cp', ['-r', fileURLToPath(new URL('../examples/cv-builder/migrations', import.meta.url)), migrations])
      config = {
        home: join(dir.path, 'home'),
        migrations: { tenant: migrations },
        dataSources: [
          { id: 'local', engine: 'sqlite' },
          { id: dataSource, engine: 'postgres', url: database.url },
        ],
        defaults: { isolation: 'schema', dataSource },
      }
      tenantry = await createTenantry(config)
      for (const [slug, isolation] of [['ro_schema', 'schema'], ['ro_other', 'schema'], ['ro_db', 'database'], ['ro_rows', 'row']] as const) {
        await tenantry.createTenant({ slug, isolation })
        await tenantry.withTenant(slug, () => tenantry.db().insertInto('jobs').values({ company: slug, title: 'x', start_date: '2020-01-01' }).execute())
      }
      await tenantry.createTenant({ slug: 'ro_file', isolation: 'database', dataSource: 'local' })
    })

    afterAll(async () => {
      const tenants = tenantry ? await tenantry.catalog.listTenants() : []
      if (tenantry) for (const t of tenants) await tenantry.deleteTenant(t.slug, { purge: true }).catch(() => {})
      await tenantry?.close()
      await database?.drop()
      if (!('skip' in postgres)) await dropAppRoles(postgres.url, [dataSource])
      dir.cleanup()
    })

    const psql = (url: string, statement: string) =>
      execFileSync('psql', [url, '-XAtq', '-v', 'ON_ERROR_STOP=1', '-c', statement], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim()

    const refused = async (url: string, statement: string) => {
      const client = new pg.Client({ connectionString: url })
      await client.connect()
      try {
        await client.query(statement)
        return false
      } catch {
        return true
      } finally {
        await client.end()
      }
    }

    it('reads its own schema tenant with psql, and cannot write, change schema or read another tenant', async () => {
      const access = (await tenantry.readOnlyAccess('ro_schema'))!
      expect(access.url).toMatch(/^postgres:\/\/t_t[a-z2-7]{19}_ro:/)
      expect(psql(access.url, 'select company from jobs')).toBe('ro_schema')
      const other = (await tenantry.catalog.findTenantBySlug('ro_other'))!.placement.locator
      for (const statement of [
        "insert into jobs (company, title, start_date) values ('x', 'x', 'x')",
        'set default_transaction_read_only = off; delete from jobs',
        'update jobs set title = 1',
        'create table evil (id int)',
        'drop table jobs',
        `select * from "${other}".jobs`,
        'select * from tenant_rows.jobs',
        'select * from public.tenants',
        'create temp table scratch (id int)',
      ]) {
        expect(await refused(access.url, statement), statement).toBe(true)
      }
      expect(await tenantry.readOnlyAccess('ro_schema')).toEqual(access) // the same URL again
    })

    it('follows later migrations: a table added by the fan-out is readable too', async () => {
      writeFileSync(join(migrations, '0003_notes.sql'), 'CREATE TABLE notes (id integer primary key, body text);\n')
      await tenantry.close()
      tenantry = await createTenantry(config)
      expect((await tenantry.migrate()).failed).toBe(0)
      const access = (await tenantry.readOnlyAccess('ro_schema'))!
      expect(psql(access.url, 'select count(*) from notes')).toBe('0')
    })

    it('reads its own database tenant, with no temporary tables', async () => {
      const access = (await tenantry.readOnlyAccess('ro_db'))!
      expect(new URL(access.url).pathname).toMatch(/^\/t_t[a-z2-7]{19}$/)
      expect(psql(access.url, 'select company from jobs')).toBe('ro_db')
      expect(await refused(access.url, 'create temp table scratch (id int)')).toBe(true)
      expect(await refused(access.url, "insert into jobs (company, title, start_date) values ('x', 'x', 'x')")).toBe(true)
      // Postgres lets any role connect to a database PUBLIC may connect to, and read its system
      // catalogs; tenant data there stays out of reach.
      const mainDb = new URL(access.url)
      mainDb.pathname = new URL(database.url).pathname
      const schemaTenant = (await tenantry.catalog.findTenantBySlug('ro_other'))!.placement.locator
      expect(await refused(mainDb.toString(), `select * from "${schemaTenant}".jobs`)).toBe(true)
      expect(await refused(mainDb.toString(), 'select * from tenant_rows.jobs')).toBe(true)
    })

    it('is refused for row and SQLite tenants, and can be revoked', async () => {
      await expect(tenantry.readOnlyAccess('ro_rows')).rejects.toMatchObject({ code: 'UNSUPPORTED_PLACEMENT' })
      await expect(tenantry.readOnlyAccess('ro_file')).rejects.toMatchObject({ code: 'UNSUPPORTED_PLACEMENT' })
      const access = (await tenantry.readOnlyAccess('ro_schema'))!
      await tenantry.readOnlyAccess('ro_schema', { revoke: true })
      await expect(new pg.Client({ connectionString: access.url }).connect()).rejects.toThrow(/role .* does not exist/)
    })
  })
}
