import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTenantry, type Tenantry, type TenantryConfig } from 'tenantry'
import { createManagedAdmin, createTestDatabase, dropAppRoles, findPostgres, tempDir } from 'tenantry/testing'

const migrations = fileURLToPath(new URL('../examples/cv-builder/migrations', import.meta.url))
const postgres = await findPostgres()
const PASSWORD = 'byod-Pa55word-never-at-rest'

/** The admin URL of a test database, with a password that trust auth ignores but that must never be stored. */
const withPassword = (url: string) => {
  const u = new URL(url)
  u.password = PASSWORD
  return u.toString()
}

describe.skipIf('skip' in postgres)(`several data sources, placement and BYOD${'skip' in postgres ? ` (skipped: ${postgres.skip})` : ''}`, () => {
  const dir = tempDir()
  const suffix = process.pid
  const ids = { a: `pg_a_${suffix}`, b: `pg_b_${suffix}`, byod: `byod_${suffix}` }
  let databases: Array<{ url: string; drop(): Promise<void> }> = []
  let config: TenantryConfig
  let tenantry: Tenantry

  beforeAll(async () => {
    if ('skip' in postgres) return
    databases = await Promise.all([1, 2, 3].map(() => createTestDatabase(postgres.url, 'tenantry_ds')))
    config = {
      home: dir.path,
      migrations: { tenant: migrations },
      dataSources: [
        { id: 'local', engine: 'sqlite', capacity: 1 },
        { id: ids.a, engine: 'postgres', url: withPassword(databases[0]!.url), isolations: ['schema'] },
        { id: ids.b, engine: 'postgres', url: databases[1]!.url, isolations: ['schema'], capacity: 2 },
      ],
      defaults: { isolation: 'schema', dataSource: ids.a, placement: 'least-loaded' },
    }
    tenantry = await createTenantry(config)
  })

  afterAll(async () => {
    await tenantry?.close()
    for (const db of databases) await db.drop()
    if (!('skip' in postgres)) await dropAppRoles(postgres.url, Object.values(ids))
    dir.cleanup()
  })

  it('spreads new tenants over shared data sources with room, least loaded first', async () => {
    const placed: string[] = []
    for (const slug of ['p1', 'p2', 'p3', 'p4']) placed.push((await tenantry.createTenant({ slug })).placement.dataSourceId)
    // b has a capacity of 2; a has none; both start empty.
    expect(placed.filter((id) => id === ids.b)).toHaveLength(2)
    expect(placed.filter((id) => id === ids.a)).toHaveLength(2)
    expect((await tenantry.createTenant({ slug: 'p5' })).placement.dataSourceId).toBe(ids.a) // b is full now
    await expect(tenantry.createTenant({ slug: 'p6', dataSource: ids.b })).rejects.toMatchObject({
      code: 'UNSUPPORTED_PLACEMENT',
      message: expect.stringContaining('full'),
    })
    // The SQLite source offers database isolation only, and has room for one.
    const file = await tenantry.createTenant({ slug: 'on_sqlite', isolation: 'database' })
    expect(file.placement.dataSourceId).toBe('local')
    await expect(tenantry.createTenant({ slug: 'second_file', isolation: 'database' })).rejects.toMatchObject({ code: 'UNSUPPORTED_PLACEMENT' })
    await expect(tenantry.createTenant({ slug: 'no_row', isolation: 'row' })).rejects.toMatchObject({ code: 'UNSUPPORTED_PLACEMENT' })
    for (const slug of ['p1', 'p3', 'on_sqlite']) {
      await tenantry.withTenant(slug, () => tenantry.db().insertInto('jobs').values({ company: slug, title: 'x', start_date: '2020-01-01' }).execute())
      expect(await tenantry.withTenant(slug, () => tenantry.db().selectFrom('jobs').select('company').execute())).toEqual([{ company: slug }])
    }
  })

  it('adds a customer-owned (BYOD) server only after testing it, and keeps its credentials sealed', async () => {
    const url = withPassword(databases[2]!.url)
    const added = await tenantry.dataSources.add({ id: ids.byod, engine: 'postgres', url, mode: 'byod', isolations: ['schema', 'database'] })
    expect(added).toMatchObject({ id: ids.byod, mode: 'byod', config: { host: '127.0.0.1', user: 'postgres' } })
    expect(JSON.stringify(added.config)).not.toContain(PASSWORD)
    expect(await tenantry.dataSources.test(ids.byod)).toMatchObject({ engine: 'postgres', detail: expect.stringMatching(/^PostgreSQL /) })

    // Placement by policy never picks a BYOD server; naming it does.
    const tenant = await tenantry.createTenant({ slug: 'enterprise', dataSource: ids.byod })
    expect(tenant.placement).toMatchObject({ dataSourceId: ids.byod, isolation: 'schema' })
    await expect(tenantry.dataSources.add({ id: ids.byod, engine: 'postgres', url })).rejects.toMatchObject({ code: 'INVALID_IDENTIFIER' })

    // The password is nowhere in the catalog's files, and nowhere in the home directory.
    for (const file of readdirSync(dir.path).filter((f) => f.startsWith('catalog.db'))) {
      expect(readFileSync(join(dir.path, file)).includes(PASSWORD), file).toBe(false)
    }
  })

  it('refuses an unreachable or malformed data source and records nothing', async () => {
    await expect(
      tenantry.dataSources.add({ id: 'unreachable', engine: 'postgres', url: 'postgres://postgres@127.0.0.1:1/nope' }),
    ).rejects.toMatchObject({ code: 'DATA_SOURCE_NOT_FOUND' })
    await expect(tenantry.dataSources.add({ id: 'bad_url', engine: 'postgres', url: 'mysql://x@y/z' })).rejects.toMatchObject({
      code: 'INVALID_CONFIG',
    })
    await expect(
      tenantry.dataSources.add({ id: 'x"; drop schema public cascade; --', engine: 'postgres', url: databases[0]!.url }),
    ).rejects.toMatchObject({ code: 'INVALID_IDENTIFIER' })
    const known = (await tenantry.catalog.listDataSources()).map((s) => s.id)
    expect(known).not.toContain('unreachable')
    expect(known).not.toContain('bad_url')
  })

  it("refuses a server whose admin lacks Tenantry's privileges, naming each one, and accepts a managed-Postgres admin (issue 9)", async () => {
    const serverUrl = 'url' in postgres ? postgres.url : ''
    const loginOnly = `tenantry_login_only_${suffix}`
    const server = new pg.Client({ connectionString: serverUrl })
    await server.connect()
    const managed = await createManagedAdmin(serverUrl)
    try {
      await server.query(`CREATE ROLE ${loginOnly} LOGIN`)
      const url = new URL(databases[2]!.url)
      url.username = loginOnly
      const error = await tenantry.dataSources.add({ id: `weak_${suffix}`, engine: 'postgres', url: url.toString() }).catch((e: unknown) => e)
      expect(error).toMatchObject({ code: 'INVALID_CONFIG' })
      for (const missing of ['CREATEROLE', 'CREATEDB', 'CREATE on the database']) expect((error as Error).message).toContain(missing)
      expect((await tenantry.catalog.listDataSources()).map((s) => s.id)).not.toContain(`weak_${suffix}`)
      // LOGIN CREATEDB CREATEROLE and a database of its own, as RDS, Cloud SQL, Supabase or Neon give: enough.
      const added = await tenantry.dataSources.add({ id: `managed_${suffix}`, engine: 'postgres', url: managed.url, mode: 'dedicated' })
      expect(added).toBeDefined()
    } finally {
      await server.query(`DROP ROLE IF EXISTS ${loginOnly}`)
      await server.end()
      await managed.drop()
    }
  })

  it('cannot use a sealed credential copied onto another data source', async () => {
    const byod = (await tenantry.catalog.findDataSource(ids.byod))!
    await tenantry.catalog.db.updateTable('data_sources').set({ secret: byod.secret }).where('id', '=', ids.b).execute()
    const other = await createTenantry({ ...config, dataSources: [{ id: 'local', engine: 'sqlite' }], defaults: {} })
    try {
      await expect(other.dataSources.test(ids.b)).rejects.toMatchObject({ code: 'INVALID_CONFIG' })
    } finally {
      await other.close()
    }
  })
})
