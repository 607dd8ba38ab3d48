import { InvalidArgumentError, type Command } from 'commander'
import { checkOrganizationsHalfMade, repairAllHalfMade } from '@tenantry/server'
import { DEFAULT_REPAIR_GRACE_MS, runDoctor, type DoctorCheck, type RepairAction } from 'tenantry'
import { EXIT, ExitError } from '../errors.js'
import { cliActor } from '../input.js'
import { withTenantry } from '../open-tenantry.js'
import type { Output } from '../output.js'

/**
 * `tenantry doctor`: checks that every data source holds what the catalog says, that the
 * isolation guarantees hold in the databases themselves, and that no lifecycle operation was
 * cut short (a tenant stuck in provisioning or deleting, an organization with no tenant, a
 * staging file). `--fix` first repairs the last kind, as a server start does. Exits 1 when any
 * check fails, so a deploy pipeline can stop on it.
 */
export function registerDoctorCommand(program: Command, out: Output): void {
  program
    .command('doctor')
    .description('check the data sources (app role privileges, tenant storage, stray files) and interrupted operations')
    .option('--fix', 'first repair what crashed operations left half-made: roll back creates, finish deletes, remove orphan organizations and staging files')
    .option(
      '--grace <seconds>',
      `only operations untouched this long count as interrupted (default ${DEFAULT_REPAIR_GRACE_MS / 1000}; a live create's lock always protects it)`,
      nonNegativeSeconds,
    )
    .option('--json', 'print as JSON: { ok, repaired: [{ target, action }], checks: [{ name, status, detail }] }')
    .action(async (options: { json?: boolean; fix?: boolean; grace?: number }, command: Command) => {
      const half = { ...(options.grace === undefined ? {} : { graceMs: options.grace * 1000 }), actor: cliActor() }
      const { repaired, checks } = await withTenantry(command, async (tenantry) => {
        const repaired: RepairAction[] = options.fix ? await repairAllHalfMade(tenantry, half) : []
        const checks = [...(await runDoctor(tenantry, half)), ...(await checkOrganizationsHalfMade(tenantry, half))]
        return { repaired, checks }
      })
      const failed = checks.filter((check) => check.status === 'fail')
      if (options.json) out.json({ ok: failed.length === 0, repaired, checks })
      else {
        for (const action of repaired) out.line(`repaired ${action.target}: ${action.action}`)
        if (options.fix && repaired.length === 0) out.line('Nothing to repair.')
        if (options.fix) out.line()
        printChecks(out, checks)
      }
      if (failed.length) {
        // The findings are printed already; say once why the exit code is 1.
        if (!options.json) out.note(`tenantry: ${failed.length} ${failed.length === 1 ? 'check' : 'checks'} failed`)
        throw new ExitError(EXIT.FAILURE)
      }
    })
}

function nonNegativeSeconds(value: string): number {
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(Number(value))) throw new InvalidArgumentError('expected a whole number of seconds')
  return Number(value)
}

function printChecks(out: Output, checks: readonly DoctorCheck[]): void {
  if (checks.length === 0) return out.line('No data sources to check.')
  out.table(checks, [
    { header: 'STATUS', value: (c) => c.status.toUpperCase() },
    { header: 'CHECK', value: (c) => c.name },
    { header: 'DETAIL', value: (c) => c.detail },
  ])
  const count = (status: DoctorCheck['status']) => checks.filter((c) => c.status === status).length
  out.line()
  out.line(`${count('ok')} ok, ${count('warn')} warnings, ${count('fail')} failed`)
}
