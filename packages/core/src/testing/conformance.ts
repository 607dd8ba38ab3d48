import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { TenantryConfig } from '../config.js'
import type { EngineName, Isolation } from '../engines/engine.js'
import { isTenantryError } from '../errors.js'
import { createTenantry, type Tenantry } from '../tenantry.js'
import { writeFixtureMigrations, type FixtureDatabase } from './fixture-migrations.js'
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
   * A config whose default placement is (`engine`, `isolation`). The suite passes a fresh
   * `home` and the directory of its own fixture migrations (tables `notes` and `note_tags`,
   * see `FIXTURE_MIGRATION_FILES`), which the config must use as its tenant migrations;
   * return what else the engine needs, and a teardown.
   */
  setup(input: { home: string; migrations: string }): Promise<{ config: TenantryConfig; teardown?(): Promise<void> }>
  /** Tests this engine × isolation cannot run, each with the reason. */
  skip?: Array<{ reason: string; tests: ConformanceTest[] }>
  /** Tells apart suites of one engine × isolation run with different setups, e.g. `managed admin`. */
  variant?: string
}

/**
 * One suite for every engine × isolation (as unstorage's `testDriver`), through the public
 * API (`createTenantry`, `withTenant`, `db()`): CRUD, isolation between tenants whose row ids
 * collide, migrations, lifecycle and `NoTenantError`. `runEngineConformance` tests an engine
 * on its own, through the engine contract.
 */
export function runConformance(options: ConformanceOptions): void {
  const skipped = new Map<string, string>()
  for (const { reason, tests } of options.skip ?? []) for (const test of tests) skipped.set(test, reason)
  const test = (name: ConformanceTest, fn: () => Promise<void>) => {
    const reason = skipped.get(name)
    if (reason) it.skip(`${name} (skipped: ${reason})`, fn)
    else it(name, fn)
  }

  describe(`conformance: ${options.engine} × ${options.isolation}${options.variant ? ` (${options.variant})` : ''}`, () => {
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
      await writeFixtureMigrations(migrations)
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

    const db = () => tenantry.db<FixtureDatabase>()
    /** Ids are given, never generated: unique across the suite unless a test names one. */
    let lastId = 0
    const insertNote = (title: string, id = ++lastId) => db().insertInto('notes').values({ id, title }).returning('id').executeTakeFirstOrThrow()

    test('crud', async () => {
      const tenant = await tenantry.createTenant({ slug: slug('crud') })
      expect(tenant.status).toBe('ready')
      expect(tenant.placement.isolation).toBe(options.isolation)
      await tenantry.withTenant(tenant.slug, async () => {
        const { id } = await insertNote('Initech')
        await db().insertInto('note_tags').values({ note_id: id, tag: 'ts' }).execute()
        await db().updateTable('notes').set({ title: 'Initrode' }).where('id', '=', id).execute()
        const row = await db().selectFrom('notes').selectAll().where('id', '=', id).executeTakeFirstOrThrow()
        expect(row).toMatchObject({ id, title: 'Initrode', body: null })
        await db().deleteFrom('note_tags').where('note_id', '=', id).execute()
        await db().deleteFrom('notes').where('id', '=', id).execute()
        expect(await db().selectFrom('notes').selectAll().execute()).toEqual([])
      })
    })

    test('raw sql and transactions', async () => {
      const tenant = await tenantry.createTenant({ slug: slug('rawsql') })
      await tenantry.withTenant(tenant.slug, async () => {
        const title = "O'Reilly; DROP TABLE notes; --"
        await sql`insert into notes (id, title) values (${++lastId}, ${title})`.execute(db())
        const { rows } = await sql<{ title: string }>`select title from notes where title = ${title}`.execute(db())
        expect(rows).toEqual([{ title }])

        await expect(
          db().transaction().execute(async (trx) => {
            await trx.insertInto('notes').values({ id: ++lastId, title: 'Rolled back' }).execute()
            throw new Error('abort')
          }),
        ).rejects.toThrow('abort')
        const titles = (await db().selectFrom('notes').select('title').execute()).map((r) => r.title)
        expect(titles).toEqual([title])
      })
    })

    test('colliding ids stay apart', async () => {
      const a = await tenantry.createTenant({ slug: slug('collide_a') })
      const b = await tenantry.createTenant({ slug: slug('collide_b') })
      await tenantry.withTenant(a.slug, () => insertNote('Alpha', 1))
      await tenantry.withTenant(b.slug, () => insertNote('Beta', 1))
      await tenantry.withTenant(a.slug, () => db().updateTable('notes').set({ body: 'Changed' }).where('id', '=', 1).execute())
      await tenantry.withTenant(b.slug, () => db().deleteFrom('notes').where('id', '=', 1).execute())
      const rowsA = await tenantry.withTenant(a.slug, () => db().selectFrom('notes').selectAll().execute())
      const rowsB = await tenantry.withTenant(b.slug, () => db().selectFrom('notes').selectAll().execute())
      expect(rowsA).toHaveLength(1)
      expect(rowsA[0]).toMatchObject({ id: 1, title: 'Alpha', body: 'Changed' })
      expect(rowsB).toEqual([])
    })

    test('concurrent contexts stay apart', async () => {
      const tenants = await Promise.all([0, 1, 2, 3].map(async (i) => tenantry.createTenant({ slug: slug(`conc${i}`) })))
      // Interleave awaits, timers and nested promise pools across tenants: each call must only ever see its own tenant.
      const work = tenants.flatMap((tenant) =>
        Array.from({ length: 10 }, (_, n) =>
          tenantry.withTenant(tenant.slug, async () => {
            await new Promise((r) => setTimeout(r, (n * 7) % 5))
            await insertNote(tenant.slug)
            await new Promise<void>((r) => setImmediate(r))
            const seen = await Promise.all([1, 2].map(() => db().selectFrom('notes').select('title').distinct().execute()))
            return { tenant: tenant.slug, current: tenantry.currentTenant()?.slug, seen: seen.flat().map((r) => r.title) }
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
      await tenantry.withTenant(a.slug, () => insertNote('Secret'))
      const leaked = await tenantry.withTenant(a.slug, () => db())
      await expect(leaked.selectFrom('notes').selectAll().execute()).rejects.toMatchObject({ code: 'NO_TENANT' })
      await expect(tenantry.withTenant(b.slug, () => leaked.selectFrom('notes').selectAll().execute())).rejects.toMatchObject({
        code: 'TENANT_MISMATCH',
      })
      await expect(tenantry.withTenant(b.slug, () => sql`select * from notes`.execute(leaked))).rejects.toMatchObject({
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
        join(migrations, '9001_note_pinned.ts'),
        `export async function up(db) { await db.schema.alterTable('notes').addColumn('pinned', 'integer').execute() }\n`,
      )
      const next = await reopen()
      const dry = await next.migrate({ dryRun: true })
      expect(dry.results.map((r) => r.slug)).toEqual(expect.arrayContaining(tenants.map((t) => t.slug)))
      expect(dry.results.every((r) => r.applied.includes('9001_note_pinned'))).toBe(true)

      const report = await next.migrate({ concurrency: 2 })
      expect(report.failed).toBe(0)
      for (const tenant of tenants) {
        expect(report.results.find((r) => r.tenantId === tenant.id)).toMatchObject({ status: 'success', applied: ['9001_note_pinned'] })
        await next.withTenant(tenant.slug, async () => {
          await next.db().insertInto('notes').values({ id: ++lastId, title: 'Pinned', pinned: 1 }).execute()
        })
        expect((await next.catalog.ledger(tenant.id)).map((l) => l.migration)).toContain('9001_note_pinned')
      }
      expect((await next.migrate()).results).toEqual([])
      const fresh = await next.createTenant({ slug: slug('fan_new') })
      expect((await next.catalog.ledger(fresh.id)).map((l) => l.migration)).toContain('9001_note_pinned')
    })

    test('one tenant failing a migration does not stop or corrupt another', async () => {
      const bad = await tenantry.createTenant({ slug: slug('dupes') })
      const good = await tenantry.createTenant({ slug: slug('clean') })
      const duplicate = ++lastId
      await tenantry.withTenant(bad.slug, async () => {
        await insertNote('Same')
        await insertNote('Same', duplicate)
      })
      await tenantry.withTenant(good.slug, () => insertNote('Only'))
      await writeFile(
        join(migrations, '9002_unique_title.sql'),
        'CREATE TABLE note_archive (title TEXT PRIMARY KEY, body TEXT);\nCREATE UNIQUE INDEX notes_title_unique ON notes (title);\n',
      )
      const next = await reopen()
      const report = await next.migrate({ tenantIds: [bad.id, good.id] })
      const byId = new Map(report.results.map((r) => [r.tenantId, r]))
      expect(byId.get(bad.id)).toMatchObject({ status: 'error' })
      expect(byId.get(bad.id)!.error).toMatch(/unique|duplicate/i)
      expect(byId.get(good.id)).toMatchObject({ status: 'success' })
      expect((await next.catalog.ledger(bad.id)).map((l) => l.migration)).not.toContain('9002_unique_title')
      // The failed migration rolled back whole: not even its first statement is left behind.
      await next.withTenant(bad.slug, async () => {
        await expect(sql`select * from note_archive`.execute(next.db())).rejects.toThrow()
        expect(await next.db().selectFrom('notes').selectAll().execute()).toHaveLength(2)
      })
      await next.withTenant(bad.slug, () => next.db().deleteFrom('notes').where('id', '=', duplicate).execute())
      const rerun = await next.migrate({ tenantIds: [bad.id, good.id] })
      expect(rerun.results.map((r) => [r.tenantId, r.status])).toEqual([[bad.id, 'success']])
    })

    test('lifecycle', async () => {
      const tenant = await tenantry.createTenant({ slug: slug('life'), name: 'Life Inc' })
      expect(tenant).toMatchObject({ status: 'ready', name: 'Life Inc' })
      await tenantry.withTenant(tenant.slug, () => insertNote('Kept'))

      expect((await tenantry.tenants.suspend(tenant.slug)).status).toBe('suspended')
      await expect(tenantry.withTenant(tenant.slug, () => 1)).rejects.toMatchObject({ code: 'TENANT_NOT_READY' })
      await expect(tenantry.tenants.suspend(tenant.slug)).rejects.toMatchObject({ code: 'INVALID_TRANSITION' })

      expect((await tenantry.tenants.resume(tenant.slug)).status).toBe('ready')
      const rows = await tenantry.withTenant(tenant.slug, () => db().selectFrom('notes').select('title').execute())
      expect(rows).toEqual([{ title: 'Kept' }])

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
      await tenantry.withTenant(name, () => insertNote('First owner'))
      await tenantry.deleteTenant(name)
      const taken = await tenantry.createTenant({ slug: name }).catch((e: unknown) => e)
      expect(isTenantryError(taken, 'SLUG_TAKEN')).toBe(true)
      await tenantry.deleteTenant(name, { purge: true })
      const second = await tenantry.createTenant({ slug: name })
      expect(second.id).not.toBe(first.id)
      expect(await tenantry.withTenant(name, () => db().selectFrom('notes').selectAll().execute())).toEqual([])
    })
  })
}
