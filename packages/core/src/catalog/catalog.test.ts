import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTestDatabase, findPostgres, tempDir } from '../testing/services.js'
import { Catalog } from './catalog.js'

const postgres = await findPostgres()
const dir = tempDir()
const drops: Array<() => Promise<void>> = []
afterAll(async () => {
  for (const drop of drops) await drop()
  dir.cleanup()
})

const engines: Array<{ name: string; url: () => Promise<string>; skip?: string }> = [
  { name: 'sqlite', url: async () => join(dir.path, `catalog-${Math.random().toString(36).slice(2)}.db`) },
  {
    name: 'postgres',
    ...('skip' in postgres ? { skip: postgres.skip } : {}),
    url: async () => {
      if ('skip' in postgres) throw new Error(postgres.skip)
      const db = await createTestDatabase(postgres.url, 'tenantry_catalog')
      drops.push(db.drop)
      return db.url
    },
  },
]

for (const engine of engines) {
  describe.skipIf(engine.skip)(`catalog on ${engine.name}${engine.skip ? ` (skipped: ${engine.skip})` : ''}`, () => {
    let catalog: Catalog
    const placement = { isolation: 'database' as const, dataSourceId: 'local', locator: 'x.db' }
    let n = 0
    const id = () => `t${String(++n).padStart(19, 'a')}`

    beforeAll(async () => {
      catalog = Catalog.open({ url: await engine.url() })
      await catalog.migrate()
      await catalog.upsertDataSource({ id: 'local', engine: 'sqlite', mode: 'shared', config: { directory: '/d' }, capacity: null, region: null, secret: null })
    })
    afterAll(() => catalog.close())

    it('migrates once: a second run applies nothing', async () => {
      expect(await catalog.migrate()).toEqual([])
    })

    it('writes the audit entry given to insertTenant and transition in the same commit, and only with a transition that happened', async () => {
      const tenant = id()
      const actions = async () => (await catalog.auditLog(tenant)).map((e) => e.action).sort()
      await catalog.insertTenant({ id: tenant, slug: 'audited_one', name: 'One', placement }, { tenantId: tenant, action: 'test.inserted' })
      // A slug taken: neither the tenant nor its entry.
      await expect(catalog.insertTenant({ id: id(), slug: 'audited_one', name: 'Two', placement }, { tenantId: tenant, action: 'test.not_inserted' })).rejects.toMatchObject({ code: 'SLUG_TAKEN' })
      expect(await catalog.transition(tenant, ['provisioning'], 'ready', { audit: { tenantId: tenant, action: 'test.ready' } })).toBe(true)
      // Compare-and-set lost: no move, no entry.
      expect(await catalog.transition(tenant, ['provisioning'], 'ready', { audit: { tenantId: tenant, action: 'test.ready_again' } })).toBe(false)
      expect(await actions()).toEqual(['test.inserted', 'test.ready'])
      expect((await catalog.findTenantById(tenant))?.status).toBe('ready')
    })

    it('keeps a slug unique among tenants that are not purged', async () => {
      const first = id()
      await catalog.insertTenant({ id: first, slug: 'unique_one', name: 'One', placement })
      await expect(catalog.insertTenant({ id: id(), slug: 'unique_one', name: 'Two', placement })).rejects.toMatchObject({
        code: 'SLUG_TAKEN',
      })
      await catalog.transition(first, ['provisioning'], 'deleted', { purged: true })
      await catalog.insertTenant({ id: id(), slug: 'unique_one', name: 'Three', placement })
      expect((await catalog.findTenantBySlug('unique_one'))?.name).toBe('Three')
    })

    it('moves a tenant only from the expected status (compare-and-set)', async () => {
      const tenant = id()
      await catalog.insertTenant({ id: tenant, slug: 'cas', name: 'CAS', placement })
      expect(await catalog.transition(tenant, ['provisioning'], 'ready')).toBe(true)
      expect(await catalog.transition(tenant, ['provisioning'], 'failed')).toBe(false)
      expect((await catalog.findTenantById(tenant))?.status).toBe('ready')
    })

    it('finds the tenants behind in one query, with what each has applied', async () => {
      const [ahead, half, none] = [id(), id(), id()]
      for (const [tid, slug] of [[ahead, 'ahead'], [half, 'half'], [none, 'none']] as const) {
        await catalog.insertTenant({ id: tid, slug, name: slug, placement })
        await catalog.transition(tid, ['provisioning'], 'ready')
      }
      const at = new Date().toISOString()
      await catalog.recordMigrations(ahead, [{ name: 'm1', appliedAt: at }, { name: 'm2', appliedAt: at }])
      await catalog.recordMigrations(half, [{ name: 'm1', appliedAt: at }])
      await catalog.recordMigrations(half, [{ name: 'm1', appliedAt: at }]) // idempotent
      const behind = await catalog.tenantsBehind(['m1', 'm2'], { statuses: ['ready'], tenantIds: [ahead, half, none] })
      expect(behind.map((b) => [b.tenant.slug, b.applied])).toEqual([
        ['half', ['m1']],
        ['none', []],
      ])
    })

    it('lets one holder take a lock at a time', async () => {
      const lock = await catalog.acquireLock('test-lock')
      await expect(catalog.acquireLock('test-lock')).rejects.toMatchObject({ code: 'MIGRATION_LOCKED' })
      await lock.release()
      const again = await catalog.acquireLock('test-lock')
      await again.release()
      expect(await catalog.readLock('test-lock')).toBeUndefined()
    })

    it("releases a lock in the commit of the transition given it, only if the tenant moved; its own release later leaves a new holder's lock alone", async () => {
      const tenant = id()
      await catalog.insertTenant({ id: tenant, slug: 'locked_create', name: 'Locked', placement })
      const lock = await catalog.acquireLock('create:locked_create')
      // Compare-and-set lost: the lock is still held.
      expect(await catalog.transition(tenant, ['suspended'], 'ready', { release: lock })).toBe(false)
      expect((await catalog.readLock(lock.name))?.holder).toBe(lock.holder)

      expect(await catalog.transition(tenant, ['provisioning'], 'ready', { release: lock })).toBe(true)
      expect(await catalog.readLock(lock.name)).toBeUndefined()
      // Another holder takes it; the first holder's release leaves that one alone.
      const next = await catalog.acquireLock(lock.name)
      await lock.release()
      expect((await catalog.readLock(lock.name))?.holder).toBe(next.holder)
      await next.release()
    })
  })
}
