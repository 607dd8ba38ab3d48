import { randomBytes } from 'node:crypto'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { sql, type Kysely } from 'kysely'
import { afterAll, beforeAll, describe, expect, it, type TestContext } from 'vitest'
import type { DatabaseEngine, EngineHandle, EnginePlacement, EngineRole, Isolation } from '../engines/engine.js'
import { newTenantId } from '../identifiers.js'
import { migrateHandle, TenantMigrationSet } from '../migrations/migration-set.js'
import { FIXTURE_MIGRATION_FILES, FIXTURE_MIGRATIONS, writeFixtureMigrations, type FixtureDatabase } from './fixture-migrations.js'
import { tempDir } from './services.js'

/** The engine suite's test names, for `skip`. */
export const ENGINE_CONFORMANCE_TESTS = [
  'locators derive from the tenant id alone',
  'refuses a locator it did not derive',
  'refuses an isolation it does not offer',
  'create, exists and drop',
  'migrations apply once',
  'a failed migration leaves nothing behind',
  'a later migration applies on its own; a failed one leaves the earlier ones',
  'refuses a database holding a migration the set lacks or one out of order',
  'sql scripts join the transaction',
  'tenants stay apart',
  "drop removes the tenant's data",
  'templates copy a migrated tenant',
  'connection test',
  'doctor passes, and fails a tenant whose storage is missing',
  'read-only access',
  'raw sessions',
  'copy out and in',
] as const

export type EngineConformanceTest = (typeof ENGINE_CONFORMANCE_TESTS)[number]

/** What `additionalTests` gets to write tests of its own against the same engine. */
export interface EngineConformanceContext {
  readonly isolation: Isolation
  /** The engine under test (available inside tests, not while they are being declared). */
  engine(): DatabaseEngine
  /** The fixture migrations (tables `notes` and `note_tags`). */
  migrations(): TenantMigrationSet
  /** The fixture migrations and one more, `0003_note_pins` (a table `note_pins`): a tenant migrated with the fixture is one behind. */
  migrationsAhead(): TenantMigrationSet
  /** A placement for a new tenant id; the suite drops its storage afterwards. */
  newPlacement(): EnginePlacement
  /** A new tenant, created and migrated with the fixture. */
  createTenant(): Promise<EnginePlacement>
  /** Opens the tenant as `role`, runs `fn` and closes the handle. */
  withHandle<T>(placement: EnginePlacement, role: EngineRole, fn: (db: Kysely<FixtureDatabase>, handle: EngineHandle) => Promise<T>): Promise<T>
}

export interface EngineConformanceOptions {
  /**
   * The engine under test, or a factory (called once, before the tests) for one that needs
   * something set up first, such as a scratch database. The suite closes it afterwards.
   */
  engine: DatabaseEngine | (() => DatabaseEngine | Promise<DatabaseEngine>)
  /** The isolation to test; the engine must offer it. */
  isolation: Isolation
  /** Names the suite. @default the engine's `name` when given an instance, else `engine` */
  name?: string
  /** Tests this engine × isolation cannot pass, each with the reason. */
  skip?: Array<{ reason: string; tests: EngineConformanceTest[] }>
  /** Declares more tests (`it(...)`) inside the suite, against the same engine. */
  additionalTests?(context: EngineConformanceContext): void
  /** Runs last, after the suite dropped its tenants and closed the engine: remove what the engine made outside them (a scratch database, roles). */
  teardown?(): Promise<void>
}

/**
 * One suite for every engine × isolation that tests an engine through the engine contract
 * alone (`DatabaseEngine`): create, exists, open, drop, templates and migrations through
 * `migrateHandle`, with the suite's own fixture migrations. Optional capabilities (connection
 * test, doctor, read-only access, raw sessions, copies) are tested where the engine offers
 * them and reported as skipped where it does not. `runConformance` tests the same through
 * the public API, on a Tenantry instance.
 *
 * @example
 * runEngineConformance({
 *   engine: () => new SqliteEngine({ directory: dir }),
 *   isolation: 'database',
 *   skip: [{ reason: 'no templates yet', tests: ['templates copy a migrated tenant'] }],
 * })
 */
export function runEngineConformance(options: EngineConformanceOptions): void {
  const { isolation } = options
  const skipped = new Map<string, string>()
  for (const { reason, tests } of options.skip ?? []) for (const test of tests) skipped.set(test, reason)
  const test = (name: EngineConformanceTest, fn: (context: TestContext) => Promise<void>) => {
    const reason = skipped.get(name)
    if (reason) it.skip(`${name} (skipped: ${reason})`, fn)
    else it(name, fn)
  }
  const label = options.name ?? (typeof options.engine === 'function' ? 'engine' : options.engine.name)

  describe(`engine conformance: ${label} × ${isolation}`, () => {
    const dir = tempDir('tenantry-engine-conformance-')
    const placements: EnginePlacement[] = []
    let engine: DatabaseEngine | undefined
    let set: TenantMigrationSet
    /** The fixture plus a migration that creates a table and then fails. */
    let broken: TenantMigrationSet
    /** The fixture plus a third migration (a table of pinned notes). */
    let ahead: TenantMigrationSet
    /** The first fixture migration and the third of `ahead`, without the second. */
    let gap: TenantMigrationSet
    let lastId = 0

    const context: EngineConformanceContext = {
      isolation,
      engine: () => engine ?? expect.unreachable('the engine is created before the tests run'),
      migrations: () => set,
      migrationsAhead: () => ahead,
      newPlacement() {
        const tenantId = newTenantId()
        const placement = { tenantId, isolation, locator: context.engine().locatorFor(tenantId, isolation) }
        placements.push(placement)
        return placement
      },
      async createTenant() {
        const placement = context.newPlacement()
        await context.engine().create(placement)
        await context.withHandle(placement, 'admin', async (_db, handle) => {
          const outcome = await migrateHandle(handle, set)
          if (outcome.error !== undefined) throw outcome.error
        })
        return placement
      },
      async withHandle(placement, role, fn) {
        const handle = context.engine().open(placement, role)
        try {
          return await fn(handle.db as Kysely<FixtureDatabase>, handle)
        } finally {
          await handle.close()
        }
      },
    }
    const { newPlacement, createTenant, withHandle } = context
    const app = <T>(placement: EnginePlacement, fn: (db: Kysely<FixtureDatabase>) => Promise<T>) => withHandle(placement, 'app', fn)
    const titles = (placement: EnginePlacement) =>
      app(placement, async (db) => (await db.selectFrom('notes').select(['id', 'title']).orderBy('id').execute()).map((r) => ({ id: Number(r.id), title: r.title })))
    const insert = (placement: EnginePlacement, title: string, id = ++lastId) =>
      app(placement, (db) => db.insertInto('notes').values({ id, title }).execute()).then(() => id)

    beforeAll(async () => {
      engine = typeof options.engine === 'function' ? await options.engine() : options.engine
      set = await TenantMigrationSet.fromDirectory(await writeFixtureMigrations(join(dir.path, 'migrations')))
      broken = await TenantMigrationSet.fromDirectory(
        await writeFixtureMigrations(join(dir.path, 'broken'), {
          '0003_broken.sql': 'CREATE TABLE broken_first (id integer PRIMARY KEY);\nINSERT INTO no_such_table (id) VALUES (1);\n',
        }),
      )
      const pins = { '0003_note_pins.sql': 'CREATE TABLE note_pins (note_id integer PRIMARY KEY);\n' }
      ahead = await TenantMigrationSet.fromDirectory(await writeFixtureMigrations(join(dir.path, 'ahead'), pins))
      const gapDir = join(dir.path, 'gap')
      await mkdir(gapDir)
      for (const [file, text] of Object.entries({ '0001_notes.ts': FIXTURE_MIGRATION_FILES['0001_notes.ts']!, ...pins })) await writeFile(join(gapDir, file), text)
      gap = await TenantMigrationSet.fromDirectory(gapDir)
    })

    afterAll(async () => {
      try {
        if (engine) {
          const drops = await Promise.allSettled(placements.map((p) => engine!.drop(p)))
          await engine.close()
          const failed = drops.find((d): d is PromiseRejectedResult => d.status === 'rejected')
          if (failed) throw failed.reason
        }
      } finally {
        await options.teardown?.()
        dir.cleanup()
      }
    })

    test('locators derive from the tenant id alone', async () => {
      const [one, other] = [newTenantId(), newTenantId()]
      const e = context.engine()
      expect(e.isolations).toContain(isolation)
      expect(e.locatorFor(one, isolation)).toBe(e.locatorFor(one, isolation))
      expect(e.locatorFor(one, isolation)).not.toBe(e.locatorFor(other, isolation))
      for (const forged of ['../../etc/passwd', 'T_UPPER', '', 't" OR 1=1']) {
        expect(() => e.locatorFor(forged, isolation)).toThrowError(expect.objectContaining({ code: 'INVALID_IDENTIFIER' }))
      }
    })

    test('refuses a locator it did not derive', async () => {
      const e = context.engine()
      const tenantId = newTenantId()
      for (const locator of [e.locatorFor(newTenantId(), isolation), '../escape', `${e.locatorFor(tenantId, isolation)}/..`]) {
        const forged = { tenantId, isolation, locator }
        await expect(e.exists(forged)).rejects.toMatchObject({ code: 'INVALID_IDENTIFIER' })
        await expect(e.create(forged)).rejects.toMatchObject({ code: 'INVALID_IDENTIFIER' })
        await expect(e.drop(forged)).rejects.toMatchObject({ code: 'INVALID_IDENTIFIER' })
        expect(() => e.open(forged)).toThrowError(expect.objectContaining({ code: 'INVALID_IDENTIFIER' }))
      }
    })

    test('refuses an isolation it does not offer', async (ctx) => {
      const e = context.engine()
      const others = (['database', 'schema', 'row'] as const).filter((i) => !e.isolations.includes(i))
      if (others.length === 0) ctx.skip('the engine offers every isolation')
      for (const other of others) {
        expect(() => e.locatorFor(newTenantId(), other)).toThrowError(expect.objectContaining({ code: 'UNSUPPORTED_PLACEMENT' }))
      }
    })

    test('create, exists and drop', async () => {
      const e = context.engine()
      const placement = newPlacement()
      expect(await e.exists(placement)).toBe(false)
      await e.create(placement)
      expect(await e.exists(placement)).toBe(true)
      await expect(e.create(placement)).rejects.toThrow()
      await e.drop(placement)
      expect(await e.exists(placement)).toBe(false)
      await e.drop(placement) // idempotent
    })

    test('migrations apply once', async () => {
      const placement = newPlacement()
      await context.engine().create(placement)
      await withHandle(placement, 'admin', async (_db, handle) => {
        const first = await migrateHandle(handle, set)
        expect(first.error).toBeUndefined()
        // Shared tables (row isolation) may have been migrated through another tenant already.
        if (!handle.shared) expect(first.applied).toEqual(FIXTURE_MIGRATIONS)
        expect(first.executed.map((m) => m.name)).toEqual(FIXTURE_MIGRATIONS)
        const again = await migrateHandle(handle, set)
        expect(again).toMatchObject({ applied: [], executed: first.executed })
      })
      const id = await insert(placement, 'Migrated')
      await app(placement, (db) => db.insertInto('note_tags').values({ note_id: id, tag: 'ok' }).execute())
      expect(await titles(placement)).toEqual([{ id, title: 'Migrated' }])
    })

    test('a failed migration leaves nothing behind', async () => {
      const placement = newPlacement()
      await context.engine().create(placement)
      await withHandle(placement, 'admin', async (db, handle) => {
        const outcome = await migrateHandle(handle, broken)
        expect(outcome.error).toBeDefined()
        expect(outcome.executed.map((m) => m.name)).not.toContain('0003_broken')
        // All pending migrations run in one transaction: on a tenant of its own, none of them is left.
        if (!handle.shared) expect(outcome.executed).toEqual([])
        await expect(sql`select * from broken_first`.execute(db)).rejects.toThrow()
        // And the tenant is as good as new: the fixed set applies.
        expect((await migrateHandle(handle, set)).error).toBeUndefined()
      })
      expect(await titles(placement)).toEqual([])
    })

    test('a later migration applies on its own; a failed one leaves the earlier ones', async (ctx) => {
      const placement = await createTenant()
      await withHandle(placement, 'admin', async (db, handle) => {
        // A migration added to the shared tables would be one the other tests' sets lack.
        if (handle.shared) return ctx.skip('the tables are shared with the suite’s other tenants')
        const held = (await migrateHandle(handle, set)).executed
        expect(held.map((m) => m.name)).toEqual(FIXTURE_MIGRATIONS)

        const failed = await migrateHandle(handle, broken)
        expect(failed.error).toBeDefined()
        expect(failed).toMatchObject({ applied: [], executed: held })
        await expect(sql`select * from broken_first`.execute(db)).rejects.toThrow()

        const next = await migrateHandle(handle, ahead)
        expect(next.error).toBeUndefined()
        expect(next.applied).toEqual(['0003_note_pins'])
        expect(next.executed.slice(0, held.length)).toEqual(held)
        expect(next.executed.map((m) => m.name)).toEqual([...FIXTURE_MIGRATIONS, '0003_note_pins'])
        expect(new Date(next.executed.at(-1)!.appliedAt).getTime()).toBeGreaterThanOrEqual(new Date(held.at(-1)!.appliedAt).getTime())
        await sql`insert into note_pins (note_id) values (1)`.execute(db)
        expect(await migrateHandle(handle, ahead)).toMatchObject({ applied: [], executed: next.executed })
      })
    })

    test('refuses a database holding a migration the set lacks or one out of order', async (ctx) => {
      const lacking = newPlacement()
      await context.engine().create(lacking)
      await withHandle(lacking, 'admin', async (_db, handle) => {
        if (handle.shared) return ctx.skip('the tables are shared with the suite’s other tenants')
        const held = (await migrateHandle(handle, ahead)).executed
        const refused = await migrateHandle(handle, set)
        expect(refused.error).toEqual(expect.objectContaining({ message: expect.stringMatching(/0003_note_pins/) }))
        expect(refused).toMatchObject({ applied: [] })
        expect(refused.executed).toEqual(held.slice(0, FIXTURE_MIGRATIONS.length))
      })

      const unordered = newPlacement()
      await context.engine().create(unordered)
      await withHandle(unordered, 'admin', async (db, handle) => {
        expect((await migrateHandle(handle, gap)).error).toBeUndefined()
        // 0002 comes before 0003, which the database already holds.
        const refused = await migrateHandle(handle, ahead)
        expect(refused.error).toEqual(expect.objectContaining({ message: expect.stringMatching(/0002_note_tags_by_tag/) }))
        expect(refused).toMatchObject({ applied: [] })
        expect(refused.executed.map((m) => m.name)).toEqual(['0001_notes', '0003_note_pins'])
        // Nothing of 0002 ran: its index can be made now.
        await sql`create index note_tags_by_tag on note_tags (tag)`.execute(db)
      })
    })

    test('sql scripts join the transaction', async () => {
      const placement = await createTenant()
      const [a, b, c, d] = [++lastId, ++lastId, ++lastId, ++lastId]
      const script = (x: number, y: number) => `INSERT INTO notes (id, title) VALUES (${x}, 'script ${x}');\nINSERT INTO notes (id, title) VALUES (${y}, 'script ${y}');\n`
      await withHandle(placement, 'app', async (db, handle) => {
        await expect(
          db.transaction().execute(async (trx) => {
            await handle.execScript(trx, script(a, b))
            throw new Error('roll back')
          }),
        ).rejects.toThrow('roll back')
        await handle.execScript(db, script(c, d))
      })
      expect(await titles(placement)).toEqual([
        { id: c, title: `script ${c}` },
        { id: d, title: `script ${d}` },
      ])
    })

    test('tenants stay apart', async () => {
      const [a, b] = [await createTenant(), await createTenant()]
      await insert(a, 'Alpha', 1)
      await insert(b, 'Beta', 1)
      await app(a, (db) => db.updateTable('notes').set({ title: 'Alpha changed' }).where('id', '=', 1).execute())
      await app(b, (db) => db.deleteFrom('notes').where('id', '=', 1).execute())
      expect(await titles(a)).toEqual([{ id: 1, title: 'Alpha changed' }])
      expect(await titles(b)).toEqual([])
      const raw = await app(a, async (db) => (await sql<{ title: string }>`select title from notes`.execute(db)).rows)
      expect(raw).toEqual([{ title: 'Alpha changed' }])
    })

    test("drop removes the tenant's data", async () => {
      const e = context.engine()
      const placement = await createTenant()
      await insert(placement, 'Gone soon')
      await e.drop(placement)
      await e.create(placement)
      await withHandle(placement, 'admin', async (_db, handle) => expect((await migrateHandle(handle, set)).error).toBeUndefined())
      expect(await titles(placement)).toEqual([])
    })

    test('templates copy a migrated tenant', async (ctx) => {
      const e = context.engine()
      if (!e.ensureTemplate || !e.createFromTemplate) return ctx.skip('the engine offers no templates')
      const key = randomBytes(16).toString('hex')
      let builds = 0
      const build = async (handle: EngineHandle) => {
        builds++
        const outcome = await migrateHandle(handle, set)
        if (outcome.error !== undefined) throw outcome.error
      }
      const template = await e.ensureTemplate(key, isolation, build)
      if (!template) return ctx.skip(`the engine clones no templates for ${isolation} isolation`)
      expect(template.key).toBe(key)
      expect((await e.ensureTemplate(key, isolation, build))?.key).toBe(key)
      expect(builds).toBe(1)

      const placement = newPlacement()
      await e.createFromTemplate(placement, template)
      expect(await e.exists(placement)).toBe(true)
      await expect(e.createFromTemplate(placement, template)).rejects.toThrow()
      await withHandle(placement, 'admin', async (_db, handle) => {
        expect(await migrateHandle(handle, set)).toMatchObject({ applied: [], executed: FIXTURE_MIGRATIONS.map((name) => ({ name })) })
      })
      const id = await insert(placement, 'From the template')
      expect(await titles(placement)).toEqual([{ id, title: 'From the template' }])
    })

    test('connection test', async (ctx) => {
      const e = context.engine()
      if (!e.test) return ctx.skip('the engine offers no connection test')
      expect(await e.test()).toMatch(/\S/)
      for (const privilege of e.requiredPrivileges ?? []) expect(privilege).toMatch(/\S/)
    })

    test('doctor passes, and fails a tenant whose storage is missing', async (ctx) => {
      const e = context.engine()
      if (!e.doctor) return ctx.skip('the engine offers no doctor checks')
      const present = await createTenant()
      const tenant = (placement: EnginePlacement, slug: string) => ({ id: placement.tenantId, slug, placement, stored: true, purged: false })
      const healthy = await e.doctor({ tenants: [tenant(present, 'present')] })
      expect(healthy.length).toBeGreaterThan(0)
      expect(healthy.filter((c) => c.status === 'fail')).toEqual([])
      const missing = newPlacement()
      const broken = await e.doctor({ tenants: [tenant(present, 'present'), tenant(missing, 'missing')] })
      expect(broken.filter((c) => c.status === 'fail').map((c) => c.detail).join('\n')).toContain(missing.locator)
    })

    test('read-only access', async (ctx) => {
      const access = context.engine().readOnlyAccess
      if (!access) return ctx.skip('the engine offers no read-only access')
      const placement = await createTenant()
      if (!access.isolations.includes(isolation)) {
        await expect(access.grant(placement)).rejects.toMatchObject({ code: 'UNSUPPORTED_PLACEMENT' })
        return
      }
      const granted = await access.grant(placement)
      expect(granted.role).toMatch(/\S/)
      expect(granted.url).toMatch(/\S/)
      expect(await access.grant(placement)).toEqual(granted)
      await access.revoke(placement)
      await access.revoke(placement) // idempotent
      await access.grant(placement) // and the tenant's drop removes it again
    })

    test('raw sessions', async (ctx) => {
      const sessions = context.engine().rawSession
      if (!sessions) return ctx.skip('the engine offers no raw sessions')
      if (!sessions.isolations.includes(isolation)) return ctx.skip(`the engine offers no raw sessions for ${isolation} isolation`)
      const placement = await createTenant()
      await insert(placement, 'Raw')
      const reader = await sessions.open(placement, { readOnly: true })
      if (reader.dialect !== 'sqlite') return ctx.skip(`this suite speaks SQLite sessions, not ${String(reader.dialect)}`)
      try {
        expect(await reader.execute({ sql: 'SELECT title FROM notes' })).toMatchObject({ ok: true, columns: [{ name: 'title' }], rows: [['Raw']] })
        expect(await reader.execute({ sql: "INSERT INTO notes (id, title) VALUES (999999, 'no')" })).toMatchObject({ ok: false, code: 'READ_ONLY' })
      } finally {
        await reader.close()
      }
      await expect(reader.execute({ sql: 'SELECT 1' })).rejects.toThrow() // a closed session runs nothing
      const writer = await sessions.open(placement, { readOnly: false })
      try {
        expect(await writer.execute({ sql: "INSERT INTO notes (id, title) VALUES (?, 'Written')", args: [BigInt(++lastId)] })).toMatchObject({ ok: true, rowsAffected: 1 })
        // The engine's rules hold on its sessions as on its handles: foreign keys are enforced.
        expect(await writer.execute({ sql: "INSERT INTO note_tags (note_id, tag) VALUES (-1, 'orphan')" })).toMatchObject({ ok: false, code: expect.stringMatching(/^SQLITE_CONSTRAINT/) })
        // A transaction spans statements, and closing the session rolls it back.
        await writer.execute({ sql: 'BEGIN' })
        expect(writer.inTransaction).toBe(true)
        await writer.execute({ sql: "INSERT INTO notes (id, title) VALUES (?, 'Rolled back')", args: [BigInt(++lastId)] })
      } finally {
        await writer.close()
      }
      await sessions.close?.()
      expect((await titles(placement)).map((r) => r.title)).toEqual(['Raw', 'Written'])
    })

    test('copy out and in', async (ctx) => {
      const e = context.engine()
      if (!e.copyOut || !e.copyIn) return ctx.skip('the engine offers no copies')
      const source = await createTenant()
      const id = await insert(source, 'Copied')
      const file = join(dir.path, `copy-${source.tenantId}`)
      await e.copyOut(source, file)
      await expect(e.copyOut(source, file)).rejects.toThrow() // never replaces a file
      await insert(source, 'After the copy')

      const target = newPlacement()
      await e.copyIn(target, file)
      expect(await titles(target)).toEqual([{ id, title: 'Copied' }])
      await expect(e.copyIn(target, file)).rejects.toThrow() // never replaces a tenant
      await withHandle(target, 'admin', async (_db, handle) => {
        expect(await migrateHandle(handle, set)).toMatchObject({ applied: [], executed: FIXTURE_MIGRATIONS.map((name) => ({ name })) })
      })
      await insert(target, 'Only in the copy')
      expect((await titles(source)).map((r) => r.title)).toEqual(['Copied', 'After the copy'])
    })

    options.additionalTests?.(context)
  })
}
