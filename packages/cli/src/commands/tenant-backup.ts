import type { Command } from 'commander'
import type { BackupProgress } from 'tenantry'
import { UsageError } from '../errors.js'
import { cliActor, requireSlug } from '../input.js'
import { withTenantry } from '../open-tenantry.js'
import { quoteInput, type Output } from '../output.js'
import { WorkProgress, type WorkUpdate } from '../progress.js'

/** Backup ids as `tenantry tenant backups` lists them (checked again by the core). */
const BACKUP_ID = /^b[0-9a-z]{9}[0-9a-f]{16}$/

/** `tenantry tenant backup|backups|restore`: one tenant's backups, and restoring one in place or as a new tenant (issue 13). */
export function registerTenantBackupCommands(tenant: Command, out: Output): void {
  tenant
    .command('backup')
    .description("back up one tenant's database while it keeps serving (SQLite's backup API, pg_dump, or its rows under row isolation)")
    .argument('<slug>', 'the tenant slug (ready or suspended)')
    .option('--json', 'print JSON: the backup { id, tenantId, engine, isolation, dataSource, method, location, bytes, checksum, migrations, createdAt, createdBy }')
    .action(async (slug: string, options: { json?: boolean }, command: Command) => {
      requireSlug(slug)
      const progress = new WorkProgress(out, { unit: 'rows', json: options.json })
      await withTenantry(command, async (tenantry) => {
        const backup = await tenantry.tenants.backup(slug, { actor: cliActor(), onProgress: (p) => progress.update(workUpdate(p)) }).finally(() => progress.stop())
        if (options.json) return out.json(backup)
        out.line(`Tenant ${slug} backed up: ${backup.id} (${backup.method}, ${formatBytes(backup.bytes)}) in ${backup.location}`)
      })
    })

  tenant
    .command('backups')
    .description("list a tenant's backups, newest first")
    .argument('<slug>', 'the tenant slug')
    .option('--json', 'print JSON: an array of backups')
    .action(async (slug: string, options: { json?: boolean }, command: Command) => {
      requireSlug(slug)
      await withTenantry(command, async (tenantry) => {
        const backups = await tenantry.tenants.backups(slug)
        const window = await tenantry.tenants.restorableWindow(slug)
        if (options.json) return out.json(backups)
        // Point-in-time restore (backups.pointInTime): the times `restore --at` accepts.
        if (window) out.line(`Restorable to any time from ${window.from} to ${window.to}${window.ranges.length > 1 ? ` (ranges: ${window.ranges.map((r) => `${r.from} – ${r.to}`).join(', ')})` : ''}: tenantry tenant restore ${slug} --at <time>`)
        if (backups.length === 0) return out.line(`Tenant ${slug} has no backups: take one with tenantry tenant backup ${slug}`)
        for (const b of backups) out.line(`${b.id}  ${b.createdAt}  ${b.method.padEnd(17)} ${formatBytes(b.bytes).padStart(10)}  migrations: ${b.migrations.length}`)
      })
    })

  tenant
    .command('restore')
    .description("restore one of a tenant's backups: in place (atomically; other tenants untouched) or --as a new tenant")
    .argument('<slug>', 'the tenant the backup was taken of')
    .option('--backup <id>', 'the backup id (tenantry tenant backups <slug>)')
    .option('--at <time>', 'point-in-time restore instead (SQLite, backups.pointInTime): the tenant as it was at this ISO time, within the window tenantry tenant backups <slug> shows')
    .option('--as <new-slug>', 'restore into a new tenant with this slug, leaving the original as it is')
    .option('--json', 'print JSON: { tenant, backup, migrated }')
    .action(async (slug: string, options: { backup?: string; at?: string; as?: string; json?: boolean }, command: Command) => {
      requireSlug(slug)
      if (options.as !== undefined) requireSlug(options.as)
      if ((options.backup === undefined) === (options.at === undefined)) throw new UsageError('restore needs either --backup <id> or --at <time>')
      if (options.at !== undefined && Number.isNaN(Date.parse(options.at))) throw new UsageError(`--at ${quoteInput(options.at)} is not a time: give an ISO time such as 2026-01-31T12:00:00Z`)
      if (options.backup !== undefined && !BACKUP_ID.test(options.backup)) throw new UsageError(`--backup ${quoteInput(options.backup)} is not a backup id: list them with tenantry tenant backups ${slug}`)
      const progress = new WorkProgress(out, { unit: 'rows', json: options.json })
      await withTenantry(command, async (tenantry) => {
        const result = await tenantry.tenants
          .restore(slug, { ...(options.at === undefined ? { backup: options.backup! } : { at: options.at }), actor: cliActor(), onProgress: (p) => progress.update(workUpdate(p)), ...(options.as === undefined ? {} : { as: options.as }) })
          .finally(() => progress.stop())
        if (options.json) return out.json(result)
        const migrated = result.migrated.length ? `; migrated up: ${result.migrated.join(', ')}` : ''
        const source = options.at === undefined ? `backup ${options.backup}` : `its state at ${options.at} (kept as backup ${result.backup.id})`
        out.line(
          options.as === undefined
            ? `Tenant ${slug} restored from ${source}${migrated}.`
            : `${options.at === undefined ? `Backup ${options.backup} of ${slug}` : `${slug} as it was at ${options.at}`} restored as new tenant ${options.as} (${result.tenant.id})${migrated}; ${slug} is unchanged.`,
        )
      })
    })
}

/** A backup's or a restore's progress as the CLI's progress line shows it: the step (and table), and its count. */
function workUpdate(p: BackupProgress): WorkUpdate {
  return {
    step: p.table ? `${p.step} ${p.table}` : p.step,
    ...(p.done === undefined ? {} : { done: p.done }),
    ...(p.total === undefined ? {} : { total: p.total }),
    ...(p.unit === undefined ? {} : { unit: p.unit }),
  }
}

function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`
}
