import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTenantry, runDoctor, type Isolation, type Tenantry, type TenantryConfig, type TenantRecord } from 'tenantry'
import {
  createManagedAdmin,
  createTestDatabase,
  findPostgres,
  findPostgresBinaries,
  startPostgresServer,
  tempDir,
  type ManagedAdmin,
  type PostgresServer,
  type TestDatabase,
} from 'tenantry/testing'
import { runCliCaptured } from '@tenantry/cli/testing'
import { copyExampleMigrations, OLD_MIGRATIONS } from './fixtures/homes.js'

// Tenants spread over three Postgres servers this suite starts for itself (initdb + pg_ctl), with
// the catalog on the machine's Postgres: placement, fan-out migrations, moves between servers and
// doctor across all of them, and one server going down and coming back.
const postgres = await findPostgres()
const binaries = findPostgresBinaries()
const skip = 'skip' in postgres ? postgres.skip : 'skip' in binaries ? binaries.skip : undefined
const catalogServer = 'url' in postgres ? postgres.url : ''

const IDS = ['pg1', 'pg2', 'pg3'] as const
type ServerId = (typeof IDS)[number]
/** Nine creates, no data source named: with least-loaded placement each server gets one of each isolation. */
const ISOLATIONS: Isolation[] = ['schema', 'database', 'row', 'database', 'row', 'schema', 'row', 'schema', 'database']

/** The migrations the suite adds after the tenants exist: a column and index on a table, a new table. */
const NEW_MIGRATIONS = {
  '0003_job_remote.sql': 'ALTER TABLE jobs ADD COLUMN remote integer NOT NULL DEFAULT 0;\nCREATE INDEX jobs_remote ON jobs (remote, start_date);\n',
  // No foreign key to jobs: see the last test.
  '0004_job_tags.sql': 'CREATE TABLE job_tags (job_id integer NOT NULL, tag text NOT NULL, PRIMARY KEY (job_id, tag));\nCREATE INDEX job_tags_tag ON job_tags (tag);\n',
}

describe.skipIf(skip)(`tenants spread over several Postgres servers${skip ? ` (skipped: ${skip})` : ''}`, () => {
  const dir = tempDir('tenantry-multi-pg-')
  const migrations = join(dir.path, 'migrations')
  const configFile = join(dir.path, 'tenantry.config.mjs')
  const servers = new Map<ServerId, PostgresServer>()
  const admins = new Map<ServerId, ManagedAdmin>()
  let catalog: TestDatabase
  let config: TenantryConfig
  let tenantry: Tenantry

  /** Runs SQL on one server as its superuser, in the data source's own database unless told otherwise. */
  async function onServer(id: ServerId, sql: string, params: unknown[] = [], database = admins.get(id)!.role): Promise<pg.QueryResultRow[]> {
    const url = new URL(servers.get(id)!.url)
    url.pathname = `/${database}`
    const client = new pg.Client({ connectionString: url.toString() })
    await client.connect()
    try {
      return (await client.query(sql, params)).rows
    } finally {
      await client.end()
    }
  }

  const tenants = () => tenantry.catalog.listTenants()
  const on = async (id: ServerId) => (await tenants()).filter((t) => t.placement.dataSourceId === id)
  const companies = (slug: string) =>
    tenantry.withTenant(slug, () => tenantry.db().selectFrom('jobs').select('company').orderBy('company').execute()).then((rows) => rows.map((r) => r.company as string))

  /** A new process's view: the migration set is read when Tenantry starts. */
  async function reopen(): Promise<void> {
    await tenantry.close()
    tenantry = await createTenantry(config)
  }

  beforeAll(async () => {
    if (skip) return
    const started = await Promise.all(IDS.map(() => startPostgresServer()))
    IDS.forEach((id, i) => servers.set(id, started[i]!))
    // Each data source's admin is as managed Postgres gives one (LOGIN CREATEDB CREATEROLE), no superuser.
    for (const id of IDS) admins.set(id, await createManagedAdmin(servers.get(id)!.url))
    catalog = await createTestDatabase(catalogServer, 'tenantry_multi_catalog')
    copyExampleMigrations(migrations)
    config = {
      home: join(dir.path, 'home'),
      catalogUrl: catalog.url,
      migrations: { tenant: migrations },
      dataSources: [{ id: 'pg1', engine: 'postgres', url: admins.get('pg1')!.url }],
      defaults: { isolation: 'schema', dataSource: 'pg1', placement: 'least-loaded' },
      // A move keeps the old copy for the placement TTL (other processes may still trust it): short here.
      router: { placementTtlMs: 1000 },
    }
    writeFileSync(configFile, `export default ${JSON.stringify(config)}\n`)
    tenantry = await createTenantry(config)
  })

  afterAll(async () => {
    await tenantry?.close()
    // The servers go with everything on them (roles included); only the catalog is on the shared server.
    for (const server of servers.values()) await server.stop()
    await catalog?.drop()
    dir.cleanup()
  })

  it('registers the other servers as data sources, through the API and through `tenantry data-source add`', async () => {
    await tenantry.dataSources.add({ id: 'pg2', engine: 'postgres', url: admins.get('pg2')!.url })
    const cli = await runCliCaptured(['--config', configFile, 'data-source', 'add', 'pg3', '--engine', 'postgres', '--url-env', 'PG3_ADMIN_URL', '--json'], {
      env: { PG3_ADMIN_URL: admins.get('pg3')!.url, TENANTRY_CATALOG_URL: undefined, TENANTRY_HOME: undefined },
    })
    expect(cli.code, cli.stderr).toBe(0)
    expect(JSON.parse(cli.stdout)).toMatchObject({ id: 'pg3', engine: 'postgres', mode: 'shared', config: { port: servers.get('pg3')!.port } })
    const sources = await tenantry.catalog.listDataSources()
    expect(sources.map((s) => [s.id, s.mode])).toEqual(IDS.map((id) => [id, 'shared']))
    for (const id of IDS) expect(await tenantry.dataSources.test(id)).toMatchObject({ engine: 'postgres', detail: expect.stringMatching(/^PostgreSQL 1\d/) })
  })

  it('places new tenants on the least-loaded server: each server holds schema, database and row tenants, each tenant only its own rows', async () => {
    const created: TenantRecord[] = []
    for (const [i, isolation] of ISOLATIONS.entries()) created.push(await tenantry.createTenant({ slug: `${isolation}_${i}`, isolation }))
    for (const id of IDS) {
      const here = created.filter((t) => t.placement.dataSourceId === id)
      expect(here.map((t) => t.placement.isolation).sort(), id).toEqual(['database', 'row', 'schema'])
    }
    for (const tenant of created) {
      await tenantry.withTenant(tenant.slug, () =>
        tenantry.db().insertInto('jobs').values({ company: tenant.slug, title: 'x', start_date: '2020-01-01' }).execute(),
      )
    }
    for (const tenant of created) expect(await companies(tenant.slug)).toEqual([tenant.slug])

    // The storage is where the catalog says, on that server and no other.
    for (const tenant of created) {
      const { dataSourceId, isolation, locator } = tenant.placement
      for (const id of IDS) {
        const holds =
          isolation === 'schema'
            ? (await onServer(id, 'SELECT 1 FROM pg_namespace WHERE nspname = $1', [locator])).length > 0
            : isolation === 'database'
              ? (await onServer(id, 'SELECT 1 FROM pg_database WHERE datname = $1', [locator])).length > 0
              : (await onServer(id, "SELECT 1 FROM pg_tables WHERE schemaname = 'tenant_rows' AND tablename = 'jobs'")).length > 0 &&
                (await onServer(id, 'SELECT 1 FROM tenant_rows.jobs WHERE tenant_id = $1', [tenant.id])).length > 0
        expect(holds, `${tenant.slug} on ${id}`).toBe(id === dataSourceId)
      }
    }
  })

  it('keeps the app role and the tenant roles least-privileged on every server, and doctor finds all clear', async () => {
    for (const id of IDS) {
      const roles = await onServer(
        id,
        `SELECT rolname, rolsuper, rolcreaterole, rolcreatedb, rolbypassrls, rolreplication FROM pg_roles
         WHERE rolname = $1 OR rolname = $2 OR rolname LIKE 't\\_%\\_app'`,
        [`tenantry_app_${id}`, admins.get(id)!.role],
      )
      expect(roles.map((r) => r.rolname).sort(), id).toEqual([admins.get(id)!.role, `tenantry_app_${id}`, ...(await on(id)).map((t) => `t_${t.id}_app`)].sort())
      for (const role of roles) {
        expect(role.rolsuper, role.rolname).toBe(false)
        expect(role.rolbypassrls, role.rolname).toBe(false)
        expect(role.rolreplication, role.rolname).toBe(false)
        // Only the admin creates roles and databases.
        expect(role.rolcreaterole && role.rolcreatedb, role.rolname).toBe(role.rolname === admins.get(id)!.role)
      }
      // The app role owns nothing in the data source's database.
      const owned = await onServer(id, `SELECT count(*)::int AS n FROM pg_class WHERE relowner = (SELECT oid FROM pg_roles WHERE rolname = $1)`, [`tenantry_app_${id}`])
      expect(owned).toEqual([{ n: 0 }])
    }
    const checks = await runDoctor(tenantry)
    expect(checks.filter((c) => c.status !== 'ok')).toEqual([])
    for (const id of IDS) expect(checks.find((c) => c.name === `${id}: app role attributes`)?.status, id).toBe('ok')
  })

  it('applies new migrations on every server in one fan-out', async () => {
    for (const [file, text] of Object.entries(NEW_MIGRATIONS)) writeFileSync(join(migrations, file), text)
    await reopen()
    const report = await tenantry.migrate({ concurrency: 3 })
    expect(report.results.filter((r) => r.status !== 'success')).toEqual([])
    expect(report).toMatchObject({ total: ISOLATIONS.length, failed: 0, succeeded: ISOLATIONS.length })
    const added = Object.keys(NEW_MIGRATIONS).map((file) => file.replace(/\.sql$/, ''))
    for (const result of report.results) expect(result.applied, result.slug).toEqual(added)
    for (const tenant of await tenants()) {
      expect((await tenantry.catalog.ledger(tenant.id)).map((l) => l.migration)).toEqual(expect.arrayContaining([...OLD_MIGRATIONS, ...added]))
      const jobs = await tenantry.withTenant(tenant.slug, () => tenantry.db().selectFrom('jobs').select(['id', 'remote']).execute())
      expect(jobs).toEqual([{ id: expect.anything(), remote: 0 }])
      await tenantry.withTenant(tenant.slug, () => tenantry.db().insertInto('job_tags').values({ job_id: jobs[0]!.id, tag: tenant.slug }).execute())
    }
    expect(await tenantry.migrate()).toMatchObject({ upToDate: ISOLATIONS.length, results: [] })
  })

  it('moves tenants of each isolation from one server to another, rows and all', async () => {
    const moves: Array<[Isolation, ServerId, ServerId]> = [
      ['schema', 'pg1', 'pg2'],
      ['row', 'pg2', 'pg1'],
      ['database', 'pg3', 'pg1'],
    ]
    for (const [isolation, from, to] of moves) {
      const tenant = (await on(from)).find((t) => t.placement.isolation === isolation)!
      const more = Array.from({ length: 40 }, (_, i) => ({ company: `${tenant.slug}_${String(i).padStart(2, '0')}`, title: 'y', start_date: '2021-01-01' }))
      await tenantry.withTenant(tenant.slug, () => tenantry.db().insertInto('jobs').values(more).execute())
      const before = await companies(tenant.slug)

      const moved = await tenantry.tenants.move(tenant.slug, { dataSource: to })
      expect(moved, `${isolation} ${from} → ${to}`).toMatchObject({ from: { dataSourceId: from, isolation }, to: { dataSourceId: to, isolation }, verified: true })
      expect(moved.rows.jobs).toBe(41)
      expect(await companies(tenant.slug)).toEqual(before)
      expect(await tenantry.withTenant(tenant.slug, () => tenantry.db().selectFrom('job_tags').select('tag').execute())).toEqual([{ tag: tenant.slug }])
      const after = (await tenantry.catalog.findTenantBySlug(tenant.slug))!
      expect(after).toMatchObject({ status: 'ready', placement: { dataSourceId: to, isolation } })
      // Nothing of it is left on the server it left.
      const left =
        isolation === 'schema'
          ? await onServer(from, 'SELECT 1 FROM pg_namespace WHERE nspname = $1', [tenant.placement.locator])
          : isolation === 'database'
            ? await onServer(from, 'SELECT 1 FROM pg_database WHERE datname = $1', [tenant.placement.locator])
            : await onServer(from, 'SELECT 1 FROM tenant_rows.jobs WHERE tenant_id = $1', [tenant.id])
      expect(left, `${tenant.slug} left on ${from}`).toEqual([])
    }
    // Other tenants never noticed.
    for (const tenant of await tenants()) expect(await companies(tenant.slug)).toContain(tenant.slug)
    expect((await runDoctor(tenantry)).filter((c) => c.status !== 'ok')).toEqual([])
  })

  it("fails only a stopped server's tenants in a fan-out, keeps serving the others, and converges once it is back", async () => {
    writeFileSync(join(migrations, '0005_job_notes.sql'), 'ALTER TABLE jobs ADD COLUMN notes TEXT;\n')
    await reopen()
    // Open connections to every server first: the outage ends them under the pools' feet.
    for (const tenant of await tenants()) await companies(tenant.slug)
    const down = (await on('pg3')).map((t) => t.slug).sort()
    const up = (await tenants()).filter((t) => t.placement.dataSourceId !== 'pg3').map((t) => t.slug).sort()
    expect(down.length).toBeGreaterThan(0)
    await servers.get('pg3')!.shutDown('immediate')

    const report = await tenantry.migrate({ concurrency: 3 })
    expect(report.results.filter((r) => r.status === 'error').map((r) => r.slug).sort()).toEqual(down)
    expect(report.results.filter((r) => r.status === 'success').map((r) => r.slug).sort()).toEqual(up)
    for (const slug of up) {
      expect(await tenantry.withTenant(slug, () => tenantry.db().selectFrom('jobs').select('notes').execute())).not.toEqual([])
    }
    await expect(companies(down[0]!)).rejects.toThrow()
    const failing = (await runDoctor(tenantry)).filter((c) => c.status === 'fail')
    expect(failing.length).toBeGreaterThan(0)
    expect(failing.every((c) => c.dataSource === 'pg3'), JSON.stringify(failing)).toBe(true)
    // pg3 holds the fewest tenants, but it does not answer: least-loaded placement passes it over
    // for the next-least-loaded server, and the create succeeds there.
    const counts = await tenantry.catalog.placementCounts()
    expect(Math.min(...IDS.map((id) => counts.get(id) ?? 0))).toBe(counts.get('pg3'))
    const whileDown = await tenantry.createTenant({ slug: 'while_down' })
    expect(whileDown.status).toBe('ready')
    expect(whileDown.placement.dataSourceId).not.toBe('pg3')
    expect(await companies('while_down')).toEqual([])

    await servers.get('pg3')!.start()
    // Back up, it is the least loaded again and takes the next tenant.
    expect(await tenantry.createTenant({ slug: 'after_down' })).toMatchObject({ status: 'ready', placement: { dataSourceId: 'pg3' } })
    const rerun = await tenantry.migrate({ concurrency: 3 })
    expect(rerun.results.filter((r) => r.status !== 'success')).toEqual([])
    expect(rerun.results.map((r) => r.slug).sort()).toEqual(down)
    expect(await tenantry.migrate()).toMatchObject({ upToDate: ISOLATIONS.length + 2, results: [] })
    // Every tenant has the new column (the two created meanwhile have no rows).
    for (const tenant of await tenants()) await tenantry.withTenant(tenant.slug, () => tenantry.db().selectFrom('jobs').select('notes').execute())
    expect((await runDoctor(tenantry)).filter((c) => c.status !== 'ok')).toEqual([])
  })

  // The shared `jobs` is keyed (tenant_id, id) by the time a later migration runs: row isolation
  // makes `REFERENCES jobs (id)` composite before Postgres sees it (row-foreign-keys.ts), on every server.
  it('applies a later migration with a foreign key to an existing table to row tenants too', async () => {
    writeFileSync(join(migrations, '0006_job_links.sql'), 'CREATE TABLE job_links (id integer PRIMARY KEY, job_id integer NOT NULL REFERENCES jobs (id), url text NOT NULL);\n')
    await reopen()
    const report = await tenantry.migrate({ concurrency: 3 })
    expect(report.results.filter((r) => r.status === 'error' && !r.slug.startsWith('row_'))).toEqual([])
    expect(report.results.filter((r) => r.status !== 'success')).toEqual([])
  })
})
