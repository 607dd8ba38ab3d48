import { sql, type Kysely } from 'kysely'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { resolveConfig, type TenantryConfig } from '../config.js'
import { runDoctor } from '../doctor/doctor.js'
import { quoteIdentifier } from '../identifiers.js'
import { writeFixtureMigrations } from '../testing/fixture-migrations.js'
import { createManagedAdmin, dropAppRoles, dropDatabases, findPostgres, tempDir, type ManagedAdmin } from '../testing/services.js'
import { createTenantry, type Tenantry } from '../tenantry.js'
import type { TenantMigration } from './migration-set.js'

const postgres = await findPostgres()

/** Postgres's "insufficient_privilege". */
const INSUFFICIENT_PRIVILEGE = '42501'

// Seed 002's public schema: plans and feature flags every tenant may read, and a platform table no tenant may.
const shared: Record<string, TenantMigration> = {
  '0001_platform': {
    async up(db: Kysely<any>) {
      await db.schema.createTable('plans').addColumn('id', 'integer', (c) => c.primaryKey()).addColumn('name', 'text', (c) => c.notNull()).execute()
      await db.schema.createTable('feature_flags').addColumn('name', 'text', (c) => c.primaryKey()).addColumn('enabled', 'boolean', (c) => c.notNull()).execute()
      await db.schema.createTable('platform_secrets').addColumn('key', 'text', (c) => c.primaryKey()).addColumn('value', 'text').execute()
      await db.insertInto('plans').values([{ id: 1, name: 'free' }, { id: 2, name: 'pro' }]).execute()
      await db.insertInto('feature_flags').values({ name: 'beta', enabled: true }).execute()
      await db.insertInto('platform_secrets').values({ key: 'stripe', value: 'sk_live' }).execute()
    },
  },
}

describe.skipIf('skip' in postgres)(`shared (app-level) migrations on Postgres${'skip' in postgres ? ` (skipped: ${postgres.skip})` : ''}`, () => {
  const dir = tempDir('tenantry-shared-migrations-')
  const dataSource = `pg_shared_${process.pid}`
  let admin: ManagedAdmin
  let tenantry: Tenantry
  let config: (overrides?: { readable?: string[]; migrations?: Record<string, TenantMigration> }) => Promise<TenantryConfig>

  beforeAll(async () => {
    if ('skip' in postgres) return
    // As managed Postgres gives it: no superuser, owner of its database (and so of `public`).
    admin = await createManagedAdmin(postgres.url, 'tenantry_shared')
    const tenant = await writeFixtureMigrations(`${dir.path}/migrations`)
    config = async (overrides = {}) => ({
      home: dir.path,
      migrations: { tenant, shared: { migrations: overrides.migrations ?? shared, readable: overrides.readable ?? ['plans', 'feature_flags'] } },
      dataSources: [{ id: dataSource, engine: 'postgres', url: admin.url }],
      defaults: { isolation: 'schema', dataSource },
    })
    tenantry = await createTenantry(await config())
    // Made before the shared tables: the grant reaches roles that exist as well as roles made later.
    await tenantry.createTenant({ slug: 'early' })
  })

  afterAll(async () => {
    if ('skip' in postgres) return
    const tenants = (await tenantry?.catalog.listTenants({ includePurged: true })) ?? []
    await tenantry?.close()
    await dropDatabases(postgres.url, tenants.filter((t) => t.placement.isolation === 'database').map((t) => t.placement.locator))
    await admin?.drop()
    await dropReadOnlyRoles(tenants.map((t) => t.id))
    await dropAppRoles(postgres.url, [dataSource])
    dir.cleanup()
  })

  /** What a tenant's own connection (raw SQL included) may do with the shared tables. */
  async function reach(slug: string) {
    return tenantry.withTenant(slug, async () => {
      const db = tenantry.db()
      const attempt = async (statement: string) => {
        try {
          return { ok: (await sql.raw<Record<string, unknown>>(statement).execute(db)).rows }
        } catch (error) {
          return { code: (error as { code?: string }).code }
        }
      }
      return {
        plans: await attempt('select name from public.plans order by id'),
        flags: await attempt('select name, enabled from public.feature_flags'),
        secrets: await attempt('select * from public.platform_secrets'),
        insert: await attempt("insert into public.plans (id, name) values (3, 'stolen')"),
        update: await attempt("update public.plans set name = 'free!'"),
        delete: await attempt('delete from public.feature_flags'),
        create: await attempt('create table public.planted (id int)'),
      }
    })
  }

  const confined = {
    plans: { ok: [{ name: 'free' }, { name: 'pro' }] },
    flags: { ok: [{ name: 'beta', enabled: true }] },
    secrets: { code: INSUFFICIENT_PRIVILEGE },
    insert: { code: INSUFFICIENT_PRIVILEGE },
    update: { code: INSUFFICIENT_PRIVILEGE },
    delete: { code: INSUFFICIENT_PRIVILEGE },
    create: { code: INSUFFICIENT_PRIVILEGE },
  }

  it('applies the shared set once, in public, recorded beside it, and says what is pending before', async () => {
    expect(await tenantry.sharedMigrationStatus()).toMatchObject({ dataSource, pending: ['0001_platform'], migrations: [{ name: '0001_platform', appliedAt: null }] })
    const report = await tenantry.migrateShared()
    expect(report).toMatchObject({ dataSource, applied: ['0001_platform'], readable: ['plans', 'feature_flags'], location: expect.stringContaining('public') })
    expect(await tenantry.sharedMigrationStatus()).toMatchObject({ pending: [], migrations: [{ name: '0001_platform', appliedAt: expect.any(String) }] })
    expect((await tenantry.migrateShared()).applied).toEqual([])
    expect((await tenantry.catalog.auditLog()).filter((e) => e.action === 'shared.migrated')).toHaveLength(1)
  })

  it("lets schema and row tenants' own roles read the declared tables (raw SQL), and nothing else of public", async () => {
    await tenantry.createTenant({ slug: 'late' })
    await tenantry.createTenant({ slug: 'rowy', isolation: 'row' })
    expect(await reach('early')).toEqual(confined)
    expect(await reach('late')).toEqual(confined)
    expect(await reach('rowy')).toEqual(confined)
    // Nothing was written.
    const rows = await query('select name from public.plans order by id')
    expect(rows).toEqual([{ name: 'free' }, { name: 'pro' }])
  })

  it("gives a schema tenant's read-only login the same reads, and no more", async () => {
    const access = await tenantry.readOnlyAccess('late')
    const client = new pg.Client({ connectionString: access!.url })
    await client.connect()
    try {
      expect((await client.query('select name from public.plans order by id')).rows).toEqual([{ name: 'free' }, { name: 'pro' }])
      await expect(client.query('select * from public.platform_secrets')).rejects.toMatchObject({ code: INSUFFICIENT_PRIVILEGE })
    } finally {
      await client.end()
    }
  })

  it('leaves database tenants out: their database is their own, and Postgres reads across none', async () => {
    await tenantry.createTenant({ slug: 'apart', isolation: 'database' })
    const found = await tenantry.withTenant('apart', () => sql`select to_regclass('public.plans') as found`.execute(tenantry.db()))
    expect(found.rows).toEqual([{ found: null }])
  })

  it('doctor stays clean, fails a write on a shared table granted by hand, and the next shared run takes it back', async () => {
    const checks = await runDoctor(tenantry)
    expect(checks.filter((c) => c.status === 'fail')).toEqual([])
    const readOnly = async () => (await runDoctor(tenantry)).find((c) => c.name === `${dataSource}: shared tables read-only`)
    expect(await readOnly()).toMatchObject({ status: 'ok' })
    const late = (await tenantry.catalog.findTenantBySlug('late'))!
    await query(`GRANT INSERT ON public.plans TO "t_${late.id}_app"`)
    expect(await readOnly()).toMatchObject({ status: 'fail', detail: expect.stringContaining(`t_${late.id}_app can write public.plans`) })
    await tenantry.migrateShared()
    expect(await readOnly()).toMatchObject({ status: 'ok' })
    expect(await reach('late')).toEqual(confined)
  })

  it('takes a table back when readable no longer names it, from existing roles and later ones', async () => {
    await tenantry.close()
    tenantry = await createTenantry(await config({ readable: ['plans'] }))
    expect((await tenantry.migrateShared()).readable).toEqual(['plans'])
    for (const slug of ['early', 'rowy']) expect(await reach(slug)).toEqual({ ...confined, flags: { code: INSUFFICIENT_PRIVILEGE } })
    await tenantry.createTenant({ slug: 'later' })
    expect(await reach('later')).toEqual({ ...confined, flags: { code: INSUFFICIENT_PRIVILEGE } })
  })

  it('rolls back a failing shared migration whole, names it MIGRATION_FAILED, and leaves the grants as they were', async () => {
    const broken: TenantMigration = {
      async up(db) {
        await db.schema.createTable('half_made').addColumn('id', 'integer').execute()
        throw new Error('broken on purpose')
      },
    }
    await tenantry.close()
    tenantry = await createTenantry(await config({ readable: ['plans', 'half_made'], migrations: { ...shared, '0002_broken': broken } }))
    await expect(tenantry.migrateShared()).rejects.toMatchObject({ code: 'MIGRATION_FAILED', message: expect.stringContaining('broken on purpose') })
    expect(await query("select to_regclass('public.half_made') as found")).toEqual([{ found: null }])
    expect(await tenantry.sharedMigrationStatus()).toMatchObject({ pending: ['0002_broken'] })
    expect(await reach('early')).toEqual({ ...confined, flags: { code: INSUFFICIENT_PRIVILEGE } })
  })

  it('refuses a readable table no migration made, with INVALID_CONFIG, and changes no grant', async () => {
    await tenantry.close()
    tenantry = await createTenantry(await config({ readable: ['feature_flags', 'no_such_table'] }))
    await expect(tenantry.migrateShared()).rejects.toMatchObject({ code: 'INVALID_CONFIG', message: expect.stringContaining('public.no_such_table') })
    expect(await reach('early')).toEqual({ ...confined, flags: { code: INSUFFICIENT_PRIVILEGE } })
  })

  async function query(text: string): Promise<Array<Record<string, unknown>>> {
    const client = new pg.Client({ connectionString: admin.url })
    await client.connect()
    try {
      return (await client.query(text)).rows
    } finally {
      await client.end()
    }
  }
})

/** Read-only roles carry no data source comment: drop them by name. */
async function dropReadOnlyRoles(tenantIds: readonly string[]): Promise<void> {
  if (!('url' in postgres)) return
  const client = new pg.Client({ connectionString: postgres.url })
  await client.connect()
  try {
    for (const id of tenantIds) {
      const role = `t_${id}_ro`
      if (!(await client.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [role])).rowCount) continue
      await client.query(`DROP OWNED BY ${quoteIdentifier(role)}`)
      await client.query(`DROP ROLE ${quoteIdentifier(role)}`)
    }
  } finally {
    await client.end()
  }
}

describe('migrations.shared config', () => {
  const pgSource = { id: 'pg_main', engine: 'postgres' as const, url: 'postgres://u@localhost:5432/d' }
  const sqliteSource = { id: 'local', engine: 'sqlite' as const }

  it('defaults to the default data source when it is Postgres, else the first Postgres one, with nothing readable', () => {
    const resolved = resolveConfig({ migrations: { shared: './shared' }, dataSources: [sqliteSource, pgSource] }, { root: '/app' })
    expect(resolved.sharedMigrations).toEqual({ migrations: '/app/shared', dataSource: 'pg_main', readable: [] })
    const record = { '0001_plans': { up: async () => {} } }
    expect(resolveConfig({ migrations: { shared: { migrations: record, readable: ['plans'] } }, dataSources: [pgSource] }).sharedMigrations).toEqual({
      migrations: record,
      dataSource: 'pg_main',
      readable: ['plans'],
    })
    expect(resolveConfig({}).sharedMigrations).toBeUndefined()
  })

  it('refuses SQLite clearly, and every malformed field, with INVALID_CONFIG', () => {
    const bad: Array<[TenantryConfig, RegExp]> = [
      [{ migrations: { shared: './shared' } }, /need a Postgres data source/],
      [{ migrations: { shared: { migrations: './s', dataSource: 'local' } }, dataSources: [sqliteSource, pgSource] }, /local is SQLite/],
      [{ migrations: { shared: { migrations: './s', dataSource: 'elsewhere' } }, dataSources: [pgSource] }, /not declared/],
      [{ migrations: { shared: { migrations: './s', readable: ['Plans'] } }, dataSources: [pgSource] }, /not a table name/],
      [{ migrations: { shared: { migrations: './s', readable: ['plans; drop table x'] } }, dataSources: [pgSource] }, /not a table name/],
      [{ migrations: { shared: { migrations: './s', readable: ['plans', 'plans'] } }, dataSources: [pgSource] }, /twice/],
      [{ migrations: { shared: { migrations: './s', readable: ['tenantry_shared_migration'] } }, dataSources: [pgSource] }, /Tenantry's own/],
      [{ migrations: { shared: { migrations: './s', readable: 'plans' as never } }, dataSources: [pgSource] }, /readable must be an array/],
      [{ migrations: { shared: { migrations: './s', grant: ['plans'] } as never }, dataSources: [pgSource] }, /unknown field "grant"/],
      [{ migrations: { shared: { migrations: 42 as never } }, dataSources: [pgSource] }, /directory or a record/],
      [{ migrations: { shared: { readable: ['plans'] } as never }, dataSources: [pgSource] }, /needs migrations/],
    ]
    for (const [config, message] of bad) {
      expect(() => resolveConfig(config, { root: '/app' })).toThrow(expect.objectContaining({ code: 'INVALID_CONFIG', message: expect.stringMatching(message) }))
    }
  })

  it('refuses migrateShared with INVALID_CONFIG when none are configured', async () => {
    const dir = tempDir('tenantry-shared-none-')
    const tenantry = await createTenantry({ home: dir.path })
    try {
      expect(tenantry.sharedMigrations).toBeUndefined()
      expect(await tenantry.sharedMigrationStatus()).toBeUndefined()
      await expect(tenantry.migrateShared()).rejects.toMatchObject({ code: 'INVALID_CONFIG' })
    } finally {
      await tenantry.close()
      dir.cleanup()
    }
  })
})
