import { existsSync } from 'node:fs'
import { sql, type Kysely } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTenantry, type Tenantry } from '../index.js'
import { resolvePointInTimeConfig } from './point-in-time-config.js'
import { tempDir } from '../testing/index.js'

// Issue 13, "go beyond": point-in-time restore of one SQLite tenant from its shipped WAL, in
// place or as a new tenant, through the same restore as backups. Ticks are driven with stamps.

const migrations = {
  '0001_notes': {
    up: async (db: Kysely<any>) => {
      await db.schema
        .createTable('notes')
        .addColumn('id', 'integer', (c) => c.primaryKey())
        .addColumn('body', 'text', (c) => c.notNull())
        .execute()
    },
  },
}

async function ids(tenantry: Tenantry, slug: string): Promise<number[]> {
  return tenantry.withTenant(slug, async () => {
    const result = await sql<{ id: number }>`select id from notes order by id`.execute(tenantry.db())
    return result.rows.map((r) => Number(r.id))
  })
}

async function write(tenantry: Tenantry, slug: string, ...values: number[]): Promise<void> {
  await tenantry.withTenant(slug, async () => {
    for (const id of values) await tenantry.db().insertInto('notes').values({ id, body: `${slug} ${id} ${'·'.repeat(300)}` }).execute()
  })
}

describe('point-in-time restore of a SQLite tenant', () => {
  const home = tempDir()
  let tenantry: Tenantry
  beforeAll(async () => {
    tenantry = await createTenantry({ home: home.path, migrations: { tenant: migrations }, backups: { pointInTime: { retention: '1h' } } })
  })
  afterAll(async () => {
    await tenantry?.close()
    home.cleanup()
  })

  it('restores to each shipped moment exactly the rows committed by then, in place and --as; the neighbour is untouched; times outside the window are refused', async () => {
    const archive = tenantry.pointInTime!
    await tenantry.createTenant({ slug: 'acme' })
    await tenantry.createTenant({ slug: 'globex' })
    const t0 = Math.ceil(Date.now() / 1000) * 1000 + 1000 // after the migrations were recorded
    const at = (ms: number) => new Date(t0 + ms).toISOString()

    await write(tenantry, 'acme', 1)
    expect((await archive.tick(t0)).get((await tenantry.catalog.findTenantBySlug('acme'))!.id)).toMatchObject({ rebased: true })
    await write(tenantry, 'acme', 2, 3)
    await write(tenantry, 'globex', 100)
    await archive.tick(t0 + 1000)
    // A write after a complete checkpoint restarts the WAL: the chain goes on across it.
    await write(tenantry, 'acme', 4)
    await tenantry.withTenant('acme', () => tenantry.db().deleteFrom('notes').where('id', '=', 2).execute())
    await archive.tick(t0 + 2000)
    await write(tenantry, 'globex', 101)
    await archive.tick(t0 + 3000)
    expect(await ids(tenantry, 'acme')).toEqual([1, 3, 4])
    const globex = await ids(tenantry, 'globex')

    const window = await tenantry.tenants.restorableWindow('acme')
    expect(window).toEqual({ from: at(0), to: at(3000), ranges: [{ from: at(0), to: at(3000) }] })

    // Outside the window (or not a time): refused, nothing touched, no backup left behind.
    const backupsBefore = await tenantry.tenants.backups('acme')
    await expect(tenantry.tenants.restore('acme', { at: at(-1000) })).rejects.toMatchObject({ code: 'INVALID_OPTION', message: expect.stringMatching(/cannot be restored to/) })
    await expect(tenantry.tenants.restore('acme', { at: at(60_000) })).rejects.toMatchObject({ code: 'INVALID_OPTION' })
    await expect(tenantry.tenants.restore('acme', { at: 'yesterday' })).rejects.toMatchObject({ code: 'INVALID_OPTION' })
    await expect(tenantry.tenants.restore('acme', { at: at(1000), backup: backupsBefore[0]?.id ?? 'b000000000aaaaaaaaaaaaaaaa' })).rejects.toMatchObject({ code: 'INVALID_OPTION' })
    expect(await tenantry.tenants.backups('acme')).toEqual(backupsBefore)
    expect(await ids(tenantry, 'acme')).toEqual([1, 3, 4])

    // As new tenants: each moment gives exactly what had committed (and been shipped) by then.
    const expected: Array<[number, number[]]> = [
      [0, [1]],
      [999, [1]],
      [1000, [1, 2, 3]],
      [2500, [1, 3, 4]],
    ]
    for (const [ms, rows] of expected) {
      const copy = await tenantry.tenants.restore('acme', { at: at(ms), as: `acme_${ms}`, actor: 'test' })
      expect(copy.backup.method).toBe('point-in-time')
      expect(await ids(tenantry, `acme_${ms}`)).toEqual(rows)
    }
    expect(await ids(tenantry, 'acme')).toEqual([1, 3, 4])

    // In place: back to t0+1000; the neighbour on the same data source keeps its rows.
    const restored = await tenantry.tenants.restore('acme', { at: at(1000), actor: 'test' })
    expect(restored.tenant.slug).toBe('acme')
    expect(existsSync(restored.backup.location)).toBe(true)
    expect(await ids(tenantry, 'acme')).toEqual([1, 2, 3])
    expect(await ids(tenantry, 'globex')).toEqual(globex)
    const actions = (await tenantry.catalog.auditLog(restored.tenant.id)).map((e) => e.action)
    expect(actions).toEqual(expect.arrayContaining(['tenant.restore.started', 'tenant.restore.succeeded']))

    // The restore itself is a commit the shipper archives: the tenant can go forward again.
    await write(tenantry, 'acme', 5)
    await archive.tick(t0 + 4000)
    await tenantry.tenants.restore('acme', { at: at(2000), actor: 'test' })
    expect(await ids(tenantry, 'acme')).toEqual([1, 3, 4])
    await archive.tick(t0 + 5000)
    await tenantry.tenants.restore('acme', { at: at(4000), actor: 'test' })
    expect(await ids(tenantry, 'acme')).toEqual([1, 2, 3, 5])

    // Purged: its archive goes with its backups, and the shipper lets go of it.
    const acmeId = restored.tenant.id
    expect(existsSync(archive.archiveOf(acmeId))).toBe(true)
    await tenantry.tenants.delete('acme', { purge: true })
    expect((await archive.tick(t0 + 6000)).has(acmeId)).toBe(false)
    expect(existsSync(archive.archiveOf(acmeId))).toBe(false)
    expect(await tenantry.tenants.restorableWindow('globex')).toMatchObject({ to: at(6000) })
  })

  it('reads retention and interval from the config', () => {
    expect(resolvePointInTimeConfig({})).toEqual({ retentionMs: 7 * 86_400_000, intervalMs: 1000, rebaseAfterMs: 86_400_000 })
    expect(resolvePointInTimeConfig({ retention: '2h', intervalMs: 500 })).toMatchObject({ retentionMs: 7_200_000, intervalMs: 500, rebaseAfterMs: 3_600_000 })
    expect(() => resolvePointInTimeConfig({ retention: 'forever' })).toThrow(/retention/)
    expect(() => resolvePointInTimeConfig({ intervalMs: 0 })).toThrow(/intervalMs/)
  })
})
