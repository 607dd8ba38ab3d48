import { cpSync, existsSync, writeFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { isTenantryError, type TenantryError } from 'tenantry'
import { tempDir } from 'tenantry/testing'
import {
  ALL_MIGRATIONS,
  FAN_OUT_CHILD,
  fanOutArgs,
  OLD_MIGRATIONS,
  childResult,
  copyExampleMigrations,
  createHome,
  openTenantry,
  readHome,
  runChild,
  writeNewMigrations,
} from './fixtures/homes.js'

const TENANTS = 6

/** Polls `condition` until it holds (liveness, not a timing assertion). */
const until = (condition: () => boolean, what: string, timeoutMs = 20_000) =>
  vi.waitFor(() => expect(condition(), `waiting for ${what}`).toBe(true), { timeout: timeoutMs, interval: 10 })

async function migrateError(home: string, migrations: string): Promise<TenantryError> {
  const tenantry = await openTenantry(home, migrations)
  try {
    const error = await tenantry.migrate().then(
      () => undefined,
      (e: unknown) => e,
    )
    if (!isTenantryError(error)) throw new Error(`expected a TenantryError, got ${String(error)}`)
    return error
  } finally {
    await tenantry.close()
  }
}

describe('two migration runners against one catalog', () => {
  const root = tempDir('tenantry-two-runners-')
  const pristine = join(root.path, 'pristine')
  const migrations = join(root.path, 'migrations')
  let trial = 0

  /** A fresh home at the old set, and a gate file that holds a child runner inside migration 0003. */
  function scenario() {
    const home = join(root.path, `home-${trial}`)
    const gate = join(root.path, `gate-${trial++}`)
    cpSync(pristine, home, { recursive: true })
    return { home, gate, env: { TENANTRY_TEST_GATE: gate } }
  }

  beforeAll(async () => {
    copyExampleMigrations(migrations)
    await createHome(pristine, migrations, TENANTS)
    writeNewMigrations(migrations)
  })

  afterAll(() => root.cleanup())

  it('refuses a second runner with MIGRATION_LOCKED naming the holder, then runs once the first is done', async () => {
    const { home, gate, env } = scenario()
    let firstPid: number | undefined
    const first = runChild(FAN_OUT_CHILD, fanOutArgs(home, migrations, 2), { env, onStarted: (pid) => (firstPid = pid) })
    await until(() => existsSync(`${gate}.entered`), 'the first runner to enter a migration')
    const holder = readHome(home).lock
    expect(holder).toMatchObject({ pid: firstPid, host: hostname() })

    // A second process…
    const second = await runChild(FAN_OUT_CHILD, fanOutArgs(home, migrations, 2))
    expect(second.code).toBe(1)
    const refused = childResult(second)?.error
    expect(refused?.code).toBe('MIGRATION_LOCKED')
    expect(refused?.message).toContain(`pid ${holder!.pid} on ${hostname()}`)
    // …and a second instance in this process are both refused, and change nothing.
    const error = await migrateError(home, migrations)
    expect(error.code).toBe('MIGRATION_LOCKED')
    expect(error.message).toMatch(/Another migration runner is active \(pid \d+ on .+, since .+\)/)
    expect(error.details).toMatchObject({ pid: holder!.pid, host: hostname() })
    expect(readHome(home).lock).toEqual(holder)

    writeFileSync(`${gate}.open`, '')
    const done = await first
    expect(done.code, done.stderr).toBe(0)
    expect(childResult(done)?.report).toMatchObject({ succeeded: TENANTS, failed: 0 })
    const state = readHome(home)
    expect(state.lock).toBeUndefined()
    expect(state.tenants.map((t) => t.ledger)).toEqual(Array(TENANTS).fill(ALL_MIGRATIONS))

    // The lock is free again: a new run with a new migration takes it and does the work.
    const next = join(root.path, 'migrations-next')
    cpSync(migrations, next, { recursive: true })
    writeFileSync(join(next, '0005_job_notes.sql'), 'ALTER TABLE jobs ADD COLUMN notes TEXT;\n')
    const tenantry = await openTenantry(home, next)
    try {
      const report = await tenantry.migrate()
      expect(report).toMatchObject({ succeeded: TENANTS, failed: 0 })
      expect(report.results.every((r) => r.applied.join() === '0005_job_notes')).toBe(true)
    } finally {
      await tenantry.close()
    }
    const after = readHome(home)
    expect(after.lock).toBeUndefined()
    for (const tenant of after.tenants) {
      expect(tenant.ledger).toEqual([...ALL_MIGRATIONS, '0005_job_notes'])
      expect(tenant.jobColumns).toContain('notes')
    }
  })

  it('takes over the lock of a runner that was SIGKILLed mid-migration', async () => {
    const { home, gate, env } = scenario()
    const killed = await runChild(FAN_OUT_CHILD, fanOutArgs(home, migrations, 2), {
      env,
      onStarted: (pid) => void until(() => existsSync(`${gate}.entered`), 'the runner to enter a migration').then(() => process.kill(pid, 'SIGKILL')),
    })
    expect(killed.signal).toBe('SIGKILL')
    const orphan = readHome(home)
    expect(orphan.lock?.pid).toBe(killed.pid)
    // The tenants it was migrating rolled back: nothing half-applied, nothing in the ledger.
    for (const tenant of orphan.tenants) {
      expect(tenant.applied).toEqual(OLD_MIGRATIONS)
      expect(tenant.ledger).toEqual(OLD_MIGRATIONS)
      expect(tenant.jobColumns).not.toContain('remote')
    }

    const tenantry = await openTenantry(home, migrations)
    try {
      const report = await tenantry.migrate()
      expect(report).toMatchObject({ succeeded: TENANTS, failed: 0 })
      const takeOver = (await tenantry.catalog.auditLog()).find((e) => e.action === 'lock.taken_over')
      expect(takeOver?.details).toMatchObject({ pid: killed.pid })
    } finally {
      await tenantry.close()
    }
    const state = readHome(home)
    expect(state.lock).toBeUndefined()
    for (const tenant of state.tenants) {
      expect(tenant.ledger).toEqual(ALL_MIGRATIONS)
      expect(tenant.applied).toEqual(ALL_MIGRATIONS)
      expect(tenant.jobColumns).toContain('remote')
    }
  })

  it('refuses a live lock held on another host and takes over one whose heartbeat went stale', async () => {
    const { home } = scenario()
    const plant = async (heartbeatAt: string) => {
      const tenantry = await openTenantry(home, migrations)
      try {
        await tenantry.catalog.db.deleteFrom('locks').execute()
        await tenantry.catalog.db
          .insertInto('locks')
          .values({ name: 'tenant-migrations', holder: 'elsewhere', pid: 1, host: 'worker-7', acquired_at: heartbeatAt, heartbeat_at: heartbeatAt })
          .execute()
      } finally {
        await tenantry.close()
      }
    }

    // pid 1 exists here, but on another host a pid says nothing: only the heartbeat counts.
    await plant(new Date().toISOString())
    const error = await migrateError(home, migrations)
    expect(error.code).toBe('MIGRATION_LOCKED')
    expect(error.message).toContain('pid 1 on worker-7')
    expect(readHome(home).tenants.every((t) => t.ledger.length === OLD_MIGRATIONS.length)).toBe(true)

    await plant(new Date(Date.now() - 5 * 60_000).toISOString())
    const tenantry = await openTenantry(home, migrations)
    try {
      expect(await tenantry.migrate()).toMatchObject({ succeeded: TENANTS, failed: 0 })
    } finally {
      await tenantry.close()
    }
    expect(readHome(home).lock).toBeUndefined()
  })
})
