import { sql, type Kysely } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTenantry, type Tenantry } from '../../index.js'
import { createTestDatabase, dropAppRoles, findPostgres, tempDir, type TestDatabase } from '../../testing/index.js'
import { STATE_STEP_NAME, STATE_TABLE } from './state-step.js'

// Issue 12: `tenantry.state`, a durable key-value store per tenant in the tenant's own database,
// with compare-and-set; one suite run on SQLite and on Postgres (schema and row isolation).

const migrations = {
  '0001_notes': {
    up: async (db: Kysely<any>) => {
      await db.schema.createTable('notes').addColumn('id', 'integer', (c) => c.primaryKey()).execute()
    },
  },
}

function stateBehaviour(get: () => Tenantry) {
  const as = <T>(slug: string, fn: () => Promise<T>) => get().withTenant(slug, fn)
  const state = () => get().state

  it('the table is made by a derived step after the app migrations, recorded in every ledger', async () => {
    const tenantry = get()
    expect(tenantry.migrations.names.indexOf(STATE_STEP_NAME)).toBeGreaterThan(tenantry.migrations.names.indexOf('0001_notes'))
    const acme = (await tenantry.catalog.findTenantBySlug('acme'))!
    expect((await tenantry.catalog.ledger(acme.id)).map((l) => l.migration)).toContain(STATE_STEP_NAME)
  })

  it('outside withTenant every call is NO_TENANT', async () => {
    for (const call of [() => state().get('k'), () => state().set('k', 1), () => state().delete('k'), () => state().list()]) {
      await expect(call()).rejects.toMatchObject({ code: 'NO_TENANT' })
    }
  })

  it('set and get JSON values; every write bumps the version', async () => {
    await as('acme', async () => {
      expect(await state().get('workflow:1')).toBeUndefined()
      expect(await state().set('workflow:1', { step: 'start', running: true })).toBe(1)
      expect(await state().set('workflow:1', { step: 'emails', running: true })).toBe(2)
      const entry = await state().get('workflow:1')
      expect(entry).toMatchObject({ key: 'workflow:1', value: { step: 'emails', running: true }, version: 2 })
      expect(Date.parse(entry!.updatedAt)).toBeGreaterThan(Date.now() - 60_000)
    })
  })

  it('compare-and-set: a stale version is VERSION_CONFLICT and writes nothing', async () => {
    await as('acme', async () => {
      const read = (await state().get<{ step: string }>('workflow:1'))!
      // Another worker writes first.
      expect(await state().set('workflow:1', { step: 'paused' }, { expectedVersion: read.version })).toBe(3)
      await expect(state().set('workflow:1', { step: 'resumed' }, { expectedVersion: read.version })).rejects.toMatchObject({
        code: 'VERSION_CONFLICT',
        details: { key: 'workflow:1', expected: 2, actual: 3 },
      })
      expect((await state().get('workflow:1'))!.value).toEqual({ step: 'paused' })
      // 0: create only.
      expect(await state().set('workflow:2', 'new', { expectedVersion: 0 })).toBe(1)
      await expect(state().set('workflow:2', 'again', { expectedVersion: 0 })).rejects.toMatchObject({ code: 'VERSION_CONFLICT', details: { actual: 1 } })
      await expect(state().set('workflow:absent', 'x', { expectedVersion: 4 })).rejects.toMatchObject({ code: 'VERSION_CONFLICT', details: { actual: 0 } })
      expect(await state().get('workflow:absent')).toBeUndefined()
      // Delete at a version.
      await expect(state().delete('workflow:2', { expectedVersion: 7 })).rejects.toMatchObject({ code: 'VERSION_CONFLICT' })
      expect(await state().delete('workflow:2', { expectedVersion: 1 })).toBe(true)
      expect(await state().delete('workflow:2')).toBe(false)
    })
  })

  it('concurrent compare-and-set writers: exactly one wins each round', async () => {
    await as('acme', () => state().set('counter', 0))
    const results = await Promise.allSettled(
      Array.from({ length: 5 }, (_, i) =>
        as('acme', async () => {
          const { version } = (await state().get('counter'))!
          return state().set('counter', i + 1, { expectedVersion: version })
        }),
      ),
    )
    const won = results.filter((r) => r.status === 'fulfilled')
    expect(won.length).toBeGreaterThanOrEqual(1)
    for (const r of results) if (r.status === 'rejected') expect(r.reason).toMatchObject({ code: 'VERSION_CONFLICT' })
    expect((await as('acme', () => state().get('counter')))!.version).toBe(1 + won.length)
  })

  it('lists by prefix in byte order, a page at a time', async () => {
    await as('acme', async () => {
      for (const key of ['user:2', 'user:10', 'user:1', 'users', 'user:é', 'user%', 'user_x', 'other']) await state().set(key, key)
      expect((await state().list({ prefix: 'user:' })).map((e) => e.key)).toEqual(['user:1', 'user:10', 'user:2', 'user:é'])
      // LIKE wildcards in a prefix are plain characters.
      expect((await state().list({ prefix: 'user%' })).map((e) => e.key)).toEqual(['user%'])
      expect((await state().list({ prefix: 'user_' })).map((e) => e.key)).toEqual(['user_x'])
      const first = await state().list({ prefix: 'user', limit: 2 })
      expect(first.map((e) => e.key)).toEqual(['user%', 'user:1'])
      const next = await state().list({ prefix: 'user', limit: 2, after: first.at(-1)!.key })
      expect(next.map((e) => e.key)).toEqual(['user:10', 'user:2'])
      expect((await state().list()).length).toBeGreaterThanOrEqual(8)
    })
  })

  it('the same key in two tenants stays apart', async () => {
    await as('beta', async () => {
      expect(await state().get('workflow:1')).toBeUndefined()
      expect(await state().list({ prefix: 'user' })).toEqual([])
      expect(await state().set('workflow:1', 'beta')).toBe(1)
    })
    expect((await as('acme', () => state().get('workflow:1')))!.value).toEqual({ step: 'paused' })
    expect((await as('beta', () => state().get('workflow:1')))!.value).toBe('beta')
  })

  it('refuses bad input with INVALID_OPTION', async () => {
    await as('acme', async () => {
      const bad: Array<() => Promise<unknown>> = [
        () => state().set('', 1),
        () => state().set('x'.repeat(513), 1),
        () => state().set('a\0b', 1),
        () => state().set('\udc00', 1),
        () => state().set('k', undefined),
        () => state().set('k', 'x'.repeat(256 * 1024)),
        () => state().set('k', 1, { expectedVersion: -1 }),
        () => state().set('k', 1, { expectedVersion: 1.5 }),
        () => state().list({ limit: 0 }),
        () => state().list({ limit: 1001 }),
        () => state().get(7 as unknown as string),
      ]
      for (const call of bad) await expect(call()).rejects.toMatchObject({ code: 'INVALID_OPTION' })
      expect(await state().get('k')).toBeUndefined()
    })
  })

  it('purging a tenant removes its state with its database', async () => {
    const tenantry = get()
    await tenantry.createTenant({ slug: 'gone' })
    await as('gone', () => state().set('secret-plan', 'x'))
    await tenantry.deleteTenant('gone', { purge: true })
    await tenantry.createTenant({ slug: 'gone' })
    expect(await as('gone', () => state().list())).toEqual([])
    expect((await as('beta', () => state().get('workflow:1')))!.value).toBe('beta')
  })
}

describe('tenantry.state on SQLite', () => {
  const home = tempDir()
  let tenantry: Tenantry
  beforeAll(async () => {
    tenantry = await createTenantry({ home: home.path, migrations: { tenant: migrations }, services: { state: true } })
    await tenantry.createTenant({ slug: 'acme' })
    await tenantry.createTenant({ slug: 'beta' })
  })
  afterAll(async () => {
    await tenantry?.close()
    home.cleanup()
  })
  stateBehaviour(() => tenantry)

  it('without services.state there is no table, and tenantry.state says how to switch it on', async () => {
    const other = tempDir()
    const plain = await createTenantry({ home: other.path, migrations: { tenant: migrations } })
    try {
      expect(plain.migrations.names).not.toContain(STATE_STEP_NAME)
      await plain.createTenant({ slug: 'acme' })
      await expect(plain.withTenant('acme', () => plain.state.get('k'))).rejects.toMatchObject({ code: 'INVALID_CONFIG', message: expect.stringContaining('services') })
      const tables = await plain.withTenant('acme', () => sql<{ name: string }>`select name from sqlite_master where name = ${STATE_TABLE}`.execute(plain.db()))
      expect(tables.rows).toEqual([])
    } finally {
      await plain.close()
      other.cleanup()
    }
  })
})

const postgres = await findPostgres()
if ('skip' in postgres) console.warn(`skipping tenantry.state on Postgres: ${postgres.skip}`)

for (const isolation of ['schema', 'row'] as const) {
  describe.skipIf('skip' in postgres)(`tenantry.state on Postgres, ${isolation} isolation`, () => {
    const home = tempDir()
    const dataSourceId = `state_${isolation}_${process.pid}`
    let data: TestDatabase
    let tenantry: Tenantry
    beforeAll(async () => {
      if (!('url' in postgres)) return
      data = await createTestDatabase(postgres.url, `tenantry_state_${isolation}`)
      tenantry = await createTenantry({
        home: home.path,
        migrations: { tenant: migrations },
        dataSources: [{ id: dataSourceId, engine: 'postgres', url: data.url, isolations: [isolation] }],
        defaults: { dataSource: dataSourceId, isolation },
        services: { state: true },
      })
      await tenantry.createTenant({ slug: 'acme' })
      await tenantry.createTenant({ slug: 'beta' })
    })
    afterAll(async () => {
      if (!('url' in postgres)) return
      await tenantry?.close()
      await data?.drop()
      await dropAppRoles(postgres.url, [dataSourceId])
      home.cleanup()
    })
    stateBehaviour(() => tenantry)

    if (isolation === 'row') {
      it('the shared table is confined like an app table: tenant_id leads its key, RLS forced, raw SQL sees one tenant', async () => {
        const rows = await tenantry.withTenant('acme', () =>
          sql<{ forced: boolean; key: string }>`
            select c.relforcerowsecurity as forced, pg_get_constraintdef(con.oid) as key
            from pg_class c join pg_namespace n on n.oid = c.relnamespace
            join pg_constraint con on con.conrelid = c.oid and con.contype = 'p'
            where n.nspname = 'tenant_rows' and c.relname = ${STATE_TABLE}`.execute(tenantry.db()),
        )
        expect(rows.rows).toEqual([{ forced: true, key: 'PRIMARY KEY (tenant_id, key)' }])
        const beta = await tenantry.withTenant('beta', () => sql<{ key: string }>`select key from tenant_rows.tenantry_state order by key`.execute(tenantry.db()))
        expect(beta.rows).toEqual([{ key: 'workflow:1' }])
      })
    }
  })
}
