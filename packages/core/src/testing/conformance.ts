import { cp, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { TenantryConfig } from '../config.js'
import type { EngineName, Isolation } from '../engines/engine.js'
import { isTenantryError } from '../errors.js'
import { createTenantry, type Tenantry } from '../tenantry.js'
import { tempDir } from './services.js'

/** The test names, for `skip`. */
export const CONFORMANCE_TESTS = [
  'crud',
  'raw sql and transactions',
  'colliding ids stay apart',
  'concurrent contexts stay apart',
  'no tenant, no data',
  'a handle is confined to its tenant',
  'new tenants get every migration',
  'fan-out applies a new migration to every tenant',
  'one tenant failing a migration does not stop or corrupt another',
  'lifecycle',
  'slug stays taken until purged',
] as const

export type ConformanceTest = (typeof CONFORMANCE_TESTS)[number]

export interface ConformanceOptions {
  engine: EngineName
  isolation: Isolation
  /**
   * The app's tenant migrations directory. The suite runs on the CV builder data model
   * (`examples/cv-builder`: tables `jobs` and `highlights`), so point this at its migrations.
   */
  migrations: string
  /**
   * A config whose default placement is (`engine`, `isolation`). The suite passes a fresh
   * `home` and a migrations directory; return what else the engine needs, and a teardown.
   */
  setup(input: { home: string; migrations: string }): Promise<{ config: TenantryConfig; teardown?(): Promise<void> }>
  /** Tests this engine × isolation cannot run, each with the reason. */
  skip?: Array<{ reason: string; tests: ConformanceTest[] }>
}

/**
 * One suite for every engine × isolation (as unstorage's `testDriver`): CRUD, isolation
 * between tenants whose row ids collide, migrations, lifecycle and `NoTenantError`.
 */
export function runConformance(options: ConformanceOptions): void {
  const skipped = new Map<string, string>()
  for (const { reason, tests } of options.skip ?? []) for (const test of tests) skipped.set(test, reason)
  const test = (name: ConformanceTest, fn: () => Promise<void>) => {
    const reason = skipped.get(name)
    if (reason) it.skip(`${name} (skipped: ${reason})`, fn)
    else it(name, fn)
  }

  describe(`conformance: ${options.engine} × ${options.isolation}`, () => {
    const dir = tempDir('tenantry-conformance-')
    const migrations = join(dir.path, 'migrations')
    let teardown: (() => Promise<void>) | undefined
    let config: TenantryConfig
    let tenantry: Tenantry
    let counter = 0
    /** Distinct slugs per test, so tests share one instance without sharing tenants. */
    const slug = (base: string) => `${base}_${++counter}`
    /**
     * After a test adds a migration, the suite goes on with an instance that knows it, as a
     * deployed app would: an instance with the older set must not provision into a newer shared schema.
     */
    const reopen = async () => {
      await tenantry.close()
      tenantry = await createTenantry(config)
      return tenantry
    }

    beforeAll(async () => {
      await cp(options.migrations, migrations, { recursive: true })
      const setup = await options.setup({ home: join(dir.path, 'home'), migrations })
      config = setup.config
      teardown = setup.teardown
      tenantry = await createTenantry(config)
    })

    afterAll(async () => {
      await tenantry?.close()
      await teardown?.()
      dir.cleanup()
    })

    const insertJob = (company: string, id?: number) =>
      tenantry
        .db()
        .insertInto('jobs')
        .values({ ...(id === undefined ? {} : { id }), company, title: 'Engineer', start_date: '2020-01-01' })
        .returning('id')
        .executeTakeFirstOrThrow()

    test('crud', async () => {
      const tenant = await tenantry.createTenant({ slug: slug('crud') })
      expect(tenant.status).toBe('ready')
      expect(tenant.placement.isolation).toBe(options.isolation)
      await tenantry.withTenant(tenant.slug, async () => {
        const db = tenantry.db()
        const { id } = await insertJob('Initech')
        await db.insertInto('highlights').values({ job_id: id, content: 'Shipped it', skills: '["ts"]' }).execute()
        await db.updateTable('jobs').set({ title: 'Staff Engineer' }).where('id', '=', id).execute()
        const row = await db.selectFrom('jobs').selectAll().where('id', '=', id).executeTakeFirstOrThrow()
        expect(row).toMatchObject({ company: 'Initech', title: 'Staff Engineer' })
        await db.deleteFrom('highlights').where('job_id', '=', id).execute()
        await db.deleteFrom('jobs').where('id', '=', id).execute()
        expect(await db.selectFrom('jobs').selectAll().execute()).toEqual([])
      })
    })

    test('raw sql and transactions', async () => {
      const tenant = await tenantry.createTenant({ slug: slug('rawsql') })
      await tenantry.withTenant(tenant.slug, async () => {
        const db = tenantry.db()
        const company = "O'Reilly; DROP TABLE jobs; --"
        await sql`insert into jobs (company, title, start_date) values (${company}, ${'Editor'}, ${'2021-01-01'})`.execute(db)
        const { rows } = await sql<{ company: string }>`select company from jobs where company = ${company}`.execute(db)
        expect(rows).toEqual([{ company }])

        await expect(
          db.transaction().execute(async (trx) => {
            await trx.insertInto('jobs').values({ company: 'Rolled back', title: 'x', start_date: '2020-01-01' }).execute()
            throw new Error('abort')
          }),
        ).rejects.toThrow('abort')
        const companies = (await db.selectFrom('jobs').select('company').execute()).map((r) => r.company)
        expect(companies).toEqual([company])
      })
    })

    test('colliding ids stay apart', async () => {
      const a = await tenantry.createTenant({ slug: slug('collide_a') })
      const b = await tenantry.createTenant({ slug: slug('collide_b') })
      await tenantry.withTenant(a.slug, () => insertJob('Alpha', 1))
      await tenantry.withTenant(b.slug, () => insertJob('Beta', 1))
      await tenantry.withTenant(a.slug, () => tenantry.db().updateTable('jobs').set({ title: 'Changed' }).where('id', '=', 1).execute())
      await tenantry.withTenant(b.slug, () => tenantry.db().deleteFrom('jobs').where('id', '=', 1).execute())
      const rowsA = await tenantry.withTenant(a.slug, () => tenantry.db().selectFrom('jobs').selectAll().execute())
      const rowsB = await tenantry.withTenant(b.slug, () => tenantry.db().selectFrom('jobs').selectAll().execute())
      expect(rowsA).toHaveLength(1)
      expect(rowsA[0]).toMatchObject({ id: 1, company: 'Alpha', title: 'Changed' })
      expect(rowsB).toEqual([])
    })

    test('concurrent contexts stay apart', async () => {
      const tenants = await Promise.all([0, 1, 2, 3].map(async (i) => tenantry.createTenant({ slug: slug(`conc${i}`) })))
      // Interleave awaits, timers and nested promise pools across tenants: each call must only ever see its own tenant.
      const work = tenants.flatMap((tenant) =>
        Array.from({ length: 10 }, (_, n) =>
          tenantry.withTenant(tenant.slug, async () => {
            await new Promise((r) => setTimeout(r, (n * 7) % 5))
            await insertJob(tenant.slug)
            await new Promise<void>((r) => setImmediate(r))
            const seen = await Promise.all([1, 2].map(() => tenantry.db().selectFrom('jobs').select('company').distinct().execute()))
            return { tenant: tenant.slug, current: tenantry.currentTenant()?.slug, seen: seen.flat().map((r) => r.company) }
          }),
        ),
      )
      for (const { tenant, current, seen } of await Promise.all(work)) {
        expect(current).toBe(tenant)
        expect(new Set(seen)).toEqual(new Set([tenant]))
      }
    })

    test('no tenant, no data', async () => {
      expect(() => tenantry.db()).toThrowError(expect.objectContaining({ name: 'NoTenantError', code: 'NO_TENANT' }))
      await expect(tenantry.withTenant(slug('missing'), () => 1)).rejects.toMatchObject({ code: 'TENANT_NOT_FOUND' })
    })

    test('a handle is confined to its tenant', async () => {
      const a = await tenantry.createTenant({ slug: slug('confine_a') })
      const b = await tenantry.createTenant({ slug: slug('confine_b') })
      await tenantry.withTenant(a.slug, () => insertJob('Secret'))
      const leaked = await tenantry.withTenant(a.slug, () => tenantry.db())
      await expect(leaked.selectFrom('jobs').selectAll().execute()).rejects.toMatchObject({ code: 'NO_TENANT' })
      await expect(
        tenantry.withTenant(b.slug, () => leaked.selectFrom('jobs').selectAll().execute()),
      ).rejects.toMatchObject({ code: 'TENANT_MISMATCH' })
      await expect(tenantry.withTenant(b.slug, () => sql`select * from jobs`.execute(leaked))).rejects.toMatchObject({
        code: 'TENANT_MISMATCH',
      })
    })

    test('new tenants get every migration', async () => {
      const tenant = await tenantry.createTenant({ slug: slug('migrated') })
      const ledger = await tenantry.catalog.ledger(tenant.id)
      expect(ledger.map((l) => l.migration)).toEqual([...tenantry.migrations.names])
      const status = await tenantry.migrationStatus()
      expect(status.behind.map((t) => t.slug)).not.toContain(tenant.slug)
    })

    test('fan-out applies a new migration to every tenant', async () => {
      const tenants = [await tenantry.createTenant({ slug: slug('fan_a') }), await tenantry.createTenant({ slug: slug('fan_b') })]
      await writeFile(
        join(migrations, '9001_job_tags.ts'),
        `export async function up(db) { await db.schema.alterTable('jobs').addColumn('tags', 'text').execute() }\n`,
      )
      const next = await reopen()
      const dry = await next.migrate({ dryRun: true })
      expect(dry.results.map((r) => r.slug)).toEqual(expect.arrayContaining(tenants.map((t) => t.slug)))
      expect(dry.results.every((r) => r.applied.includes('9001_job_tags'))).toBe(true)

      const report = await next.migrate({ concurrency: 2 })
      expect(report.failed).toBe(0)
      for (const tenant of tenants) {
        expect(report.results.find((r) => r.tenantId === tenant.id)).toMatchObject({ status: 'success', applied: ['9001_job_tags'] })
        await next.withTenant(tenant.slug, async () => {
          await next.db().insertInto('jobs').values({ company: 'Tagged', title: 'x', start_date: '2020-01-01', tags: 'a' }).execute()
        })
        expect((await next.catalog.ledger(tenant.id)).map((l) => l.migration)).toContain('9001_job_tags')
      }
      expect((await next.migrate()).results).toEqual([])
      const fresh = await next.createTenant({ slug: slug('fan_new') })
      expect((await next.catalog.ledger(fresh.id)).map((l) => l.migration)).toContain('9001_job_tags')
    })

    test('one tenant failing a migration does not stop or corrupt another', async () => {
      const bad = await tenantry.createTenant({ slug: slug('dupes') })
      const good = await tenantry.createTenant({ slug: slug('clean') })
      await tenantry.withTenant(bad.slug, async () => {
        await insertJob('Same')
        await insertJob('Same')
      })
      await tenantry.withTenant(good.slug, () => insertJob('Only'))
      await writeFile(
        join(migrations, '9002_unique_company.sql'),
        'CREATE TABLE company_notes (company TEXT PRIMARY KEY, note TEXT);\nCREATE UNIQUE INDEX jobs_company_unique ON jobs (company);\n',
      )
      const next = await reopen()
      const report = await next.migrate({ tenantIds: [bad.id, good.id] })
      const byId = new Map(report.results.map((r) => [r.tenantId, r]))
      expect(byId.get(bad.id)).toMatchObject({ status: 'error' })
      expect(byId.get(bad.id)!.error).toMatch(/unique|duplicate/i)
      expect(byId.get(good.id)).toMatchObject({ status: 'success' })
      expect((await next.catalog.ledger(bad.id)).map((l) => l.migration)).not.toContain('9002_unique_company')
      // The failed migration rolled back whole: not even its first statement is left behind.
      await next.withTenant(bad.slug, async () => {
        await expect(sql`select * from company_notes`.execute(next.db())).rejects.toThrow()
        expect(await next.db().selectFrom('jobs').selectAll().execute()).toHaveLength(2)
      })
      await next.withTenant(bad.slug, () => next.db().deleteFrom('jobs').where('id', '=', 2).execute())
      const rerun = await next.migrate({ tenantIds: [bad.id, good.id] })
      expect(rerun.results.map((r) => [r.tenantId, r.status])).toEqual([[bad.id, 'success']])
    })

    test('lifecycle', async () => {
      const tenant = await tenantry.createTenant({ slug: slug('life'), name: 'Life Inc' })
      expect(tenant).toMatchObject({ status: 'ready', name: 'Life Inc' })
      await tenantry.withTenant(tenant.slug, () => insertJob('Kept'))

      expect((await tenantry.tenants.suspend(tenant.slug)).status).toBe('suspended')
      await expect(tenantry.withTenant(tenant.slug, () => 1)).rejects.toMatchObject({ code: 'TENANT_NOT_READY' })
      await expect(tenantry.tenants.suspend(tenant.slug)).rejects.toMatchObject({ code: 'INVALID_TRANSITION' })

      expect((await tenantry.tenants.resume(tenant.slug)).status).toBe('ready')
      const rows = await tenantry.withTenant(tenant.slug, () => tenantry.db().selectFrom('jobs').select('company').execute())
      expect(rows).toEqual([{ company: 'Kept' }])

      const deleted = await tenantry.deleteTenant(tenant.slug)
      expect(deleted.status).toBe('deleted')
      expect(deleted.purgedAt).toBeNull()
      await expect(tenantry.withTenant(tenant.slug, () => 1)).rejects.toMatchObject({ code: 'TENANT_NOT_READY' })

      const purged = await tenantry.deleteTenant(tenant.slug, { purge: true })
      expect(purged.purgedAt).not.toBeNull()
      await expect(tenantry.withTenant(tenant.slug, () => 1)).rejects.toMatchObject({ code: 'TENANT_NOT_FOUND' })
      expect((await tenantry.catalog.auditLog(tenant.id)).map((e) => e.action)).toEqual(
        expect.arrayContaining(['tenant.create.succeeded', 'tenant.suspend', 'tenant.resume', 'tenant.delete.succeeded', 'tenant.purge.succeeded']),
      )
    })

    test('slug stays taken until purged', async () => {
      const name = slug('reuse')
      const first = await tenantry.createTenant({ slug: name })
      await tenantry.withTenant(name, () => insertJob('First owner'))
      await tenantry.deleteTenant(name)
      const taken = await tenantry.createTenant({ slug: name }).catch((e: unknown) => e)
      expect(isTenantryError(taken, 'SLUG_TAKEN')).toBe(true)
      await tenantry.deleteTenant(name, { purge: true })
      const second = await tenantry.createTenant({ slug: name })
      expect(second.id).not.toBe(first.id)
      expect(await tenantry.withTenant(name, () => tenantry.db().selectFrom('jobs').selectAll().execute())).toEqual([])
    })
  })
}
