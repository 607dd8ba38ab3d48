import { cp, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createTenantry, type FanOutReport, type Tenantry, type TenantryConfig } from 'tenantry'
import { compareThroughput, repoRoot, type ThroughputResult } from './harness.js'

export const exampleMigrations = join(repoRoot, 'examples/cv-builder/migrations')

export function openTenantry(home: string, config: Omit<TenantryConfig, 'home'> = {}): Promise<Tenantry> {
  return createTenantry({
    home,
    migrations: { tenant: exampleMigrations },
    dataSources: [{ id: 'local', engine: 'sqlite' }],
    ...config,
  })
}

export function slugFor(prefix: string, i: number): string {
  return `${prefix}${String(i).padStart(5, '0')}`
}

export interface Provisioned {
  slugs: string[]
  ids: string[]
  seconds: number
  tenantsPerSec: number
}

/** Creates `count` tenants one after another, as an app's sign-up flow would. */
export async function provisionTenants(
  tenantry: Tenantry,
  count: number,
  options: { prefix?: string; offset?: number; progress?: (done: number) => void } = {},
): Promise<Provisioned> {
  const slugs: string[] = []
  const ids: string[] = []
  const started = performance.now()
  for (let i = 0; i < count; i++) {
    const tenant = await tenantry.createTenant({ slug: slugFor(options.prefix ?? 't', (options.offset ?? 0) + i) })
    slugs.push(tenant.slug)
    ids.push(tenant.id)
    if (options.progress && (i + 1) % 1000 === 0) options.progress(i + 1)
  }
  const seconds = (performance.now() - started) / 1000
  return { slugs, ids, seconds, tenantsPerSec: count / seconds }
}

/**
 * Copies the example's migrations into `dir/migrations` and adds one more. The copy keeps
 * the migration set's content hash, so tenants made from the original set are just one
 * migration behind. `node_modules` is linked in because migration files import kysely.
 */
export async function migrationsWithNewOne(dir: string): Promise<string> {
  const migrations = join(dir, 'migrations')
  await cp(exampleMigrations, migrations, { recursive: true })
  await symlink(join(repoRoot, 'node_modules'), join(dir, 'node_modules'), 'dir')
  await writeFile(
    join(migrations, '0003_job_tags.ts'),
    [
      "import type { Kysely } from 'kysely'",
      '',
      'export async function up(db: Kysely<any>): Promise<void> {',
      "  await db.schema.alterTable('jobs').addColumn('tags', 'text', (c) => c.notNull().defaultTo('[]')).execute()",
      '}',
      '',
    ].join('\n'),
  )
  return migrations
}

/** `tenantry.migrate()` that throws when any tenant failed: a benchmark of a broken run measures nothing. */
export async function migrateOrThrow(tenantry: Tenantry, concurrency: number, tenantIds?: readonly string[], threads?: boolean): Promise<FanOutReport> {
  const report = await tenantry.migrate({ concurrency, ...(tenantIds ? { tenantIds } : {}), ...(threads !== undefined ? { threads } : {}) })
  if (report.failed > 0) throw new Error(`fan-out failed for ${report.failed} tenants: ${report.results.find((r) => r.error)?.error}`)
  return report
}

/** One way to run a fan-out: its concurrency, and worker threads on or off (`undefined`: the run's default). */
export interface FanOutRun {
  concurrency: number
  threads?: boolean
}

export const fanOutRunName = (run: FanOutRun): string =>
  `concurrency ${run.concurrency}${run.threads === undefined ? '' : run.threads ? ', worker threads' : ', main thread'}`

/**
 * Applies the pending migration to each tenant of `ids` exactly once, comparing ways to run
 * it: the variants take turns on consecutive slices, so they are interleaved like any other,
 * and whatever the rounds leave over is applied at the end. Returns the comparison and the wall
 * time of every slice together.
 */
export async function applyInSlices(
  tenantry: Tenantry,
  ids: readonly string[],
  options: { title: string; runs: readonly FanOutRun[]; rounds: number; leftover: FanOutRun },
): Promise<{ apply: ThroughputResult; chunk: number; seconds: number }> {
  const chunk = Math.floor(ids.length / (options.runs.length * options.rounds))
  let next = 0
  let seconds = 0
  const applySlice = async (run: FanOutRun, count: number) => {
    const slice = ids.slice(next, next + count)
    next += slice.length
    const started = performance.now()
    const report = await migrateOrThrow(tenantry, run.concurrency, slice, run.threads)
    seconds += (performance.now() - started) / 1000
    if (report.succeeded !== slice.length) throw new Error(`expected ${slice.length} migrated, got ${report.succeeded}`)
  }
  const apply = await compareThroughput({
    title: `${options.title}, slices of ${chunk}`,
    baseline: fanOutRunName(options.runs[0]!),
    unit: 'tenants',
    opsPerRound: chunk,
    rounds: options.rounds,
    warmupRounds: 0,
    variants: options.runs.map((run) => ({ name: fanOutRunName(run), run: (count: number) => applySlice(run, count) })),
  })
  if (next < ids.length) await applySlice(options.leftover, ids.length - next)
  return { apply, chunk, seconds }
}
