import { existsSync } from 'node:fs'
import type { Command } from 'commander'
import {
  Catalog,
  TenantryError,
  isPostgresUrl,
  type FanOutReport,
  type ResolvedConfig,
  type SharedMigrationReport,
  type Tenantry,
  type TenantMigrationResult,
} from 'tenantry'
import { UsageError, oneLine } from '../errors.js'
import { positiveInteger, requireSlug } from '../input.js'
import { loadCommandConfig, withTenantry } from '../open-tenantry.js'
import { cell, safeText, type Output } from '../output.js'
import { Progress } from '../progress.js'

interface MigrateOptions {
  catalogOnly?: boolean
  sharedOnly?: boolean
  tenant?: string
  concurrency?: number
  dryRun?: boolean
  json?: boolean
}

/** `tenantry migrate` and `tenantry migrate status`. */
export function registerMigrateCommands(program: Command, out: Output): void {
  const migrate = program
    .command('migrate')
    .description('bring the catalog up to date, apply the shared (app-level) migrations, then fan the tenant migrations out to every tenant that is behind')
    .option('--catalog-only', 'migrate the catalog only')
    .option('--shared-only', 'migrate the catalog and the shared migrations (migrations.shared), not the tenants')
    .option('--tenant <slug>', 'migrate this tenant only')
    .option('--concurrency <n>', 'tenants migrated at once (default 4)', positiveInteger)
    .option('--dry-run', 'list what would run for each tenant and change nothing')
    .option('--json', 'print the outcome as JSON: { catalog, shared (when configured), tenants }')
    .action(async (options: MigrateOptions, command: Command) => {
      if (options.tenant !== undefined) requireSlug(options.tenant)
      if (options.catalogOnly && (options.tenant !== undefined || options.concurrency !== undefined)) {
        throw new UsageError('--catalog-only cannot be combined with --tenant or --concurrency')
      }
      if (options.sharedOnly && (options.catalogOnly || options.tenant !== undefined || options.concurrency !== undefined)) {
        throw new UsageError('--shared-only cannot be combined with --catalog-only, --tenant or --concurrency')
      }
      const config = await loadCommandConfig(command)
      if (options.sharedOnly && !config.sharedMigrations) throw new UsageError('No shared migrations are configured (migrations.shared in tenantry.config.ts)')
      if (options.dryRun) return dryRun(command, config, options, out)

      const catalog = await migrateCatalog(config)
      if (options.catalogOnly) {
        if (options.json) return out.json({ catalog, tenants: null })
        return out.line(catalogSummary(catalog))
      }
      if (!options.json) out.line(catalogSummary(catalog))

      await withTenantry(
        command,
        async (tenantry) => {
          // The shared tables first: tenants' migrations and code may read them. A failure stops here, before any tenant.
          const shared = tenantry.sharedMigrations ? await tenantry.migrateShared() : null
          if (shared && !options.json) out.line(sharedSummary(shared))
          if (options.sharedOnly) {
            if (options.json) out.json({ catalog, shared, tenants: null })
            return
          }
          const tenantIds = options.tenant ? [await migratableTenantId(tenantry, options.tenant, out)] : undefined
          const progress = new Progress(out, { unit: 'tenants', json: options.json })
          const report = await tenantry.migrate({
            ...(options.concurrency ? { concurrency: options.concurrency } : {}),
            ...(tenantIds ? { tenantIds } : {}),
            onStart: ({ behind }) => progress.start(behind),
            onResult: (result) => progress.done(result.slug, OUTCOME[result.status], progressLine(result), result.error),
          })
          progress.finish(fanOutSummary(report))
          if (options.json) out.json({ catalog, ...(shared ? { shared } : {}), tenants: report })
          if (report.failed > 0) {
            throw new TenantryError(
              'MIGRATION_FAILED',
              `${report.failed} of ${report.results.length} tenants failed to migrate; a re-run retries them`,
            )
          }
        },
        { config, migrateCatalog: false },
      )
    })

  migrate
    .command('status')
    .description('per migration, how many tenants have applied it; the tenants behind; the runner holding the lock')
    .option('--json', 'print the status as JSON')
    .action(async (options: { json?: boolean }, command: Command) => {
      // `migrate` parses its own options wherever they appear, so they reach us through the parent.
      const parent = command.parent!.opts<MigrateOptions>()
      const stray = Object.keys(parent).filter((name) => name !== 'json')
      if (stray.length) throw new UsageError(`migrate status does not take --${kebab(stray[0]!)}`)
      const json = options.json ?? parent.json ?? false

      await withTenantry(command, async (tenantry) => {
        const status = await tenantry.migrationStatus()
        const shared = await tenantry.sharedMigrationStatus()
        if (json) return out.json(shared ? { ...status, shared } : status)
        if (shared) {
          out.line(`Shared migrations (${shared.location}): ${shared.pending.length === 0 ? 'all applied' : `${shared.pending.length} pending`}.`)
          out.table(shared.migrations, [
            { header: 'SHARED MIGRATION', value: (m) => m.name },
            { header: 'APPLIED', value: (m) => m.appliedAt ?? 'pending' },
          ])
          out.line(shared.readable.length ? `Tenants may read: ${shared.readable.join(', ')}.` : 'Tenants may read no shared table.')
          out.line()
        }
        if (status.migrations.length === 0) out.line('No tenant migrations are configured.')
        else {
          out.table(status.migrations, [
            { header: 'MIGRATION', value: (m) => m.name },
            { header: 'APPLIED', value: (m) => m.appliedTenants },
            { header: 'PENDING', value: (m) => m.pendingTenants },
          ])
        }
        out.line()
        if (status.behind.length === 0) out.line(`${status.tenants} tenants; all up to date.`)
        else {
          out.line(`${status.tenants} tenants; ${status.behind.length} behind:`)
          out.table(status.behind, [
            { header: 'SLUG', value: (t) => t.slug },
            { header: 'STATUS', value: (t) => t.status },
            { header: 'PENDING', value: (t) => t.pending.join(', ') },
          ], '  ')
        }
        out.line(
          status.lock
            ? `A migration run is active: pid ${status.lock.pid} on ${cell(status.lock.host)}, since ${status.lock.since}.`
            : 'No migration run is active.',
        )
      })
    })
}

/** Brings the catalog's own tables up to date, before anything else opens it. */
async function migrateCatalog(config: ResolvedConfig) {
  const catalog = Catalog.open({ url: config.catalogUrl })
  try {
    return await catalog.migrate()
  } finally {
    await catalog.close()
  }
}

async function dryRun(command: Command, config: ResolvedConfig, options: MigrateOptions, out: Output): Promise<void> {
  // Opening a SQLite catalog creates its file: a dry run against nothing must leave nothing.
  if (!isPostgresUrl(config.catalogUrl) && !existsSync(config.catalogUrl)) {
    if (options.tenant) throw new TenantryError('TENANT_NOT_FOUND', `Tenant "${options.tenant}" not found`)
    if (options.json) return out.json({ dryRun: true, catalog: null, tenants: null })
    out.line(`Dry run: there is no catalog at ${config.catalogUrl} yet; \`tenantry migrate\` would create it.`)
    return
  }
  if (options.catalogOnly) {
    if (options.json) return out.json({ dryRun: true, catalog: null, tenants: null })
    return out.line('Dry run: the catalog is left as it is. Nothing was changed.')
  }
  await withTenantry(
    command,
    async (tenantry) => {
      const shared = (await tenantry.sharedMigrationStatus()) ?? null
      if (shared && !options.json) {
        out.line(shared.pending.length ? `Shared (${shared.location}): would apply ${shared.pending.join(', ')}` : `Shared (${shared.location}): up to date`)
      }
      if (options.sharedOnly) {
        if (options.json) return out.json({ dryRun: true, catalog: null, shared, tenants: null })
        return out.line('Dry run: nothing was changed.')
      }
      const tenantIds = options.tenant ? [await migratableTenantId(tenantry, options.tenant, out)] : undefined
      const report = await tenantry.migrate({ dryRun: true, ...(tenantIds ? { tenantIds } : {}) })
      if (options.json) return out.json({ dryRun: true, catalog: null, ...(shared ? { shared } : {}), tenants: report })
      for (const result of report.results) out.line(`${result.slug}: would apply ${result.applied.join(', ')}`)
      out.line(
        `Dry run: ${report.results.length} of ${report.total} tenants would be migrated (${report.upToDate} up to date). Nothing was changed.`,
      )
    },
    { config, migrateCatalog: false },
  )
}

async function migratableTenantId(tenantry: Tenantry, slug: string, out: Output): Promise<string> {
  const tenant = await tenantry.catalog.findTenantBySlug(slug)
  if (!tenant) throw new TenantryError('TENANT_NOT_FOUND', `Tenant "${slug}" not found`)
  if (tenant.status !== 'ready' && tenant.status !== 'suspended') {
    out.note(`Tenant ${slug} is ${tenant.status}: only ready and suspended tenants are migrated.`)
  }
  return tenant.id
}

function sharedSummary(report: SharedMigrationReport): string {
  const applied = report.applied.length === 0 ? 'up to date' : `applied ${report.applied.join(', ')}`
  const readable = report.readable.length ? `tenants may read ${report.readable.join(', ')}` : 'tenants may read no shared table'
  return `Shared (${report.location}): ${applied}; ${readable}.`
}

function catalogSummary(results: ReadonlyArray<{ migrationName: string }>): string {
  return results.length === 0
    ? 'Catalog: up to date.'
    : `Catalog: applied ${results.map((r) => r.migrationName).join(', ')}.`
}

const OUTCOME = { success: 'succeeded', skipped: 'skipped', error: 'failed' } as const

/** One tenant's outcome as a progress line for stderr. */
export function progressLine(result: TenantMigrationResult): string {
  switch (result.status) {
    case 'success':
      return `  migrated ${result.slug}: ${result.applied.join(', ')}`
    case 'skipped':
      return `  skipped  ${result.slug}: its database already had every migration; ledger updated`
    case 'error':
      return `  FAILED   ${result.slug}: ${safeText(oneLine(result.error ?? 'unknown error'))}`
  }
}

function fanOutSummary(report: FanOutReport): string {
  if (report.migrations.length === 0) return 'Tenants: no tenant migrations are configured.'
  const skipped = report.results.length - report.succeeded - report.failed
  return (
    `Tenants: ${report.succeeded} migrated, ${report.failed} failed, ${skipped} skipped, ` +
    `${report.upToDate} already up to date, of ${report.total} (${report.durationMs} ms).`
  )
}

function kebab(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)
}
