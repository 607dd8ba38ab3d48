import { fileURLToPath } from 'node:url'
import { sql } from 'kysely'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Catalog, createTenantry, isTenantryError, type Tenantry, type TenantRecord } from 'tenantry'
import { createTestDatabase, dropAppRoles, dropDatabases, findPostgres, tempDir } from 'tenantry/testing'

// Isolation under load: many tenants interleaved on per-tenant pools, each logged in as the
// tenant's own role (schema and database isolation), with cancels and timeouts landing
// mid-transaction and the router's LRU closing and reopening pools. Every read must see its own
// tenant's rows and nothing else, and every connection must go back to its pool with no open
// transaction.

const migrations = fileURLToPath(new URL('../examples/cv-builder/migrations', import.meta.url))
const postgres = await findPostgres()

const SCHEMA_TENANTS = 50
const SCHEMA_QUERIES = 10_000
const DATABASE_TENANTS = 10
const DATABASE_QUERIES = 2_000
const WORKERS = 24

/** query_canceled: a statement_timeout or a pg_cancel_backend. The only error the load may cause. */
const CANCELED = '57014'

class Boom extends Error {}

interface TenantState {
  record: TenantRecord
  /** Inserts known to be committed. */
  confirmed: number
  /** Inserts that failed by cancellation: committed or not, the count may include them. */
  uncertain: number
}

interface Load {
  queries: number
  cancels: number
  timeouts: number
  rollbacks: number
  leaks: string[]
  unexpected: unknown[]
}

describe.skipIf('skip' in postgres)('postgres isolation under stress', () => {
  const serverUrl = 'url' in postgres ? postgres.url : ''
  const home = tempDir('tenantry-pg-stress-')
  const schemaSource = `stress_s_${process.pid}`
  const databaseSource = `stress_d_${process.pid}`
  let data: Awaited<ReturnType<typeof createTestDatabase>>
  let admin: pg.Client
  const open: Tenantry[] = []

  const configFor = (poolSize: number, maxOpenHandles = 8) => ({
    home: home.path,
    catalogUrl: `${home.path}/catalog.db`,
    migrations: { tenant: migrations },
    dataSources: [
      { id: schemaSource, engine: 'postgres' as const, url: data.url, isolations: ['schema' as const], poolSize, tenantPoolSize: poolSize },
      { id: databaseSource, engine: 'postgres' as const, url: data.url, isolations: ['database' as const], poolSize: 2, tenantPoolSize: 1 },
    ],
    defaults: { isolation: 'schema' as const, dataSource: schemaSource },
    // Fewer handles than database tenants: the LRU closes and reopens their pools while the load runs.
    router: { maxOpenHandles },
  })
  const openTenantry = async (poolSize: number, maxOpenHandles?: number) => {
    const tenantry = await createTenantry(configFor(poolSize, maxOpenHandles))
    open.push(tenantry)
    return tenantry
  }
  const closeTenantry = async (tenantry: Tenantry) => {
    open.splice(open.indexOf(tenantry), 1)
    await tenantry.close()
  }

  let schemaTenants: TenantState[] = []

  beforeAll(async () => {
    data = await createTestDatabase(serverUrl, 'tenantry_stress')
    admin = new pg.Client({ connectionString: data.url })
    await admin.connect()
    const tenantry = await openTenantry(8)
    try {
      schemaTenants = await createTenants(tenantry, 'acme', SCHEMA_TENANTS, 'schema', schemaSource)
    } finally {
      await closeTenantry(tenantry)
    }
  })

  afterAll(async () => {
    for (const tenantry of [...open]) await tenantry.close().catch(() => {})
    await admin?.end().catch(() => {})
    // Database-isolated tenants and templates live outside the test database: drop them by name.
    const catalog = Catalog.open({ url: `${home.path}/catalog.db` })
    const tenants = await catalog.listTenants({ includePurged: true }).catch(() => [])
    await catalog.close()
    try {
      await dropDatabases(serverUrl, tenants.filter((t) => t.placement.isolation === 'database').map((t) => t.placement.locator))
      await data?.drop()
      await dropAppRoles(serverUrl, [schemaSource, databaseSource])
    } finally {
      home.cleanup()
    }
  })

  // Each schema tenant logs in as its own role, so a connection is never shared between tenants. With
  // every tenant's pool open (one connection each), the load interleaves 50 pools; the LRU's closing
  // and reopening of pools is the database test's (a new connection costs ~80 ms on a loaded CI box).
  for (const poolSize of [1]) {
    it(`schema isolation: ${SCHEMA_QUERIES} interleaved queries over ${SCHEMA_TENANTS} tenants, a pool of ${poolSize} each, with cancels`, async () => {
      const tenantry = await openTenantry(poolSize, SCHEMA_TENANTS + 8)
      try {
        const load = await runLoad(tenantry, schemaTenants, SCHEMA_QUERIES, tenantRoles(schemaTenants), 'schema')
        expect(load.unexpected).toEqual([])
        expect(load.leaks).toEqual([])
        expect(load.queries).toBeGreaterThanOrEqual(SCHEMA_QUERIES)
        expect(load.timeouts).toBeGreaterThan(0)
        expect(load.rollbacks).toBeGreaterThan(0)

        // Every pooled tenant connection is idle, with no transaction open; nothing ran as the shared app role.
        await expectNoOpenTransactions(tenantRoles(schemaTenants))
        expect(await sessionsOf([appRole(schemaSource)])).toEqual([])
        // At most tenantPoolSize connections for each tenant's pool.
        expect((await sessionsOf(tenantRoles(schemaTenants))).length).toBeLessThanOrEqual(poolSize * SCHEMA_TENANTS)

        for (const tenant of schemaTenants) await expectStoredRows(tenant, `"${tenant.record.placement.locator}".jobs`)
      } finally {
        await closeTenantry(tenantry)
      }
    })
  }

  it(`database isolation: ${DATABASE_QUERIES} interleaved queries over ${DATABASE_TENANTS} tenant databases, with cancels and LRU evictions`, async () => {
    const tenantry = await openTenantry(2)
    try {
      const tenants = await createTenants(tenantry, 'dbco', DATABASE_TENANTS, 'database', databaseSource)
      const load = await runLoad(tenantry, tenants, DATABASE_QUERIES, tenantRoles(tenants), 'database')
      expect(load.unexpected).toEqual([])
      expect(load.leaks).toEqual([])
      expect(load.queries).toBeGreaterThanOrEqual(DATABASE_QUERIES)
      expect(tenantry.router.stats().evictions).toBeGreaterThan(0)
      await expectNoOpenTransactions(tenantRoles(tenants))
      for (const tenant of tenants) {
        const client = new pg.Client({ connectionString: urlOf(data.url, { database: tenant.record.placement.locator }) })
        await client.connect()
        try {
          await expectStoredRows(tenant, 'jobs', client)
        } finally {
          await client.end()
        }
      }
    } finally {
      await closeTenantry(tenantry)
    }
  })

  it("a session-level SET search_path from one tenant's raw SQL does not redirect the next tenant on that connection", async () => {
    const tenantry = await openTenantry(1)
    try {
      const [a, b] = [schemaTenants[0]!, schemaTenants[1]!]
      // Not LOCAL: it outlives the statement's transaction on the (only) pooled connection.
      await tenantry.withTenant(a.record.slug, () => sql`set search_path to ${sql.id(a.record.placement.locator)}`.execute(tenantry.db()))
      await tenantry.withTenant(b.record.slug, async () => {
        const db = tenantry.db()
        expectOwn(await db.selectFrom('jobs').select('company').execute(), b.record.slug)
        expectOwn((await sql<{ company: string }>`select company from jobs`.execute(db)).rows, b.record.slug)
        await db.transaction().execute(async (trx) => {
          expectOwn((await sql<{ company: string }>`select company from jobs`.execute(trx)).rows, b.record.slug)
        })
      })
    } finally {
      await closeTenantry(tenantry)
    }
  })

  describe('hostile identifiers', () => {
    const hostile = ['a"; drop schema public cascade; --', 'x,public', '$user', 'public', 'Acme', `a${'b'.repeat(63)}`, 't_x", public']

    it('refuses hostile slugs with INVALID_SLUG and creates nothing', async () => {
      const tenantry = await openTenantry(2)
      try {
        const before = await schemaNames()
        const tenantsBefore = (await tenantry.catalog.listTenants({ includePurged: true })).length
        for (const slug of hostile) {
          const error = await tenantry.createTenant({ slug }).catch((e: unknown) => e)
          expect(isTenantryError(error, 'INVALID_SLUG'), `${slug}: ${String(error)}`).toBe(true)
          await expect(tenantry.withTenant(slug, () => 1)).rejects.toMatchObject({ code: 'TENANT_NOT_FOUND' })
        }
        expect(await schemaNames()).toEqual(before)
        expect((await tenantry.catalog.listTenants({ includePurged: true })).length).toBe(tenantsBefore)
      } finally {
        await closeTenantry(tenantry)
      }
    })

    it('refuses hostile data source ids with INVALID_IDENTIFIER and creates nothing', async () => {
      const tenantry = await openTenantry(2)
      try {
        const rolesBefore = await appRoles()
        const sourcesBefore = (await tenantry.catalog.listDataSources()).map((s) => s.id)
        // `public` is a valid id: an id is only ever a suffix (`tenantry_app_public`), never a bare identifier.
        const badIds = hostile.filter((id) => id !== 'public')
        // Postgres ids also name `tenantry_app_<id>`, which must fit in 63 characters (a SQLite one may be longer).
        const tooLongForPostgres = `p${'q'.repeat(49)}`
        badIds.push(tooLongForPostgres)
        for (const id of badIds) {
          const source = { id, engine: 'postgres' as const, url: data.url, isolations: ['schema' as const] }
          const fromConfig = await createTenantry({ ...configFor(2), dataSources: [source], defaults: { isolation: 'schema', dataSource: id } })
            .then(async (t) => (await t.close(), undefined), (e: unknown) => e)
          expect(isTenantryError(fromConfig, 'INVALID_IDENTIFIER'), `config ${id}: ${String(fromConfig)}`).toBe(true)
          for (const attempt of [
            () => tenantry.dataSources.add(source),
            ...(id === tooLongForPostgres
              ? []
              : [
                  () => tenantry.dataSources.add({ id, engine: 'sqlite', directory: `${home.path}/never` }),
                  () => tenantry.createTenant({ slug: 'never_created', dataSource: id }),
                ]),
          ]) {
            const error = await attempt().catch((e: unknown) => e)
            expect(isTenantryError(error, 'INVALID_IDENTIFIER'), `${id}: ${String(error)}`).toBe(true)
          }
        }
        expect(await appRoles()).toEqual(rolesBefore)
        expect((await tenantry.catalog.listDataSources()).map((s) => s.id)).toEqual(sourcesBefore)
        expect(await tenantry.catalog.findTenantBySlug('never_created')).toBeUndefined()
      } finally {
        await closeTenantry(tenantry)
      }
    })

    it('refuses a tampered placement locator (INVALID_IDENTIFIER) instead of following it', async () => {
      const tenantry = await openTenantry(2)
      const [a, b] = [schemaTenants[2]!, schemaTenants[3]!]
      const setLocator = (locator: string) =>
        tenantry.catalog.db.updateTable('placements').set({ locator }).where('tenant_id', '=', a.record.id).execute()
      try {
        for (const locator of ['t_x", public', 'public', b.record.placement.locator, `${a.record.placement.locator}, public`]) {
          await setLocator(locator)
          tenantry.router.invalidate(a.record.id)
          await expect(
            tenantry.withTenant(a.record.slug, () => tenantry.db().selectFrom('jobs').selectAll().execute()),
          ).rejects.toMatchObject({ code: 'INVALID_IDENTIFIER' })
          await expect(
            tenantry.withTenant(a.record.slug, () => sql`select 1`.execute(tenantry.db())),
          ).rejects.toMatchObject({ code: 'INVALID_IDENTIFIER' })
          // Nor does migrating or purging follow it: the other tenant's schema and rows stay.
          await tenantry.migrate().catch(() => {})
          const engine = await tenantry.dataSources.engine(schemaSource)
          await expect(engine.drop({ tenantId: a.record.id, isolation: 'schema', locator })).rejects.toMatchObject({ code: 'INVALID_IDENTIFIER' })
        }
        const schemas = await schemaNames()
        expect(schemas).toContain('public')
        expect(schemas).toContain(a.record.placement.locator)
        expect(schemas).toContain(b.record.placement.locator)
        await expectStoredRows(b, `"${b.record.placement.locator}".jobs`)
      } finally {
        await setLocator(a.record.placement.locator)
        await closeTenantry(tenantry)
      }
    })
  })

  // --- helpers ----------------------------------------------------------------------------

  function appRole(source: string): string {
    return `tenantry_app_${source}`
  }

  /** The login roles the tenants' app handles connect as. */
  function tenantRoles(tenants: TenantState[]): string[] {
    return tenants.map((t) => `${t.record.placement.locator}_app`)
  }

  function urlOf(base: string, change: { user?: string; database?: string }): string {
    const url = new URL(base)
    if (change.user) url.username = change.user
    if (change.database) url.pathname = `/${change.database}`
    return url.toString()
  }

  async function schemaNames(): Promise<string[]> {
    return (await admin.query<{ nspname: string }>('select nspname from pg_namespace order by nspname')).rows.map((r) => r.nspname)
  }

  async function appRoles(): Promise<string[]> {
    return (await admin.query<{ rolname: string }>("select rolname from pg_roles where rolname like 'tenantry_app_%' order by rolname")).rows.map((r) => r.rolname)
  }

  async function sessionsOf(roles: string[]): Promise<Array<{ pid: number; state: string; query: string }>> {
    const sessions = await admin.query<{ pid: number; state: string; query: string }>(
      'select pid, state, query from pg_stat_activity where usename = any($1) and pid <> pg_backend_pid()',
      [roles],
    )
    return sessions.rows
  }

  async function expectNoOpenTransactions(roles: string[]): Promise<void> {
    expect((await sessionsOf(roles)).filter((s) => s.state !== 'idle')).toEqual([])
  }

  /** What is stored, read as the admin: the tenant's own slug only, as many rows as were committed, no rolled-back row. */
  async function expectStoredRows(tenant: TenantState, table: string, client: pg.Client = admin): Promise<void> {
    const { rows } = await client.query<{ company: string; n: string; rolled_back: string }>(
      `select company, count(*) as n, count(*) filter (where title like 'rollback%') as rolled_back from ${table} group by company`,
    )
    expect(rows.map((r) => r.company)).toEqual([tenant.record.slug])
    expect(Number(rows[0]!.rolled_back)).toBe(0)
    const n = Number(rows[0]!.n)
    expect(n).toBeGreaterThanOrEqual(tenant.confirmed)
    expect(n).toBeLessThanOrEqual(tenant.confirmed + tenant.uncertain)
  }

  function expectOwn(rows: ReadonlyArray<{ company: unknown }>, slug: string): void {
    expect(rows.length).toBeGreaterThan(0)
    expect(rows.filter((r) => r.company !== slug)).toEqual([])
  }

  async function createTenants(tenantry: Tenantry, prefix: string, count: number, isolation: 'schema' | 'database', dataSource: string) {
    const tenants: TenantState[] = []
    const slugs = Array.from({ length: count }, (_, i) => `${prefix}_${i}`)
    for (let i = 0; i < slugs.length; i += 8) {
      const batch = await Promise.all(slugs.slice(i, i + 8).map((slug) => tenantry.createTenant({ slug, isolation, dataSource })))
      tenants.push(...batch.map((record) => ({ record, confirmed: 0, uncertain: 0 })))
    }
    // One committed row each, so every read below has something to check.
    for (const tenant of tenants) {
      await tenantry.withTenant(tenant.record.slug, () =>
        tenantry.db().insertInto('jobs').values({ company: tenant.record.slug, title: 'seed', start_date: '2024-01-01' }).execute(),
      )
      tenant.confirmed++
    }
    return tenants
  }

  /**
   * `WORKERS` concurrent loops, each picking a random tenant and a random operation until
   * `target` statements have run, while a canceller sends pg_cancel_backend to random active
   * app-role backends. Reads record any row of another tenant in `leaks`.
   */
  async function runLoad(tenantry: Tenantry, tenants: TenantState[], target: number, roles: string[], isolation: 'schema' | 'database'): Promise<Load> {
    const load: Load = { queries: 0, cancels: 0, timeouts: 0, rollbacks: 0, leaks: [], unexpected: [] }
    const pick = () => tenants[Math.floor(Math.random() * tenants.length)]!
    const check = (rows: ReadonlyArray<Record<string, unknown>>, tenant: TenantState, where: string) => {
      for (const row of rows) {
        if (row.company !== tenant.record.slug) load.leaks.push(`${where}: ${tenant.record.slug} saw ${String(row.company)}`)
      }
    }
    const expectedSchema = (tenant: TenantState) => (isolation === 'schema' ? tenant.record.placement.locator : 'public')
    let serial = 0
    const row = (tenant: TenantState, title: string) => ({ company: tenant.record.slug, title: `${title}-${serial++}`, start_date: '2024-01-01' })

    const operations: Array<[weight: number, run: (tenant: TenantState) => Promise<void>]> = [
      // Query builder, schema-qualified, no transaction.
      [20, async (t) => {
        const db = tenantry.db()
        load.queries++
        check(await db.selectFrom('jobs').select(['company', 'title']).execute(), t, 'qb select')
      }],
      [10, async (t) => {
        load.queries++
        t.uncertain++
        await tenantry.db().insertInto('jobs').values(row(t, 'qb')).execute()
        t.uncertain--
        t.confirmed++
      }],
      // Raw SQL outside a transaction: unqualified, so it relies on the per-statement search_path.
      [15, async (t) => {
        const db = tenantry.db()
        load.queries += 2
        check((await sql<{ company: string }>`select company from jobs`.execute(db)).rows, t, 'raw select')
        const where = (await sql<{ schema: string; database: string }>`select current_schema() as schema, current_database() as database`.execute(db)).rows[0]!
        if (where.schema !== expectedSchema(t)) load.leaks.push(`raw: ${t.record.slug} ran in schema ${where.schema}`)
        if (isolation === 'database' && where.database !== t.record.placement.locator) load.leaks.push(`raw: ${t.record.slug} ran in ${where.database}`)
      }],
      [8, async (t) => {
        load.queries++
        t.uncertain++
        await sql`insert into jobs (company, title, start_date) values (${t.record.slug}, ${`raw-${serial++}`}, '2024-01-01')`.execute(tenantry.db())
        t.uncertain--
        t.confirmed++
      }],
      // A transaction mixing both, with reads of its own uncommitted write.
      [15, async (t) => {
        t.uncertain++
        await tenantry.db().transaction().execute(async (trx) => {
          load.queries += 4
          await trx.insertInto('jobs').values(row(t, 'trx')).execute()
          check((await sql<{ company: string }>`select company from jobs`.execute(trx)).rows, t, 'trx raw')
          check(await trx.selectFrom('jobs').select('company').execute(), t, 'trx qb')
          const path = (await sql<{ path: string }>`select current_setting('search_path') as path`.execute(trx)).rows[0]!.path
          if (isolation === 'schema' && path !== t.record.placement.locator) load.leaks.push(`trx: ${t.record.slug} had search_path ${path}`)
        })
        t.uncertain--
        t.confirmed++
      }],
      // A transaction that writes, then throws: the write must never be seen.
      [8, async (t) => {
        const error = await tenantry.db().transaction().execute(async (trx) => {
          load.queries += 2
          await trx.insertInto('jobs').values(row(t, 'rollback-throw')).execute()
          check((await sql<{ company: string }>`select company from jobs`.execute(trx)).rows, t, 'throwing trx')
          throw new Boom()
        }).catch((e: unknown) => e)
        if (!(error instanceof Boom)) throw error
        load.rollbacks++
      }],
      // A transaction cut by its own LOCAL statement_timeout in the middle.
      [1, async (t) => {
        const error = await tenantry.db().transaction().execute(async (trx) => {
          load.queries += 3
          await sql`set local statement_timeout = '10ms'`.execute(trx)
          await trx.insertInto('jobs').values(row(t, 'rollback-timeout')).execute()
          await sql`select pg_sleep(0.5)`.execute(trx)
        }).catch((e: unknown) => e)
        if ((error as { code?: string } | undefined)?.code !== CANCELED) throw error ?? new Error('pg_sleep was not cut short')
        load.timeouts++
      }],
      // Several statements of one tenant at once.
      [10, async (t) => {
        const db = tenantry.db()
        load.queries += 4
        const results = await Promise.all([
          db.selectFrom('jobs').select('company').execute(),
          sql<{ company: string }>`select company from jobs`.execute(db).then((r) => r.rows),
          db.selectFrom('jobs').select('company').where('title', 'like', 'qb%').execute(),
          sql<{ company: string }>`select company from jobs limit 3`.execute(db).then((r) => r.rows),
        ])
        for (const rows of results) check(rows, t, 'parallel')
      }],
      // Another tenant entered from inside this one, and this one again after.
      [8, async (t) => {
        const other = pick()
        load.queries += 3
        check(await tenantry.db().selectFrom('jobs').select('company').execute(), t, 'outer')
        await tenantry.withTenant(other.record.slug, async () => {
          check((await sql<{ company: string }>`select company from jobs`.execute(tenantry.db())).rows, other, 'nested')
        })
        check((await sql<{ company: string }>`select company from jobs`.execute(tenantry.db())).rows, t, 'outer after nested')
      }],
    ]
    const totalWeight = operations.reduce((sum, [w]) => sum + w, 0)
    const chooseOperation = () => {
      let r = Math.random() * totalWeight
      for (const [w, run] of operations) if ((r -= w) < 0) return run
      return operations[0]![1]
    }

    // The canceller: random pg_cancel_backend on busy tenant connections while the load runs.
    let running = true
    const canceller = (async () => {
      const client = new pg.Client({ connectionString: data.url })
      await client.connect()
      try {
        while (running) {
          await client.query(
            `select pg_cancel_backend(pid) from pg_stat_activity where usename = any($1) and state = 'active' order by random() limit 1`,
            [roles],
          )
          await new Promise((r) => setTimeout(r, 1 + Math.random() * 4))
        }
      } finally {
        await client.end()
      }
    })()

    const worker = async () => {
      while (load.queries < target && load.unexpected.length === 0) {
        const tenant = pick()
        const run = chooseOperation()
        try {
          await tenantry.withTenant(tenant.record.slug, () => run(tenant))
        } catch (error) {
          if ((error as { code?: string }).code === CANCELED) load.cancels++
          else load.unexpected.push(error)
        }
      }
    }
    try {
      await Promise.all(Array.from({ length: WORKERS }, worker))
    } finally {
      running = false
      await canceller
    }
    return load
  }
})
