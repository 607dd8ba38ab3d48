import { sql, type Kysely } from 'kysely'
import { afterEach, describe, it } from 'vitest'
import { createTenantry, type Tenantry } from '../index.js'
import { createTestDatabase, dropAppRoles, findPostgres, tempDir } from '../testing/index.js'
import { LEDGER_STEP_NAME } from '../ledger/ledger.js'
import { SEARCH_INDEX_STEP_PREFIX, searchDeclarations, searchIndexTable } from './search-index.js'

// Issue 8, item 7: the search indexes are a step Tenantry derives from `server.collections`
// and runs after the app's migrations: for new tenants at provisioning, for existing ones at
// the next `tenantry migrate` after the declaration changes.

const migrations = {
  '0001_notes': {
    up: async (db: Kysely<any>) => {
      await db.schema.createTable('notes').addColumn('id', 'integer', (c) => c.primaryKey()).addColumn('title', 'text').addColumn('body', 'text').execute()
    },
  },
}

const notesWith = (searchable: Record<string, boolean>) => ({
  collections: {
    notes: {
      columns: {
        id: { type: 'integer', generated: true },
        title: { type: 'text', searchable: searchable.title ?? false },
        body: { type: 'text', searchable: searchable.body ?? false },
      },
    },
  },
})

describe('search index step', () => {
  const dirs: Array<{ cleanup(): void }> = []
  const open: Tenantry[] = []
  afterEach(async () => {
    for (const t of open.splice(0)) await t.close()
    for (const d of dirs.splice(0)) d.cleanup()
  })
  const tenantryWith = async (home: string, server: Record<string, unknown>) => {
    const tenantry = await createTenantry({ home, migrations: { tenant: migrations }, server })
    open.push(tenantry)
    return tenantry
  }
  const ftsSql = (tenantry: Tenantry, slug: string) =>
    tenantry.withTenant(slug, async () =>
      (await sql<{ sql: string }>`select sql from sqlite_master where name = ${searchIndexTable('notes')}`.execute(tenantry.db())).rows[0]?.sql,
    )

  it('reads the searchable declarations leniently, and adds no step without any', ({ expect }) => {
    expect(searchDeclarations(notesWith({ title: true }))).toEqual([{ table: 'notes', columns: ['title'] }])
    expect(searchDeclarations({ collections: { x: { table: 'Bad-Name', columns: { a: { searchable: true } } } } })).toEqual([])
    expect(searchDeclarations(undefined)).toEqual([])
  })

  it('an existing tenant gets the index at the next migrate, and again when the declaration changes', async ({ expect }) => {
    const home = tempDir()
    dirs.push(home)
    const before = await tenantryWith(home.path, notesWith({}))
    // Declaring a collection adds the write ledger's step (ledger/ledger.ts); nothing searchable, no index step.
    expect(before.migrations.names).toEqual(['0001_notes', LEDGER_STEP_NAME])
    await before.createTenant({ slug: 'acme' })
    await before.withTenant('acme', () => before.db<any>().insertInto('notes').values({ id: 1, title: 'Ärzte', body: 'Köln' }).execute())
    await before.close()
    open.splice(0)

    const after = await tenantryWith(home.path, notesWith({ title: true }))
    const step = after.migrations.names.at(-1)!
    expect(step.startsWith(SEARCH_INDEX_STEP_PREFIX)).toBe(true)
    expect(await ftsSql(after, 'acme')).toBeUndefined()
    expect((await after.migrationStatus()).migrations.find((m) => m.name === step)).toMatchObject({ pendingTenants: 1 })
    const report = await after.migrate()
    expect(report.results).toEqual([expect.objectContaining({ slug: 'acme', status: 'success', applied: [step] })])
    expect(await ftsSql(after, 'acme')).toContain('fts5("title"')
    // The rows already there are in the index.
    const found = await after.withTenant('acme', () => sql`select rowid from ${sql.id(searchIndexTable('notes'))} where ${sql.id(searchIndexTable('notes'))} match '"ärz"'`.execute(after.db()))
    expect(found.rows).toEqual([{ rowid: 1 }])
    // Once only: nothing is behind now.
    expect((await after.migrate()).results).toEqual([])
    await after.close()
    open.splice(0)

    const changed = await tenantryWith(home.path, notesWith({ title: true, body: true }))
    expect(changed.migrations.names.at(-1)).not.toBe(step)
    await changed.migrate()
    expect(await ftsSql(changed, 'acme')).toContain('fts5("title", "body"')
    const both = await changed.withTenant('acme', () => sql`select rowid from ${sql.id(searchIndexTable('notes'))} where ${sql.id(searchIndexTable('notes'))} match '"köln"'`.execute(changed.db()))
    expect(both.rows).toEqual([{ rowid: 1 }])
    // A tenant created now (from the template, where templates are on) has it too.
    await changed.createTenant({ slug: 'fresh' })
    expect(await ftsSql(changed, 'fresh')).toContain('fts5("title", "body"')
    expect((await changed.catalog.ledger((await changed.catalog.findTenantBySlug('fresh'))!.id)).map((l) => l.migration)).toContain(changed.migrations.names.at(-1))
  })

  it('a collection whose table the migrations do not make gets no index, and the migrate succeeds', async ({ expect }) => {
    const home = tempDir()
    dirs.push(home)
    const tenantry = await tenantryWith(home.path, { collections: { ghosts: { columns: { name: { type: 'text', searchable: true } } } } })
    await tenantry.createTenant({ slug: 'acme' })
    const tables = await tenantry.withTenant('acme', () => sql<{ name: string }>`select name from sqlite_master where name like 'tenantry_search_%'`.execute(tenantry.db()))
    expect(tables.rows).toEqual([])
  })
})

const postgres = await findPostgres()
if ('skip' in postgres) console.warn(`skipping the search index step on Postgres: ${postgres.skip}`)

describe.skipIf('skip' in postgres)('search index step on Postgres', () => {
  it('an existing schema tenant gets its pg_trgm indexes at the next migrate', async ({ expect }) => {
    if (!('url' in postgres)) return
    const dataSourceId = `searchstep_${process.pid}`
    const data = await createTestDatabase(postgres.url, 'tenantry_search_step')
    const home = tempDir()
    const config = (server: Record<string, unknown>) => ({
      home: home.path,
      migrations: { tenant: migrations },
      dataSources: [{ id: dataSourceId, engine: 'postgres' as const, url: data.url, isolations: ['schema' as const] }],
      defaults: { dataSource: dataSourceId, isolation: 'schema' as const },
      server,
    })
    const indexes = async (tenantry: Tenantry) =>
      tenantry.withTenant('acme', async () =>
        (await sql<{ indexname: string }>`select indexname from pg_indexes where tablename = 'notes' and indexname like 'tenantry_search_%'`.execute(tenantry.db())).rows.length,
      )
    try {
      const before = await createTenantry(config(notesWith({})))
      try {
        await before.createTenant({ slug: 'acme' })
        expect(await indexes(before)).toBe(0)
      } finally {
        await before.close()
      }
      const after = await createTenantry(config(notesWith({ title: true, body: true })))
      try {
        const report = await after.migrate()
        expect(report.results).toEqual([expect.objectContaining({ slug: 'acme', status: 'success', applied: [after.migrations.names.at(-1)] })])
        expect(await indexes(after)).toBe(2)
        await after.deleteTenant('acme', { purge: true })
      } finally {
        await after.close()
      }
    } finally {
      await data.drop()
      await dropAppRoles(postgres.url, [dataSourceId])
      home.cleanup()
    }
  })
})
