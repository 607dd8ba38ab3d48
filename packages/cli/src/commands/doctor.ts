import type { Command } from 'commander'
import { runDoctor, type DoctorCheck } from 'tenantry'
import { EXIT, ExitError } from '../errors.js'
import { withTenantry } from '../open-tenantry.js'
import type { Output } from '../output.js'

/**
 * `tenantry doctor`: checks that every data source holds what the catalog says and that the
 * isolation guarantees hold in the databases themselves. Exits 1 when any check fails, so a
 * deploy pipeline can stop on it.
 */
export function registerDoctorCommand(program: Command, out: Output): void {
  program
    .command('doctor')
    .description('check the data sources: app role privileges, tenant storage, stray files')
    .option('--json', 'print as JSON: { ok, checks: [{ name, status, detail }] }')
    .action(async (options: { json?: boolean }, command: Command) => {
      const checks = await withTenantry(command, (tenantry) => runDoctor(tenantry))
      const failed = checks.filter((check) => check.status === 'fail')
      if (options.json) out.json({ ok: failed.length === 0, checks })
      else printChecks(out, checks)
      if (failed.length) {
        // The findings are printed already; say once why the exit code is 1.
        if (!options.json) out.note(`tenantry: ${failed.length} ${failed.length === 1 ? 'check' : 'checks'} failed`)
        throw new ExitError(EXIT.FAILURE)
      }
    })
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
