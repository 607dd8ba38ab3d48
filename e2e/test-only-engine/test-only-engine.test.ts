import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTenantry, registerEngine, registeredEngines, resolveConfig, runDoctor, type Tenantry } from 'tenantry'
import { FIXTURE_MIGRATIONS, runConformance, runEngineConformance, tempDir, writeFixtureMigrations, type FixtureDatabase } from 'tenantry/testing'
import { TREE_ENGINE, TreeSqliteEngine } from './tree-engine.js'

// An engine Tenantry has never heard of, registered from this file, passes both conformance
// suites and serves tenants through `createTenantry`: the engine contract and the registry
// are all an engine needs.
const unregister = registerEngine(TREE_ENGINE)
afterAll(unregister)

const engineDir = tempDir('tenantry-tree-engine-')
runEngineConformance({
  engine: () => new TreeSqliteEngine(engineDir.path),
  isolation: 'database',
  teardown: async () => engineDir.cleanup(),
})

runConformance({
  engine: 'sqlite_tree',
  isolation: 'database',
  setup: async ({ home, migrations }) => ({
    config: { home, migrations: { tenant: migrations }, dataSources: [{ id: 'tree', engine: 'sqlite_tree', root: join(home, 'tree') }] },
  }),
})

describe('a registered engine through createTenantry', () => {
  const dir = tempDir('tenantry-tree-tenantry-')
  let tenantry: Tenantry

  beforeAll(async () => {
    const migrations = await writeFixtureMigrations(join(dir.path, 'migrations'))
    tenantry = await createTenantry({
      home: join(dir.path, 'home'),
      migrations: { tenant: migrations },
      dataSources: [
        { id: 'local', engine: 'sqlite' },
        { id: 'tree', engine: 'sqlite_tree', root: join(dir.path, 'tree') },
      ],
      defaults: { dataSource: 'tree' },
    })
  })

  afterAll(async () => {
    await tenantry?.close()
    dir.cleanup()
  })

  it('creates, serves and migrates tenants in its own layout', async () => {
    expect(registeredEngines()).toEqual(['sqlite', 'postgres', 'sqlite_tree'])
    const acme = await tenantry.createTenant({ slug: 'acme' })
    expect(acme.placement).toMatchObject({ dataSourceId: 'tree', isolation: 'database', locator: `${acme.id.slice(1, 3)}/${acme.id}` })
    expect(existsSync(join(dir.path, 'tree', acme.placement.locator, 'tenant.sqlite'))).toBe(true)
    expect((await tenantry.catalog.ledger(acme.id)).map((l) => l.migration)).toEqual(FIXTURE_MIGRATIONS)

    await tenantry.withTenant('acme', () => tenantry.db<FixtureDatabase>().insertInto('notes').values({ id: 1, title: 'In a tree' }).execute())
    expect(await tenantry.withTenant('acme', () => tenantry.db<FixtureDatabase>().selectFrom('notes').select('title').execute())).toEqual([
      { title: 'In a tree' },
    ])
    expect(await tenantry.dataSources.test('tree')).toMatchObject({ engine: 'sqlite_tree', detail: `SQLite tree under ${join(dir.path, 'tree')}` })

    // Capabilities it does not offer are refused by name, never by guessing its class.
    await expect(tenantry.readOnlyAccess('acme')).rejects.toMatchObject({ code: 'UNSUPPORTED_PLACEMENT' })
    expect((await runDoctor(tenantry)).find((c) => c.dataSource === 'tree')).toMatchObject({ name: 'tree: engine', status: 'warn' })
  })

  it('refuses a misspelled setting or an unknown engine, naming it', () => {
    expect(() => resolveConfig({ dataSources: [{ id: 'tree', engine: 'sqlite_tree', root: '/r', rooot: '/r' } as never] })).toThrowError(
      expect.objectContaining({ code: 'INVALID_CONFIG', message: expect.stringContaining('rooot') }),
    )
    expect(() => resolveConfig({ dataSources: [{ id: 'tree', engine: 'sqlite_tree' } as never] })).toThrowError(
      expect.objectContaining({ code: 'INVALID_CONFIG', message: expect.stringContaining('root') }),
    )
    expect(() => resolveConfig({ dataSources: [{ id: 'x', engine: 'mysql' } as never] })).toThrowError(
      expect.objectContaining({ code: 'INVALID_CONFIG', message: expect.stringContaining('mysql') }),
    )
    expect(() => registerEngine(TREE_ENGINE)).toThrowError(expect.objectContaining({ code: 'INVALID_CONFIG' }))
  })
})
