import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { isTenantryError } from '../errors.js'
import { createTenantry, type Tenantry } from '../tenantry.js'
import { createTestDatabase, dropAppRoles, findPostgres, tempDir, type TestDatabase } from '../testing/services.js'
import { parseBytes, resolveQuotasConfig } from './quotas.js'

const migrations = {
  '0001_files': { up: (db: any) => db.schema.createTable('files').addColumn('id', 'integer', (c: any) => c.primaryKey()).addColumn('body', 'blob').execute() },
}
const KB64 = new Uint8Array(64 * 1024).fill(7)

const dir = tempDir()
let tenantry: Tenantry
beforeAll(async () => {
  tenantry = await createTenantry({ home: join(dir.path, 'home'), migrations: { tenant: migrations }, usage: { flushIntervalMs: 60_000 } })
  await tenantry.tenants.create({ slug: 'acme' })
  await tenantry.tenants.create({ slug: 'globex' })
})
afterAll(async () => {
  await tenantry?.close()
  dir.cleanup()
})

/** Inserts 64 KB rows from `first` until the quota stops one; returns the id that failed and the error. */
async function fillUp(insert: (id: number) => Promise<unknown>, first = 1): Promise<{ id: number; error: unknown }> {
  for (let id = first; id < first + 200; id++) {
    try {
      await insert(id)
    } catch (error) {
      return { id, error }
    }
  }
  throw new Error('the storage quota never stopped a write')
}

describe('quotas', () => {
  it('reads config defaults, refuses unknown or bad fields, and parses sizes', () => {
    expect(tenantry.quotas.defaults).toEqual({ storageBytes: 1024 ** 3, tokens: 100, bulkRows: 500, fileBytes: 1024 ** 3 })
    expect(() => resolveQuotasConfig({ storage: 1 })).toThrow(/quotas: .*unknown field "storage"/)
    expect(() => resolveQuotasConfig({ tokens: -1 })).toThrow(/quotas: tokens/)
    expect(parseBytes('1GB')).toBe(1024 ** 3)
    expect(parseBytes('1.5 kb')).toBe(1536)
    expect(parseBytes('4096')).toBe(4096)
    expect(() => parseBytes('12XB')).toThrow(/Invalid size "12XB"/)
  })

  it('sets, reads and resets per-tenant overrides, audited, and rejects bad values', async () => {
    const view = await tenantry.quotas.set('globex', { tokens: 5, bulkRows: null }, { actor: 'test' })
    expect(view.quotas).toEqual({ storageBytes: 1024 ** 3, tokens: 5, bulkRows: null, fileBytes: 1024 ** 3 })
    expect(view.overrides).toEqual({ tokens: 5, bulkRows: null })
    expect((await tenantry.quotas.set('globex', { tokens: 'default' })).overrides).toEqual({ bulkRows: null })
    expect((await tenantry.quotas.get('globex')).quotas.tokens).toBe(100)
    await expect(tenantry.quotas.set('globex', { tokens: -3 })).rejects.toThrow(/whole number/)
    await expect(tenantry.quotas.set('globex', { nope: 1 } as never)).rejects.toThrow(/Unknown quota "nope"/)
    await expect(tenantry.quotas.get('nobody')).rejects.toMatchObject({ code: 'TENANT_NOT_FOUND' })
    const log = await tenantry.catalog.auditLog((await tenantry.catalog.findTenantBySlug('globex'))!.id)
    expect(log.filter((e) => e.action === 'quotas.set')).toHaveLength(2)
  })

  it('stops in-process SQLite writes at the storage quota, keeps earlier rows, and lets writes go on when raised', async () => {
    await tenantry.quotas.set('acme', { storageBytes: 512 * 1024 })
    const insert = (id: number) => tenantry.withTenant('acme', () => tenantry.db().insertInto('files').values({ id, body: KB64 }).execute())
    const { id, error } = await fillUp(insert)
    expect((error as { code?: string }).code).toBe('SQLITE_FULL')
    expect(id).toBeGreaterThan(2)
    const rows = await tenantry.withTenant('acme', () => tenantry.db().selectFrom('files').select('id').execute())
    expect(rows.map((r) => r.id)).toEqual(Array.from({ length: id - 1 }, (_, i) => i + 1))
    // A transaction that hits the quota leaves nothing behind.
    await expect(
      tenantry.withTenant('acme', () =>
        tenantry.db().transaction().execute(async (trx) => {
          await trx.deleteFrom('files').where('id', '=', 1).execute()
          await trx.insertInto('files').values([{ id: 1000, body: KB64 }, { id: 1001, body: KB64 }, { id: 1002, body: KB64 }]).execute()
        }),
      ),
    ).rejects.toMatchObject({ code: 'SQLITE_FULL' })
    expect(await tenantry.withTenant('acme', () => tenantry.db().selectFrom('files').select('id').execute())).toHaveLength(id - 1)

    await tenantry.quotas.set('acme', { storageBytes: 4 * 1024 * 1024 })
    await insert(id)
    expect(await tenantry.withTenant('acme', () => tenantry.db().selectFrom('files').select('id').execute())).toHaveLength(id)
    await tenantry.quotas.set('acme', { storageBytes: 'default' })
  })

  it('stops raw SQL (executor processes) at the storage quota with QUOTA_EXCEEDED', async () => {
    const tenant = (await tenantry.router.resolve('globex'))!
    await tenantry.quotas.set('globex', { storageBytes: 256 * 1024 })
    await tenantry.router.resolve('globex') // as every request does: the engine learns the quota
    const engine = await tenantry.dataSources.engine(tenant.placement.dataSourceId)
    const session = await engine.rawSession!.open({ tenantId: tenant.id, ...tenant.placement }, { readOnly: false })
    try {
      const { id, error } = await fillUp(async (id) => {
        const result = await session.execute({ sql: 'INSERT INTO files (id, body) VALUES (?, zeroblob(65536))', args: [BigInt(id)] })
        if (!result.ok) throw new Error(result.message)
      })
      expect(isTenantryError(error, 'QUOTA_EXCEEDED')).toBe(true)
      const count = await session.execute({ sql: 'SELECT count(*) FROM files' })
      expect(count.ok && Number(count.rows[0]![0])).toBe(id - 1)
    } finally {
      await session.close()
    }
    await tenantry.quotas.set('globex', { storageBytes: null })
    await tenantry.router.resolve('globex')
  })

  it('refuses a token past the tokens quota; a revoked one frees its place', async () => {
    await tenantry.quotas.set('acme', { tokens: 2 })
    const first = await tenantry.tokens.create('acme', { name: 'one', readOnly: false })
    await tenantry.tokens.create('acme', { name: 'two', readOnly: false })
    await expect(tenantry.tokens.create('acme', { name: 'three', readOnly: false })).rejects.toMatchObject({ code: 'QUOTA_EXCEEDED' })
    await tenantry.tokens.revoke(first.record.id)
    await tenantry.tokens.create('acme', { name: 'three', readOnly: false })
  })

  it('meters statements and rows of tenant handles, flushes them per day, and drops settings with a deleted tenant', async () => {
    await tenantry.tenants.create({ slug: 'initech' })
    await tenantry.withTenant('initech', async () => {
      await tenantry.db().insertInto('files').values([{ id: 1 }, { id: 2 }]).execute()
      await tenantry.db().selectFrom('files').selectAll().execute()
    })
    const usage = await tenantry.usageOf('initech')
    expect(usage.days).toHaveLength(1)
    expect(usage.days[0]).toMatchObject({ statements: 2, rowsWritten: 2, rowsRead: 2, day: new Date().toISOString().slice(0, 10) })
    expect(usage.days[0]!.storageBytes).toBeGreaterThan(0)
    const id = usage.tenantId
    await tenantry.quotas.set('initech', { tokens: 1 })
    expect(await tenantry.catalog.tenantSettings(id)).toBeDefined()
    await tenantry.deleteTenant('initech', { purge: true })
    expect(await tenantry.catalog.tenantSettings(id)).toBeUndefined()
    expect(await tenantry.catalog.usage(id)).toHaveLength(1)
  })
})

describe('usage metering', () => {
  it('writes the usage of known tenants even when the catalog refuses one (an unknown tenant id)', async () => {
    const globex = (await tenantry.catalog.findTenantBySlug('globex'))!.id
    const before = (await tenantry.usageOf('globex')).days[0]?.requests ?? 0
    tenantry.usage.record('t_not_a_tenant', { requests: 1 })
    tenantry.usage.record(globex, { requests: 2 })
    await tenantry.usage.flush()
    expect((await tenantry.usageOf('globex')).days[0]!.requests).toBe(before + 2)
    await tenantry.usage.flush() // the refused count is not retried forever
  })

  it('survives a restart: counts are flushed to the catalog on close', async () => {
    const home = join(dir.path, 'restart')
    const first = await createTenantry({ home, migrations: { tenant: migrations }, usage: { flushIntervalMs: 60_000 } })
    await first.tenants.create({ slug: 'acme' })
    await first.withTenant('acme', async () => {
      await first.db().insertInto('files').values({ id: 1 }).execute()
      await first.db().selectFrom('files').selectAll().execute()
    })
    first.usage.record((await first.catalog.findTenantBySlug('acme'))!.id, { requests: 3 })
    await first.close()
    const second = await createTenantry({ home, migrations: { tenant: migrations } })
    try {
      const { days } = await second.usageOf('acme')
      expect(days).toHaveLength(1)
      expect(days[0]).toMatchObject({ requests: 3, statements: 2, rowsWritten: 1, rowsRead: 1 })
    } finally {
      await second.close()
    }
  })
})

const postgres = await findPostgres()
describe.skipIf('skip' in postgres)('quotas on Postgres', () => {
  let db: TestDatabase
  let pgTenantry: Tenantry
  const pgDir = tempDir()
  beforeAll(async () => {
    db = await createTestDatabase((postgres as { url: string }).url)
    pgTenantry = await createTenantry({
      home: join(pgDir.path, 'home'),
      dataSources: [{ id: 'pg', engine: 'postgres', url: db.url, isolations: ['schema', 'row'] }],
      defaults: { isolation: 'schema' },
      migrations: { tenant: { '0001_notes': { up: (k: any) => k.schema.createTable('notes').addColumn('id', 'integer').addColumn('body', 'text').execute() } } },
      quotas: { storageCheckIntervalMs: 1 },
    })
    await pgTenantry.tenants.create({ slug: 'acme' })
    await pgTenantry.tenants.create({ slug: 'rowco', isolation: 'row' })
  })
  afterAll(async () => {
    await pgTenantry?.close()
    await dropAppRoles((postgres as { url: string }).url, ['pg']).catch(() => {})
    await db?.drop()
    pgDir.cleanup()
  })

  for (const slug of ['acme', 'rowco']) {
    it(`checks the storage quota against the measured size (${slug === 'acme' ? 'schema' : 'row'} isolation)`, async () => {
      const tenant = (await pgTenantry.catalog.findTenantBySlug(slug))!
      await pgTenantry.assertStorageQuota(tenant.id)
      await pgTenantry.withTenant(slug, () => pgTenantry.db().insertInto('notes').values({ id: 1, body: 'x'.repeat(20_000) }).execute())
      const size = (await pgTenantry.storageBytes(tenant))!
      expect(size).toBeGreaterThan(0)
      await pgTenantry.quotas.set(slug, { storageBytes: Math.max(1, size - 1) })
      await expect(pgTenantry.assertStorageQuota(tenant.id)).rejects.toMatchObject({ code: 'QUOTA_EXCEEDED' })
      await pgTenantry.quotas.set(slug, { storageBytes: size * 100 })
      await pgTenantry.assertStorageQuota(tenant.id)
    })
  }
})
