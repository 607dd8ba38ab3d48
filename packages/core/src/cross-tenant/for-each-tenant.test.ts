import type { Kysely } from 'kysely'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import type { TenantMigration } from '../migrations/migration-set.js'
import { createTenantry, type Tenantry } from '../tenantry.js'
import { tempDir } from '../testing/services.js'
import { forEachTenant, type TenantResult } from './for-each-tenant.js'

const notes: TenantMigration = {
  up: (db: Kysely<any>) => db.schema.createTable('notes').addColumn('id', 'integer', (c) => c.primaryKey()).addColumn('slug', 'text').execute(),
}

const SLUGS = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf']

describe('tenantry.forEachTenant', () => {
  const dir = tempDir('tenantry-for-each-')
  let tenantry: Tenantry
  /** Tenant ids in id order, as results come back. */
  let ids: string[]

  beforeAll(async () => {
    tenantry = await createTenantry({ home: dir.path, migrations: { tenant: { '0001_notes': notes } } })
    for (const slug of SLUGS) await tenantry.createTenant({ slug })
    ids = (await tenantry.catalog.listTenants()).map((t) => t.id).sort()
    // Each tenant's own row: what fn reads proves it ran inside that tenant.
    for (const slug of SLUGS) await tenantry.withTenant(slug, () => tenantry.db().insertInto('notes').values({ id: 1, slug }).execute())
  })

  afterAll(async () => {
    await tenantry?.close()
    dir.cleanup()
  })

  const slugOf = (r: TenantResult<unknown>) => r.tenant.slug

  it('runs fn inside each ready tenant (tenantry.db() is that tenant) and returns one result per tenant in id order', async () => {
    const results = await tenantry.forEachTenant(async (tenant) => {
      const row = await tenantry.db().selectFrom('notes').select('slug').executeTakeFirstOrThrow()
      return { own: row.slug, current: tenantry.currentTenant()?.slug, record: tenant.slug }
    })
    expect(results.map((r) => r.tenant.id)).toEqual(ids)
    for (const result of results) {
      expect(result).toMatchObject({ status: 'success', value: { own: result.tenant.slug, current: result.tenant.slug, record: result.tenant.slug } })
    }
  })

  it('reports failing tenants in the middle as errors with code and message, and the others still run', async () => {
    const seen: string[] = []
    const results = await tenantry.forEachTenant(
      async (tenant) => {
        if (tenant.slug === 'charlie') throw new Error('charlie broke')
        if (tenant.slug === 'echo') await tenantry.db().selectFrom('no_such_table').selectAll().execute()
        return tenant.slug.length
      },
      { concurrency: 2, onResult: (r) => seen.push(r.tenant.slug) },
    )
    expect(results).toHaveLength(SLUGS.length)
    expect(seen.sort()).toEqual([...SLUGS].sort())
    const bySlug = new Map(results.map((r) => [slugOf(r), r]))
    expect(bySlug.get('charlie')).toMatchObject({ status: 'error', error: { code: 'INTERNAL', message: 'charlie broke' } })
    expect(bySlug.get('echo')).toMatchObject({ status: 'error', error: { code: 'SQLITE_ERROR', message: expect.stringContaining('no_such_table') } })
    for (const slug of SLUGS.filter((s) => s !== 'charlie' && s !== 'echo')) expect(bySlug.get(slug)).toMatchObject({ status: 'success', value: slug.length })
  })

  it('never runs more than `concurrency` tenants at once, and does run that many', async () => {
    let inFlight = 0
    let max = 0
    let release!: () => void
    const full = new Promise<void>((resolve) => (release = resolve))
    const results = await tenantry.forEachTenant(
      async () => {
        inFlight++
        max = Math.max(max, inFlight)
        // The first three wait for each other: with a bound below 3 this would never settle, above 3 max says so.
        if (inFlight === 3) release()
        await full
        await new Promise((resolve) => setImmediate(resolve))
        inFlight--
      },
      { concurrency: 3 },
    )
    expect(results.every((r) => r.status === 'success')).toBe(true)
    expect(max).toBe(3)
  })

  it('filters in the query (slugs, isolation, data source) or with a predicate', async () => {
    const picked = await tenantry.forEachTenant(async (t) => t.slug, { filter: { slugs: ['golf', 'alpha', 'nobody'] } })
    expect(picked.map(slugOf).sort()).toEqual(['alpha', 'golf'])
    expect(await tenantry.forEachTenant(async () => 1, { filter: { isolation: 'schema' } })).toEqual([])
    expect(await tenantry.forEachTenant(async () => 1, { filter: { dataSource: 'local', isolation: 'database' } })).toHaveLength(SLUGS.length)
    expect(await tenantry.forEachTenant(async () => 1, { filter: { dataSource: 'elsewhere' } })).toEqual([])
    const predicate = await tenantry.forEachTenant(async (t) => t.slug, { filter: (t) => t.slug.startsWith('d') || t.slug.startsWith('e') })
    expect(predicate.map(slugOf)).toEqual(ids.map((id) => predicate.find((r) => r.tenant.id === id)?.tenant.slug).filter((s) => s !== undefined))
    expect(predicate.map(slugOf).sort()).toEqual(['delta', 'echo'])
  })

  it('skips a tenant the filter lets in that is not ready, with its status as the reason, and never enters it', async () => {
    await tenantry.tenants.suspend('bravo')
    try {
      const entered: string[] = []
      const results = await tenantry.forEachTenant(
        async (t) => {
          entered.push(t.slug)
          return t.slug
        },
        { filter: { status: ['ready', 'suspended'] } },
      )
      expect(results).toHaveLength(SLUGS.length)
      expect(results.find((r) => slugOf(r) === 'bravo')).toMatchObject({ status: 'skipped', reason: 'tenant is suspended' })
      expect(entered).not.toContain('bravo')
      // The default is ready tenants only: a suspended one is not visited at all.
      expect((await tenantry.forEachTenant(async () => 1)).map(slugOf)).not.toContain('bravo')
    } finally {
      await tenantry.tenants.resume('bravo')
    }
  })

  it('skips a tenant suspended between listing and entering, instead of reporting an error', async () => {
    const last = (await tenantry.catalog.findTenantById(ids[ids.length - 1]!))!
    const entered: string[] = []
    try {
      // One at a time: the first tenant's fn suspends the last one, which the page already listed as ready.
      const results = await tenantry.forEachTenant(
        async (t) => {
          entered.push(t.slug)
          if (entered.length === 1) {
            await tenantry.tenants.suspend(last.slug)
            tenantry.router.invalidate(last.id)
          }
          return t.slug
        },
        { concurrency: 1 },
      )
      expect(results).toHaveLength(SLUGS.length)
      expect(results[results.length - 1]).toMatchObject({ tenant: { slug: last.slug }, status: 'skipped', reason: expect.stringContaining('suspended') })
      expect(entered).not.toContain(last.slug)
    } finally {
      await tenantry.tenants.resume(last.slug)
    }
  })

  it('stops starting tenants once aborted: the rest are skipped as aborted, and the one running is handed the signal', async () => {
    const controller = new AbortController()
    const signals: Array<AbortSignal | undefined> = []
    const results = await tenantry.forEachTenant(
      async (_t, { signal }) => {
        signals.push(signal)
        return 'ran'
      },
      { concurrency: 1, signal: controller.signal, onResult: () => controller.abort() },
    )
    expect(results).toHaveLength(SLUGS.length)
    expect(results[0]).toMatchObject({ status: 'success', value: 'ran' })
    expect(results.slice(1).every((r) => r.status === 'skipped' && r.reason === 'aborted')).toBe(true)
    expect(signals).toEqual([controller.signal])
  })

  it('reads the catalog a page at a time and visits every tenant once', async () => {
    const page = vi.spyOn(tenantry.catalog, 'tenantsPage')
    try {
      const results = await forEachTenant(
        { catalog: tenantry.catalog, withTenant: (t, fn) => tenantry.withTenant(t, fn), pageSize: 2 },
        async (t) => t.id,
        { concurrency: 3 },
      )
      expect(results.map((r) => (r.status === 'success' ? r.value : undefined))).toEqual(ids)
      // 7 tenants in pages of 2: four reads, none asking for more than a page.
      expect(page).toHaveBeenCalledTimes(4)
      expect(page.mock.calls.every(([options]) => options.limit === 2)).toBe(true)
    } finally {
      page.mockRestore()
    }
  })

  it('refuses bad options with INVALID_OPTION before running anything', async () => {
    const fn = vi.fn(async () => 1)
    for (const options of [
      { concurrency: 0 },
      { concurrency: 2.5 },
      { concurrency: Number.NaN },
      { filter: { state: ['ready'] } },
      { filter: { status: ['active'] } },
      { filter: { status: 'ready' } },
      { filter: { isolation: 'table' } },
      { filter: { slugs: ['Not A Slug'] } },
      { filter: { dataSource: '' } },
    ]) {
      await expect(tenantry.forEachTenant(fn, options as never)).rejects.toMatchObject({ code: 'INVALID_OPTION' })
    }
    await expect(tenantry.forEachTenant(undefined as never)).rejects.toMatchObject({ code: 'INVALID_OPTION' })
    expect(fn).not.toHaveBeenCalled()
    // Empty selections select nothing (not everything).
    expect(await tenantry.forEachTenant(fn, { filter: { slugs: [] } })).toEqual([])
    expect(await tenantry.forEachTenant(fn, { filter: { status: [] } })).toEqual([])
    expect(fn).not.toHaveBeenCalled()
  })
})
