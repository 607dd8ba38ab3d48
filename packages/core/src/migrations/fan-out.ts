import type { Catalog, TenantRecord } from '../catalog/catalog.js'
import type { TenantStatus } from '../catalog/catalog-schema.js'
import type { DataSources } from '../data-sources/data-sources.js'
import { SILENT_LOGGER, type Logger } from '../logger.js'
import { migrateHandle, type HandleMigrationOutcome, type TenantMigrationSet } from './migration-set.js'

/** Tenants whose data exists and must follow the schema. Provisioning migrates its own tenants. */
export const MIGRATABLE_STATUSES: readonly TenantStatus[] = ['ready', 'suspended']

/**
 * From how many tenants behind a run migrates SQLite tenants on worker threads by default. A
 * worker takes about half a second of CPU to start (Tenantry's modules, Kysely, the migration
 * files), which is what a hundred or so tenants take on the event loop's thread; below that,
 * the threads would cost more than they save.
 */
export const THREADS_FROM_TENANTS = 100

export interface FanOutOptions {
  /** Tenants migrated at once (on worker threads: as many threads). @default 4 */
  concurrency?: number
  /**
   * Migrate SQLite tenants on worker threads (`SqliteEngine.migrateOffThread`), so the run uses
   * every core and the process's event loop stays free: `true` always, `false` never. Only for
   * migrations read from a directory; migrations given in code run in this thread.
   * @default from `THREADS_FROM_TENANTS` tenants behind
   */
  threads?: boolean
  /** Limit the run to these tenant ids. */
  tenantIds?: readonly string[]
  /** List what would run and change nothing. */
  dryRun?: boolean
  /** Called as each tenant finishes, for progress output. */
  onResult?: (result: TenantMigrationResult) => void
  /** Called once the tenants behind are known, before the first is migrated (a progress bar's total). */
  onStart?: (run: { total: number; behind: number }) => void
}

/** One tenant's outcome. A batch never stops at the first failure (Kysely's migrator style). */
export interface TenantMigrationResult {
  tenantId: string
  slug: string
  /** `skipped`: nothing to apply (its database already had everything; the ledger was brought level). */
  status: 'success' | 'error' | 'skipped'
  /** Migrations applied by this run, or that would be in a dry run. */
  applied: string[]
  error?: string
}

export interface FanOutReport {
  migrations: readonly string[]
  dryRun: boolean
  /** Migratable tenants considered. */
  total: number
  /** Tenants the ledger showed as up to date: never opened. */
  upToDate: number
  results: TenantMigrationResult[]
  succeeded: number
  failed: number
  durationMs: number
}

/** What the runner works with. */
export interface FanOutDeps {
  catalog: Catalog
  dataSources: DataSources
  migrations: TenantMigrationSet
  /** Hears of errors the run survives (a missed lock heartbeat). @default SILENT_LOGGER */
  logger?: Logger
}

const LOCK_NAME = 'tenant-migrations'
const HEARTBEAT_MS = 10_000

/**
 * Runs the tenant migrations for every tenant that is behind. One catalog query finds
 * them; each is migrated in one transaction in its own database, then its ledger rows
 * are written. A crash between the two is healed by the next run, which reads what the
 * database holds and writes the ledger to match. Only one runner may run at a time.
 */
export async function runFanOut(deps: FanOutDeps, options: FanOutOptions = {}): Promise<FanOutReport> {
  const started = performance.now()
  const { catalog, migrations } = deps
  const logger = deps.logger ?? SILENT_LOGGER
  /** Tenants being migrated right now: a missed heartbeat concerns them. */
  const running = new Set<string>()
  const lock = options.dryRun ? undefined : await catalog.acquireLock(LOCK_NAME)
  // A missed beat is not fatal (the lock is only taken over after 60 s without one), but
  // repeated misses let a second runner in: say so, with the tenants that are in flight.
  const beat = (held: NonNullable<typeof lock>) =>
    held.heartbeat().catch((err: unknown) => logger.warn({ err, lock: LOCK_NAME, tenantIds: [...running] }, 'Migration lock heartbeat failed'))
  const heartbeat = lock && setInterval(() => void beat(lock), HEARTBEAT_MS).unref()
  try {
    const scope = options.tenantIds ? { tenantIds: options.tenantIds } : {}
    const behind = await catalog.tenantsBehind(migrations.names, { statuses: MIGRATABLE_STATUSES, ...scope })
    const total = await catalog.countTenants(MIGRATABLE_STATUSES, options.tenantIds)

    options.onStart?.({ total, behind: behind.length })

    const results: TenantMigrationResult[] = []
    const concurrency = Math.max(1, options.concurrency ?? 4)
    const threads = options.threads ?? behind.length >= THREADS_FROM_TENANTS
    const migrateOne = async ({ tenant, applied }: { tenant: TenantRecord; applied: string[] }) => {
      let result: TenantMigrationResult
      if (options.dryRun) {
        result = dryRunResult(tenant, applied, migrations.names)
      } else {
        running.add(tenant.id)
        result = await migrateTenant(tenant, applied, deps, threads ? concurrency : undefined)
        running.delete(tenant.id)
      }
      results.push(result)
      options.onResult?.(result)
    }
    await forEachBounded(behind, concurrency, migrateOne)

    return {
      migrations: migrations.names,
      dryRun: options.dryRun ?? false,
      total,
      upToDate: total - behind.length,
      results,
      succeeded: results.filter((r) => r.status === 'success').length,
      failed: results.filter((r) => r.status === 'error').length,
      durationMs: Math.round(performance.now() - started),
    }
  } finally {
    if (heartbeat) clearInterval(heartbeat)
    await lock?.release()
  }
}

async function migrateTenant(
  tenant: TenantRecord,
  ledger: readonly string[],
  { catalog, dataSources, migrations, logger }: FanOutDeps,
  /** Set: on worker threads where the engine and the set allow, this many at once. */
  threads: number | undefined,
): Promise<TenantMigrationResult> {
  const base = { tenantId: tenant.id, slug: tenant.slug }
  try {
    const engine = await dataSources.engine(tenant.placement.dataSourceId)
    const placement = { tenantId: tenant.id, ...tenant.placement }
    // Off the event loop where the engine can (SQLite: worker threads) and the set can be
    // loaded there (read from a directory); else on a handle opened here.
    let outcome: HandleMigrationOutcome
    let shared = false
    if (threads !== undefined && engine.migrateOffThread && migrations.source) {
      outcome = await engine.migrateOffThread(placement, migrations.source, { parallelism: threads })
    } else {
      const handle = engine.open(placement, 'admin')
      try {
        shared = handle.shared ?? false
        outcome = await migrateHandle(handle, migrations, { tenantId: tenant.id, logger })
      } finally {
        await handle.close()
      }
    }
    await catalog.recordMigrations(tenant.id, outcome.executed)
    if (outcome.error !== undefined) {
      const error = errorMessage(outcome.error)
      await catalog.audit({ tenantId: tenant.id, action: 'tenant.migrate.failed', details: { error } })
      return { ...base, status: 'error', applied: [], error }
    }
    // Shared tables may have been migrated through another tenant earlier in this run:
    // for this tenant, what it gained is what its ledger lacked.
    // A derived step (search index) the ledger lacked counts as applied too.
    const executed = outcome.executed
    const derived = migrations.derived.map((d) => d.name).filter((n) => !ledger.includes(n) && executed.some((m) => m.name === n))
    const applied = shared ? executed.map((m) => m.name).filter((n) => !ledger.includes(n)) : [...outcome.applied, ...derived]
    return { ...base, status: applied.length > 0 ? 'success' : 'skipped', applied }
  } catch (error) {
    return { ...base, status: 'error', applied: [], error: errorMessage(error) }
  }
}

function dryRunResult(tenant: TenantRecord, applied: string[], names: readonly string[]): TenantMigrationResult {
  const done = new Set(applied)
  return { tenantId: tenant.id, slug: tenant.slug, status: 'skipped', applied: names.filter((n) => !done.has(n)) }
}

/** Runs `fn` over `items` with at most `limit` running at once. */
export async function forEachBounded<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0
  const worker = async () => {
    while (next < items.length) await fn(items[next++]!)
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}
