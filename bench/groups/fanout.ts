import { join } from 'node:path'
import type { FanOutReport, Tenantry } from 'tenantry'
import { applyInSlices, migrateOrThrow, migrationsWithNewOne, openTenantry, provisionTenants } from '../fixtures.js'
import { compareLatency, fmt, type BenchContext } from '../harness.js'

const GOAL_TENANTS = 10_000
const CONCURRENCY = [1, 4, 8]

export async function fanoutGroup(ctx: BenchContext): Promise<void> {
  const tenantCount = ctx.size(GOAL_TENANTS)
  const applyRounds = 4
  const scale = GOAL_TENANTS / tenantCount
  const projected = scale === 1 ? '' : ` (projected ×${scale} from ${tenantCount} tenants)`

  const dir = await ctx.workDir('home')
  const home = join(dir, 'home')
  let tenantry: Tenantry = await openTenantry(home)
  try {
    ctx.log(`provisioning ${tenantCount} tenants from the template (setup)…`)
    const setup = await provisionTenants(tenantry, tenantCount, { progress: (done) => ctx.log(`${done} tenants`) })
    ctx.metric('setupProvisioning', { tenants: tenantCount, seconds: setup.seconds, tenantsPerSec: setup.tenantsPerSec })
    ctx.log(`setup: ${tenantCount} tenants in ${fmt(setup.seconds)} s = ${fmt(setup.tenantsPerSec)} tenants/s (sequential createTenant)`)

    const expectNothing = (report: FanOutReport) => {
      if (report.results.length !== 0 || report.upToDate !== tenantCount) {
        throw new Error(`expected nothing to apply, got ${report.results.length} tenants behind`)
      }
    }

    const idle = await compareLatency({
      title: `migrate() with nothing to apply, ${tenantCount} tenants up to date`,
      baseline: 'concurrency 1',
      samplesPerRound: 1,
      rounds: 3,
      warmupRounds: 1,
      variants: CONCURRENCY.map((c) => ({
        name: `concurrency ${c}`,
        op: async () => expectNothing(await migrateOrThrow(tenantry, c)),
      })),
    })
    ctx.table(idle)
    const worstIdleSec = (Math.max(...idle.rows.map((r) => r.p50Ms)) / 1000) * scale
    ctx.goal({
      name: `nothing to apply, ${GOAL_TENANTS} tenants`,
      target: '< 10 s',
      measured: `${fmt(worstIdleSec)} s${projected}`,
      met: worstIdleSec < 10,
    })

    // A new Tenantry on the same home, whose migration set has one more migration.
    await tenantry.close()
    tenantry = await openTenantry(home, { migrations: { tenant: await migrationsWithNewOne(dir) } })
    const status = await tenantry.migrationStatus()
    if (status.behind.length !== tenantCount) throw new Error(`expected ${tenantCount} tenants behind, got ${status.behind.length}`)

    // Every tenant gets the migration once: the variants take turns on consecutive slices of them.
    const ids = status.behind.map((b) => b.tenantId)
    const { apply, seconds: applySeconds } = await applyInSlices(tenantry, ids, {
      title: 'migrate() applying 0003_job_tags (ALTER TABLE … ADD COLUMN)',
      concurrencies: CONCURRENCY,
      rounds: applyRounds,
      leftoverConcurrency: 4,
    })
    ctx.table(apply)

    const rows = apply.rows.map((r) => [r.name, fmt(r.medianOpsPerSec), fmt(GOAL_TENANTS / r.medianOpsPerSec)])
    ctx.table({
      kind: 'table',
      title: `Applying one migration to ${GOAL_TENANTS} tenants${projected}`,
      headers: ['run', 'tenants/s', `s for ${GOAL_TENANTS}`],
      rows: [...rows, [`all ${tenantCount} tenants, as run above (mixed concurrency)`, fmt(tenantCount / applySeconds), fmt(applySeconds * scale)]],
    })
    const best = Math.max(...apply.rows.map((r) => r.medianOpsPerSec))
    ctx.goal({
      name: `apply one migration to ${GOAL_TENANTS} tenants`,
      target: '< 60 s',
      measured: `${fmt(applySeconds * scale)} s for all, as run${projected}; ${fmt(GOAL_TENANTS / best)} s at the best concurrency's rate`,
      met: applySeconds * scale < 60,
    })
    ctx.metric('apply', { tenants: tenantCount, seconds: applySeconds })

    const after = await compareLatency({
      title: 'migrate() with nothing to apply, after the new migration',
      baseline: 'concurrency 4',
      samplesPerRound: 1,
      rounds: 1,
      warmupRounds: 0,
      variants: [{ name: 'concurrency 4', op: async () => expectNothing(await migrateOrThrow(tenantry, 4)) }],
    })
    ctx.table(after)
    ctx.note(
      'better-sqlite3 is synchronous: every statement blocks the one JS thread, so concurrency in one process only ' +
        'overlaps the few truly async steps (catalog awaits, file close); it cannot use the second core.',
    )
  } finally {
    await tenantry.close()
  }
}
