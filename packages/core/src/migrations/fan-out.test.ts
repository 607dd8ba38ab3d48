import { sql, type Kysely } from 'kysely'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import type { Logger } from '../logger.js'
import { createTenantry, type Tenantry } from '../tenantry.js'
import { tempDir } from '../testing/services.js'
import type { TenantMigration } from './migration-set.js'

const notes: TenantMigration = { up: (db: Kysely<any>) => db.schema.createTable('notes').addColumn('id', 'integer').execute() }

describe('migration fan-out', () => {
  let dir: ReturnType<typeof tempDir>
  let tenantry: Tenantry | undefined

  beforeEach(() => {
    dir = tempDir('tenantry-fan-out-')
  })

  afterEach(async () => {
    vi.useRealTimers()
    await tenantry?.close()
    dir.cleanup()
  })

  // Regression: a failed lock heartbeat was dropped without a word (`.catch(() => {})`), so a
  // runner could lose its lock to a second one with nothing in the log to say why.
  it('logs a failed lock heartbeat once, with the tenants being migrated, and finishes the run', async () => {
    const setup = await createTenantry({ home: dir.path, migrations: { tenant: { '0001_notes': notes } } })
    const acme = await setup.createTenant({ slug: 'acme' })
    await setup.close()

    let started!: () => void
    const running = new Promise<void>((resolve) => (started = resolve))
    let finish!: () => void
    const gate = new Promise<void>((resolve) => (finish = resolve))
    const slow: TenantMigration = {
      up: async (db) => {
        started()
        await gate
        await db.schema.createTable('slow').addColumn('id', 'integer').execute()
      },
    }
    const lines: Array<{ level: string; facts: Record<string, unknown>; message: string }> = []
    const record = (level: string) => (facts: Record<string, unknown>, message: string) => void lines.push({ level, facts, message })
    const logger: Logger = { error: record('error'), warn: record('warn'), info: record('info'), debug: record('debug') }
    tenantry = await createTenantry({ home: dir.path, migrations: { tenant: { '0001_notes': notes, '0002_slow': slow } } }, { logger })
    const catalog = tenantry.catalog.db
    await sql`CREATE TRIGGER refuse_heartbeat BEFORE UPDATE OF heartbeat_at ON locks
      BEGIN SELECT RAISE(ABORT, 'heartbeat refused'); END`.execute(catalog)

    // Only the interval is faked: the heartbeat is due every 10 s, and the test should not wait for it.
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] })
    const run = tenantry.migrate()
    await running
    vi.advanceTimersByTime(10_000)
    await vi.waitFor(() => expect(lines).toHaveLength(1))
    await sql`DROP TRIGGER refuse_heartbeat`.execute(catalog)
    finish()

    const report = await run
    expect(report).toMatchObject({ succeeded: 1, failed: 0 })
    expect(report.results).toEqual([{ tenantId: acme.id, slug: 'acme', status: 'success', applied: ['0002_slow'] }])
    expect(lines).toEqual([
      {
        level: 'warn',
        facts: { err: expect.objectContaining({ message: 'heartbeat refused' }), lock: 'tenant-migrations', tenantIds: [acme.id] },
        message: 'Migration lock heartbeat failed',
      },
    ])
    expect(await tenantry.catalog.readLock('tenant-migrations')).toBeUndefined()
  })
})
