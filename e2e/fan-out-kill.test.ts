import { cpSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { tempDir } from 'tenantry/testing'
import {
  ALL_MIGRATIONS,
  FAN_OUT_CHILD,
  fanOutArgs,
  childResult,
  copyExampleMigrations,
  createHome,
  openTenantry,
  readHome,
  runChild,
  writeNewMigrations,
  type HomeState,
} from './fixtures/homes.js'

const TENANTS = 30
const TRIALS = 20

/** Every tenant is at the full set in both places, with the real schema, its own data intact, and no lock left. */
function expectConverged(state: HomeState, context: string): void {
  expect(state.tenants, context).toHaveLength(TENANTS)
  for (const tenant of state.tenants) {
    const where = `${context}, ${tenant.slug}`
    expect(tenant.status, where).toBe('ready')
    expect(tenant.ledger, where).toEqual(ALL_MIGRATIONS)
    expect(tenant.applied, where).toEqual(ALL_MIGRATIONS)
    expect(tenant.jobColumns, where).toContain('remote')
    expect(tenant.objects, where).toEqual(expect.arrayContaining(['index:jobs_remote', 'table:job_tags', 'index:job_tags_tag']))
    expect(tenant.ownRow, where).toBe(true)
    expect(tenant.jobs, where).toBe(50)
    expect(tenant.quickCheck, where).toBe('ok')
  }
  expect(state.lock, context).toBeUndefined()
}

function complete(names: string[] | null): boolean {
  return names !== null && ALL_MIGRATIONS.every((n) => names.includes(n))
}

describe('fan-out killed with SIGKILL at random moments', () => {
  const root = tempDir('tenantry-fan-out-kill-')
  const pristine = join(root.path, 'pristine')
  const migrations = join(root.path, 'migrations')
  // How long a full child run takes, measured on this machine, so kills land before, during and after the work.
  let startupMs = 0
  let workMs = 0

  beforeAll(async () => {
    copyExampleMigrations(migrations)
    await createHome(pristine, migrations, TENANTS)
    writeNewMigrations(migrations)

    const home = join(root.path, 'calibration')
    cpSync(pristine, home, { recursive: true })
    const spawned = performance.now()
    const outcome = await runChild(FAN_OUT_CHILD, fanOutArgs(home, migrations, 4))
    expect(outcome.code, outcome.stderr).toBe(0)
    expect(childResult(outcome)?.report).toMatchObject({ succeeded: TENANTS, failed: 0 })
    expectConverged(readHome(home), 'uninterrupted run')
    startupMs = outcome.startedAfterMs!
    workMs = Math.max(50, performance.now() - spawned - startupMs)
  })

  afterAll(() => root.cleanup())

  it(`converges after ${TRIALS} runs killed at random moments`, { timeout: 120_000 }, async () => {
    const seed = Number(process.env.TENANTRY_KILL_SEED ?? Date.now() % 1_000_000)
    const random = mulberry32(seed)
    const between = (max: number) => Math.round(random() * max)
    const stats = { partial: 0, ledgerBehindDb: 0, untouched: 0, finished: 0, doubleKills: 0 }

    for (let trial = 0; trial < TRIALS; trial++) {
      const home = join(root.path, `trial-${trial}`)
      cpSync(pristine, home, { recursive: true })
      // One trial in four dies while starting up (opening the catalog, loading migrations); the rest once work began.
      const kill =
        trial % 4 === 0
          ? { killAfterSpawnMs: between(startupMs + workMs) }
          : { killAfterStartedMs: between(workMs * 1.25) }
      const context = `seed ${seed}, trial ${trial}, ${JSON.stringify(kill)}`
      const first = await runChild(FAN_OUT_CHILD, fanOutArgs(home, migrations, 4), kill)
      if (first.signal !== 'SIGKILL') expect(first.code, `${context}: ${first.stderr}`).toBe(0)
      if (trial % 3 === 1) {
        // Killed again: this runner must first take over the dead runner's lock.
        const second = await runChild(FAN_OUT_CHILD, fanOutArgs(home, migrations, 4), { killAfterStartedMs: between(workMs) })
        if (second.signal !== 'SIGKILL') expect(second.code, `${context}, second run: ${second.stderr}`).toBe(0)
        stats.doubleKills++
      }

      // Look at what the kills left on a copy, so the re-run below meets the crashed files untouched.
      const snapshot = join(root.path, `trial-${trial}-snapshot`)
      cpSync(home, snapshot, { recursive: true })
      const before = readHome(snapshot)
      const dbDone = before.tenants.filter((t) => complete(t.applied)).length
      const ledgerDone = before.tenants.filter((t) => complete(t.ledger)).length
      if ((dbDone > 0 && dbDone < TENANTS) || (ledgerDone > 0 && ledgerDone < TENANTS)) stats.partial++
      if (before.tenants.some((t) => complete(t.applied) && !complete(t.ledger))) stats.ledgerBehindDb++
      if (dbDone === 0) stats.untouched++
      if (ledgerDone === TENANTS) stats.finished++
      for (const tenant of before.tenants) {
        // All or nothing per tenant, and the ledger never claims more than the database holds.
        expect([2, 4], `${context}, ${tenant.slug} before re-run`).toContain(tenant.applied?.length)
        expect(tenant.applied, `${context}, ${tenant.slug} before re-run`).toEqual(expect.arrayContaining(tenant.ledger))
      }

      const tenantry = await openTenantry(home, migrations)
      try {
        const report = await tenantry.migrate({ concurrency: 4 })
        expect(report.failed, `${context}: ${JSON.stringify(report.results.filter((r) => r.status === 'error'))}`).toBe(0)
        expect(report.upToDate + report.results.length, context).toBe(TENANTS)
      } finally {
        await tenantry.close()
      }
      expectConverged(readHome(home), context)
    }

    console.info(`fan-out kill trials (seed ${seed}, startup ${Math.round(startupMs)} ms, work ${Math.round(workMs)} ms):`, stats)
    // Without kills that land mid-work this test would pass vacuously.
    expect(stats.partial, `seed ${seed}: ${JSON.stringify(stats)}`).toBeGreaterThan(0)
  })
})

/** A small seeded PRNG, so a failing run's kill delays can be replayed with TENANTRY_KILL_SEED. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
