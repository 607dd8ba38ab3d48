import { Option, type Command } from 'commander'
import type { Isolation, MoveProgress } from 'tenantry'
import { UsageError } from '../errors.js'
import { cliActor, ISOLATIONS, requireDataSourceId, requireSlug } from '../input.js'
import { withTenantry } from '../open-tenantry.js'
import type { Output } from '../output.js'
import { WorkProgress } from '../progress.js'

/** `tenantry tenant move|maintenance`: a live move to another placement, and maintenance mode (issue 13). */
export function registerTenantMoveCommands(tenant: Command, out: Output): void {
  tenant
    .command('move')
    .description('move a tenant live to another data source or isolation: reads served throughout, writes paused for about a second at most')
    .argument('<slug>', 'the tenant slug (ready; or moving, to finish a move cut short)')
    .requiredOption('--data-source <id>', 'the data source to move it to')
    .addOption(new Option('--isolation <isolation>', "how its rows are kept apart there (default: its own, where the data source offers it)").choices(ISOLATIONS))
    .option('--json', 'print JSON: { tenantId, slug, from, to, rows, pauseMs, totalMs, verified, oldCopyRemoved, resumed }')
    .action(async (slug: string, options: { dataSource: string; isolation?: Isolation; json?: boolean }, command: Command) => {
      requireSlug(slug)
      requireDataSourceId(options.dataSource)
      // The step, and the rows copied (copy) or the changes applied (catch-up) in it.
      const progress = new WorkProgress(out, { unit: 'rows', json: options.json })
      const onProgress = (p: MoveProgress) => progress.update({ step: p.table ? `${p.step} ${p.table}` : p.step, ...(p.done === undefined ? {} : { done: p.done }), ...(p.total === undefined ? {} : { total: p.total }) })
      await withTenantry(command, async (tenantry) => {
        const result = await tenantry.tenants
          .move(slug, {
            dataSource: options.dataSource,
            actor: cliActor(),
            ...(options.isolation ? { isolation: options.isolation } : {}),
            onProgress,
          })
          .finally(() => progress.stop())
        if (options.json) return out.json(result)
        const rows = Object.values(result.rows).reduce((a, b) => a + b, 0)
        out.line(
          `Tenant ${slug} moved to ${result.to.isolation} isolation on ${result.to.dataSourceId} (from ${result.from.isolation} on ${result.from.dataSourceId}): ${rows} rows, writes paused ${result.pauseMs} ms, ${result.totalMs} ms in all.`,
        )
        if (!result.verified) {
          out.note(`The copies did not match at the flip: the old copy was kept (${result.from.dataSourceId}, ${result.from.isolation}); see the audit log (tenant.move.verify_failed).`)
          process.exitCode = 1
        }
      })
    })

  tenant
    .command('maintenance')
    .description('maintenance mode: --read-only serves reads and refuses writes (503 TENANT_MAINTENANCE with the message); --off ends it')
    .argument('<slug>', 'the tenant slug')
    .option('--read-only', 'refuse writes, serve reads')
    .option('--off', 'end maintenance')
    .option('--message <text>', 'what refused writes say (with --read-only)')
    .option('--json', 'print JSON: the tenant')
    .action(async (slug: string, options: { readOnly?: boolean; off?: boolean; message?: string; json?: boolean }, command: Command) => {
      requireSlug(slug)
      if (Boolean(options.readOnly) === Boolean(options.off)) throw new UsageError('Pass exactly one of --read-only and --off')
      if (options.off && options.message !== undefined) throw new UsageError('--message goes with --read-only, not with --off')
      if (options.message !== undefined && options.message.trim() === '') throw new UsageError('--message must not be empty')
      await withTenantry(command, async (tenantry) => {
        const record = await tenantry.tenants.maintenance(slug, {
          readOnly: Boolean(options.readOnly),
          actor: cliActor(),
          ...(options.message !== undefined ? { message: options.message } : {}),
        })
        if (options.json) return out.json(record)
        if (record.maintenance) out.line(`Tenant ${slug} is in maintenance: reads served, writes refused with "${record.maintenance}".`)
        else out.line(`Tenant ${slug} is out of maintenance: writes accepted again.`)
        out.note('Other processes follow within their placement cache time (router.placementTtlMs, 30 s by default).')
      })
    })
}
