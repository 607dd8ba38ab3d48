import type { Command } from 'commander'
import { sql } from 'kysely'
import { UsageError } from '../errors.js'
import { requireSlug } from '../input.js'
import { withTenantry } from '../open-tenantry.js'
import type { Output } from '../output.js'

/**
 * `tenantry sql <slug> "<statement>"`: one statement in the tenant's own database, inside
 * `withTenant`, so it reaches that tenant's data and nothing else.
 */
export function registerSqlCommand(program: Command, out: Output): void {
  program
    .command('sql')
    .description("run one SQL statement in a tenant's database and print its rows")
    .argument('<slug>', 'the tenant slug')
    .argument('<statement>', 'one SQL statement (quote it)')
    .option('--json', 'print as JSON: { rows, numAffectedRows }')
    .action(async (slug: string, statement: string, options: { json?: boolean }, command: Command) => {
      requireSlug(slug)
      if (statement.trim() === '') throw new UsageError('The SQL statement is empty')
      await withTenantry(command, async (tenantry) => {
        const result = await tenantry.withTenant(slug, () =>
          sql.raw<Record<string, unknown>>(statement).execute(tenantry.db()),
        )
        // Statements that return no rows (INSERT, UPDATE, DDL) report how many rows they changed.
        const numAffectedRows = result.rows.length === 0 ? result.numAffectedRows : undefined
        if (options.json) {
          return out.json({ rows: result.rows, ...(numAffectedRows !== undefined ? { numAffectedRows } : {}) })
        }
        if (numAffectedRows !== undefined) return out.line(`${numAffectedRows} ${numAffectedRows === 1n ? 'row' : 'rows'} affected`)
        if (result.rows.length === 0) return out.line('(0 rows)')
        const columns = [...new Set(result.rows.flatMap((row) => Object.keys(row)))]
        out.table(result.rows, columns.map((name) => ({ header: name, value: (row) => row[name] })))
        out.line(`(${result.rows.length} ${result.rows.length === 1 ? 'row' : 'rows'})`)
      })
    })
}
