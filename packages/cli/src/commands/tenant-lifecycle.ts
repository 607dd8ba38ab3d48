import { existsSync, statSync } from 'node:fs'
import { resolve } from 'node:path'
import { Option, type Command } from 'commander'
import type { Isolation } from 'tenantry'
import { UsageError } from '../errors.js'
import { cliActor, ISOLATIONS, requireDataSourceId, requireSlug } from '../input.js'
import { withTenantry } from '../open-tenantry.js'
import { quoteInput, type Output } from '../output.js'
import { WorkProgress } from '../progress.js'

/** `tenantry tenant export|import|erase`: one tenant out to a file, in from one, or erased (issue 13). */
export function registerTenantLifecycleCommands(tenant: Command, out: Output): void {
  tenant
    .command('export')
    .description('write a tenant to a portable file (gzip\'d NDJSON: its tables, migrations, files, state and secret names, never secret values)')
    .argument('<slug>', 'the tenant slug (ready or suspended)')
    .requiredOption('--out <file>', 'the file to write; it must not exist')
    .option('--json', 'print JSON: { tenantId, slug, out, rows, files, fileBytes, secretNames }')
    .action(async (slug: string, options: { out: string; json?: boolean }, command: Command) => {
      requireSlug(slug)
      const file = resolve(options.out)
      if (existsSync(file)) throw new UsageError(`--out ${quoteInput(options.out)} exists: an export never replaces a file`)
      await withTenantry(command, async (tenantry) => {
        const progress = new WorkProgress(out, { unit: 'rows', json: options.json })
        const result = await tenantry.tenants
          .export(slug, { out: file, actor: cliActor(), onProgress: (p) => progress.update({ step: `export ${p.table}`, done: p.rows }) })
          .finally(() => progress.stop())
        if (options.json) return out.json(result)
        const rows = Object.values(result.rows).reduce((a, b) => a + b, 0)
        out.line(`Tenant ${slug} exported to ${file}: ${rows} rows in ${Object.keys(result.rows).length} tables, ${result.files} files (${result.fileBytes} bytes).`)
        if (result.secretNames.length) out.note(`Secret names only (values never leave the catalog): ${result.secretNames.join(', ')}`)
      })
    })

  tenant
    .command('import')
    .description('create a new tenant from an export file, on any data source and isolation; a failed import keeps nothing')
    .argument('<slug>', 'the new tenant slug (must be free)')
    .requiredOption('--from <file>', 'an export file (tenantry tenant export)')
    .option('--data-source <id>', 'the data source to place it on (default: from the config)')
    .addOption(new Option('--isolation <isolation>', 'how its rows are kept apart (default: from the config)').choices(ISOLATIONS))
    .option('--name <name>', "display name (default: the exported tenant's)")
    .option('--json', 'print JSON: { tenant, rows, files, fileBytes, secretNames }')
    .action(async (slug: string, options: { from: string; dataSource?: string; isolation?: Isolation; name?: string; json?: boolean }, command: Command) => {
      requireSlug(slug)
      if (options.dataSource !== undefined) requireDataSourceId(options.dataSource)
      const file = resolve(options.from)
      if (!existsSync(file)) throw new UsageError(`--from ${quoteInput(options.from)} does not exist`)
      if (!statSync(file).isFile()) throw new UsageError(`--from ${quoteInput(options.from)} is not a file`)
      await withTenantry(command, async (tenantry) => {
        const progress = new WorkProgress(out, { unit: 'rows', json: options.json })
        const result = await tenantry.tenants
          .import(slug, {
            from: file,
            actor: cliActor(),
            onProgress: (p) => progress.update({ step: `import ${p.table}`, done: p.rows }),
            ...(options.dataSource ? { dataSource: options.dataSource } : {}),
            ...(options.isolation ? { isolation: options.isolation } : {}),
            ...(options.name ? { name: options.name } : {}),
          })
          .finally(() => progress.stop())
        if (options.json) return out.json(result)
        const rows = Object.values(result.rows).reduce((a, b) => a + b, 0)
        out.line(
          `Tenant ${slug} imported (${result.tenant.placement.isolation} isolation on ${result.tenant.placement.dataSourceId}): ${rows} rows, ${result.files} files.`,
        )
        if (result.secretNames.length) out.note(`Set its secrets again (values are not exported): ${result.secretNames.join(', ')}`)
      })
    })

  tenant
    .command('erase')
    .description('erase a tenant for good (GDPR): data, files, cache, jobs, tokens, state, secrets, memberships and audit details; one audit entry without personal data remains')
    .argument('<slug>', 'the tenant slug (or the old slug of a purged tenant)')
    .option('--yes', 'confirm: erasing cannot be undone')
    .option('--json', 'print JSON: { tenantId, removed }')
    .action(async (slug: string, options: { yes?: boolean; json?: boolean }, command: Command) => {
      requireSlug(slug)
      if (!options.yes) throw new UsageError(`Erasing tenant ${slug} cannot be undone: pass --yes to confirm`)
      await withTenantry(command, async (tenantry) => {
        const result = await tenantry.tenants.erase(slug, { actor: cliActor() })
        if (options.json) return out.json(result)
        out.line(`Tenant ${slug} erased (${result.tenantId}): only a tenant.erased audit entry remains.`)
      })
    })
}
