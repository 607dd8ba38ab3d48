import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { sql } from 'kysely'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { createTenantry, type Tenantry } from '../tenantry.js'
import { tempDir } from '../testing/services.js'

/**
 * The fan-out migrates SQLite tenants in worker threads (`SqliteEngine.migrateOffThread`) when
 * the migrations come from a directory: every core works, and the process's event loop is not
 * held by the tenants' statements, checkpoints and syncs. By default only from
 * THREADS_FROM_TENANTS tenants behind; these tests ask for threads (`threads: true`) with a few.
 * Each test provisions with one set and reopens with a second migration, as a deploy would.
 */
const NOTES = `export async function up(db) { await db.schema.createTable('notes').addColumn('id', 'integer', (c) => c.primaryKey()).execute() }\n`

/** Records where it ran, and keeps its thread busy long enough for the pool's threads to overlap. */
const WHERE = `import { isMainThread, threadId } from 'node:worker_threads'
export async function up(db) {
  await db.schema.createTable('ran_in').addColumn('main', 'integer').addColumn('thread', 'integer').execute()
  await db.insertInto('ran_in').values({ main: isMainThread ? 1 : 0, thread: threadId }).execute()
  const until = Date.now() + 40
  while (Date.now() < until) {}
}
`

/** Ends its thread (a crash of the migrating thread) in the tenant that has a crash_here table. */
const CRASH = `export async function up(db) {
  const marked = await db.selectFrom('sqlite_master').select('name').where('name', '=', 'crash_here').executeTakeFirst()
  await db.schema.createTable('tags').addColumn('id', 'integer').execute()
  if (marked) process.exit(7)
}
`

describe('migration fan-out on worker threads (SQLite, migrations from a directory)', () => {
  let dir: ReturnType<typeof tempDir>
  let migrations: string
  let tenantry: Tenantry | undefined
  const config = () => ({ home: join(dir.path, 'home'), migrations: { tenant: migrations }, dataSources: [{ id: 'local', engine: 'sqlite' as const }] })

  beforeEach(() => {
    dir = tempDir('tenantry-fan-out-threads-')
    migrations = join(dir.path, 'migrations')
    mkdirSync(migrations)
    writeFileSync(join(migrations, '0001_notes.mjs'), NOTES)
  })

  afterEach(async () => {
    await tenantry?.close()
    tenantry = undefined
    dir.cleanup()
  })

  async function provision(slugs: string[]): Promise<void> {
    const setup = await createTenantry(config())
    try {
      for (const slug of slugs) await setup.createTenant({ slug })
    } finally {
      await setup.close()
    }
  }

  it('runs each tenant’s migration in a worker thread, several threads at once, never on the main thread', async () => {
    const slugs = ['t_one', 't_two', 't_three', 't_four', 't_five', 't_six']
    await provision(slugs)
    writeFileSync(join(migrations, '0002_where.mjs'), WHERE)
    tenantry = await createTenantry(config())

    const report = await tenantry.migrate({ concurrency: 4, threads: true })
    expect(report.failed).toBe(0)
    expect(report.results.map((r) => r.slug).sort()).toEqual([...slugs].sort())
    for (const result of report.results) expect(result).toMatchObject({ status: 'success', applied: ['0002_where'] })

    const threads = new Set<number>()
    for (const slug of slugs) {
      const ran = await tenantry.withTenant(slug, () => tenantry!.db().selectFrom('ran_in').selectAll().execute())
      expect(ran, slug).toHaveLength(1)
      expect(ran[0]!.main, slug).toBe(0)
      threads.add(ran[0]!.thread)
    }
    expect(threads.size).toBeGreaterThanOrEqual(2)
    expect((await tenantry.migrationStatus()).behind).toEqual([])
  })

  it('by default, keeps a run of fewer tenants than THREADS_FROM_TENANTS on the main thread (a worker costs more to start)', async () => {
    await provision(['t_one', 't_two'])
    writeFileSync(join(migrations, '0002_where.mjs'), WHERE)
    tenantry = await createTenantry(config())
    expect((await tenantry.migrate()).succeeded).toBe(2)
    for (const slug of ['t_one', 't_two']) {
      const ran = await tenantry.withTenant(slug, () => tenantry!.db().selectFrom('ran_in').selectAll().execute())
      expect(ran[0]!.main, slug).toBe(1)
    }
  })

  it('refuses to run migration files edited after the process loaded them, and records nothing', async () => {
    await provision(['t_one', 't_two'])
    writeFileSync(join(migrations, '0002_where.mjs'), WHERE)
    tenantry = await createTenantry(config())
    // A deploy rewrites the file under the running process.
    writeFileSync(join(migrations, '0002_where.mjs'), WHERE.replace('ran_in', 'ran_elsewhere'))

    const report = await tenantry.migrate({ threads: true })
    expect(report.failed).toBe(2)
    for (const result of report.results) {
      expect(result.status).toBe('error')
      expect(result.error).toMatch(/changed since this process loaded them/)
    }
    for (const slug of ['t_one', 't_two']) {
      const tables = await tenantry.withTenant(slug, () => sql<{ name: string }>`select name from sqlite_master where name like 'ran_%'`.execute(tenantry!.db()))
      expect(tables.rows).toEqual([])
    }
    expect((await tenantry.migrationStatus()).behind.map((b) => b.slug).sort()).toEqual(['t_one', 't_two'])
  })

  it('a thread that dies mid-migration fails that tenant only; its migration rolled back, the next run applies it', async () => {
    await provision(['t_one', 't_crash', 't_three'])
    writeFileSync(join(migrations, '0002_tags.mjs'), CRASH)
    tenantry = await createTenantry(config())
    await tenantry.withTenant('t_crash', () => tenantry!.db().schema.createTable('crash_here').addColumn('id', 'integer').execute())

    const report = await tenantry.migrate({ concurrency: 2, threads: true })
    const bySlug = Object.fromEntries(report.results.map((r) => [r.slug, r]))
    expect(bySlug.t_one).toMatchObject({ status: 'success', applied: ['0002_tags'] })
    expect(bySlug.t_three).toMatchObject({ status: 'success', applied: ['0002_tags'] })
    expect(bySlug.t_crash).toMatchObject({ status: 'error' })
    expect(bySlug.t_crash!.error).toMatch(/exit code 7/)
    // Nothing of the crashed migration stayed: no table, no record.
    const tags = await tenantry.withTenant('t_crash', () => sql`select name from sqlite_master where name = 'tags'`.execute(tenantry!.db()))
    expect(tags.rows).toEqual([])
    expect((await tenantry.migrationStatus()).behind.map((b) => b.slug)).toEqual(['t_crash'])

    await tenantry.withTenant('t_crash', () => tenantry!.db().schema.dropTable('crash_here').execute())
    const again = await tenantry.migrate({ threads: true })
    expect(again.results).toMatchObject([{ slug: 't_crash', status: 'success', applied: ['0002_tags'] }])
    expect((await tenantry.migrationStatus()).behind).toEqual([])
  })
})
