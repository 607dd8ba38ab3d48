import { fileURLToPath } from 'node:url'
import { sql } from 'kysely'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTenantry, type Tenantry } from 'tenantry'
import { createTestDatabase, dropAppRoles, findPostgres, tempDir } from 'tenantry/testing'

const migrations = fileURLToPath(new URL('../examples/cv-builder/migrations', import.meta.url))
const postgres = await findPostgres()
const dataSource = `pg_rows_${process.pid}`
const appRole = `tenantry_app_${dataSource}`

describe.skipIf('skip' in postgres)(`row isolation on Postgres${'skip' in postgres ? ` (skipped: ${postgres.skip})` : ''}`, () => {
  const dir = tempDir()
  let database: { url: string; drop(): Promise<void> }
  let tenantry: Tenantry
  /** A direct connection as the app role, outside Tenantry: what a leaked credential could do. */
  let asApp: pg.Client

  beforeAll(async () => {
    if ('skip' in postgres) return
    database = await createTestDatabase(postgres.url, 'tenantry_rows')
    tenantry = await createTenantry({
      home: dir.path,
      migrations: { tenant: migrations },
      dataSources: [{ id: dataSource, engine: 'postgres', url: database.url, isolations: ['row'] }],
      defaults: { isolation: 'row', dataSource },
    })
    for (let t = 0; t < 20; t++) {
      await tenantry.createTenant({ slug: `rows_${t}` })
      await tenantry.withTenant(`rows_${t}`, () =>
        tenantry
          .db()
          .insertInto('jobs')
          .values(Array.from({ length: 100 }, (_, i) => ({ company: `c${t}_${i}`, title: 'x', start_date: '2020-01-01' })))
          .execute(),
      )
    }
    const url = new URL(database.url)
    url.username = appRole
    asApp = new pg.Client({ connectionString: url.toString() })
    await asApp.connect()
    const admin = new pg.Client({ connectionString: database.url })
    await admin.connect()
    await admin.query('ANALYZE tenant_rows.jobs')
    await admin.end()
  })

  afterAll(async () => {
    await asApp?.end()
    await tenantry?.close()
    await database?.drop()
    if (!('skip' in postgres)) await dropAppRoles(postgres.url, [dataSource])
    dir.cleanup()
  })

  it('keys every table, index and foreign key by tenant_id, with RLS enabled and forced', async () => {
    const admin = new pg.Client({ connectionString: database.url })
    await admin.connect()
    try {
      const tables = await admin.query(
        `SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'tenant_rows' AND relkind = 'r' AND relname NOT LIKE 'tenantry_%' ORDER BY relname`,
      )
      expect(tables.rows).toEqual([
        { relname: 'highlights', relrowsecurity: true, relforcerowsecurity: true },
        { relname: 'jobs', relrowsecurity: true, relforcerowsecurity: true },
      ])
      const indexes = await admin.query<{ indexdef: string }>(
        `SELECT indexdef FROM pg_indexes WHERE schemaname = 'tenant_rows' AND tablename IN ('jobs', 'highlights')`,
      )
      for (const { indexdef } of indexes.rows) expect(indexdef).toMatch(/\(tenant_id, /)
      const fk = await admin.query<{ def: string }>(
        `SELECT pg_get_constraintdef(oid) AS def FROM pg_constraint WHERE contype = 'f' AND conrelid = 'tenant_rows.highlights'::regclass`,
      )
      expect(fk.rows.map((r) => r.def)).toEqual([expect.stringMatching(/^FOREIGN KEY \(tenant_id, job_id\) REFERENCES tenant_rows\.jobs\(tenant_id, id\) ON DELETE CASCADE/)])
      const policies = await admin.query(`SELECT tablename, cmd, qual, with_check FROM pg_policies WHERE schemaname = 'tenant_rows'`)
      for (const policy of policies.rows) {
        expect(policy).toMatchObject({ cmd: 'ALL', qual: expect.stringContaining('tenant_id'), with_check: expect.stringContaining('tenant_id') })
      }
    } finally {
      await admin.end()
    }
  })

  it("uses the tenant-leading index for a tenant's query (EXPLAIN)", async () => {
    const plan = await tenantry.withTenant('rows_7', async () => {
      const id = (await tenantry.db().selectFrom('jobs').select('id').limit(1).executeTakeFirstOrThrow()).id
      return tenantry.db().selectFrom('jobs').selectAll().where('id', '=', id).explain()
    })
    const text = plan.map((row) => Object.values(row).join(' ')).join('\n')
    expect(text).toMatch(/Index (Only )?Scan using jobs_pkey/)
    expect(text).toMatch(/tenant_id = /)
    expect(text).not.toMatch(/Seq Scan/)
  })

  it('gives the shared app role no way in, even with the tenant setting (row tenants log in as their own roles)', async () => {
    const tenants = await tenantry.catalog.listTenants()
    const ids = tenants.map((t) => t.id)
    await expect(asApp.query('SELECT count(*)::int AS n FROM tenant_rows.jobs')).rejects.toThrow(/permission denied/)
    await asApp.query('BEGIN')
    await asApp.query(`SELECT set_config('tenantry.tenant_id', $1, true)`, [ids[0]])
    await expect(asApp.query(`INSERT INTO tenant_rows.jobs (company, title, start_date) VALUES ('forged', 'x', 'x')`)).rejects.toThrow(/permission denied/)
    await asApp.query('ROLLBACK')
    // Each tenant's raw SQL runs as its own role, which the policies key on.
    const own = await tenantry.withTenant('rows_1', () => sql<{ role: string; n: number }>`select current_user as role, count(*)::int as n from jobs`.execute(tenantry.db()))
    expect(own.rows).toEqual([{ role: `t_${tenants.find((t) => t.slug === 'rows_1')!.id}_app`, n: 100 }])
  })

  it('gives the app role no DDL and no ownership', async () => {
    for (const statement of [
      'CREATE TABLE tenant_rows.evil (id int)',
      'ALTER TABLE tenant_rows.jobs DISABLE ROW LEVEL SECURITY',
      'ALTER TABLE tenant_rows.jobs NO FORCE ROW LEVEL SECURITY',
      'DROP POLICY tenant_isolation ON tenant_rows.jobs',
      'DROP TABLE tenant_rows.highlights',
      'CREATE SCHEMA evil',
      'CREATE TABLE public.evil (id int)',
    ]) {
      await expect(asApp.query(statement), statement).rejects.toThrow(/permission denied|must be owner|must be the owner/)
    }
    const owned = await asApp.query(
      `SELECT count(*)::int AS n FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner WHERE r.rolname = current_user`,
    )
    expect(owned.rows).toEqual([{ n: 0 }])
    const role = await asApp.query(`SELECT rolsuper, rolbypassrls, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = current_user`)
    expect(role.rows).toEqual([{ rolsuper: false, rolbypassrls: false, rolcreatedb: false, rolcreaterole: false }])
  })

  it('refuses a forged tenant_id through the query builder too', async () => {
    const [a, b] = await tenantry.catalog.listTenants()
    await expect(
      tenantry.withTenant(a!.slug, () =>
        tenantry.db().insertInto('jobs').values({ tenant_id: b!.id, company: 'forged', title: 'x', start_date: 'x' }).execute(),
      ),
    ).rejects.toThrow(/row-level security/)
    const raw = await tenantry.withTenant(a!.slug, () => sql<{ n: number }>`select count(*)::int as n from jobs`.execute(tenantry.db()))
    expect(raw.rows).toEqual([{ n: 100 }])
  })

  it('purging a row tenant removes its rows and no one else’s', async () => {
    const before = await tenantry.withTenant('rows_3', () => tenantry.db().selectFrom('jobs').select('id').execute())
    expect(before).toHaveLength(100)
    await tenantry.withTenant('rows_3', async () => {
      await tenantry.db().insertInto('highlights').values({ job_id: before[0]!.id, content: 'h' }).execute()
    })
    await tenantry.deleteTenant('rows_3', { purge: true })
    const admin = new pg.Client({ connectionString: database.url })
    await admin.connect()
    try {
      const counts = await admin.query(`SELECT count(*)::int AS n, count(DISTINCT tenant_id)::int AS tenants FROM tenant_rows.jobs`)
      expect(counts.rows).toEqual([{ n: 1900, tenants: 19 }])
      expect((await admin.query(`SELECT count(*)::int AS n FROM tenant_rows.highlights`)).rows).toEqual([{ n: 0 }])
    } finally {
      await admin.end()
    }
  })
})
