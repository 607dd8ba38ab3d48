import type { Command } from 'commander'
import { sql } from 'kysely'
import type { Tenantry } from 'tenantry'
import { UsageError } from '../errors.js'
import { positiveInteger, requireSlug } from '../input.js'
import { withTenantry } from '../open-tenantry.js'
import type { Output } from '../output.js'
import { Progress } from '../progress.js'

interface SqlOptions {
  all?: boolean
  concurrency?: number
  json?: boolean
}

type Row = Record<string, unknown>

/** One tenant's answer to the statement. */
interface TenantAnswer {
  slug: string
  rows?: Row[]
  numAffectedRows?: bigint
  error?: string
}

/** Runs `statement` on the tenant in context (inside `withTenant`): it reaches that tenant's data and nothing else. */
async function runHere(tenantry: Tenantry, statement: string): Promise<{ rows: Row[]; numAffectedRows?: bigint }> {
  const result = await sql.raw<Row>(statement).execute(tenantry.db())
  // Statements that return no rows (INSERT, UPDATE, DDL) report how many rows they changed.
  return result.rows.length === 0 && result.numAffectedRows !== undefined ? { rows: [], numAffectedRows: result.numAffectedRows } : { rows: result.rows }
}

const plural = (n: number | bigint, word: string) => `${n} ${n === 1 || n === 1n ? word : `${word}s`}`

/**
 * `tenantry sql <slug> "<statement>"`: one statement in the tenant's own database, inside
 * `withTenant`, so it reaches that tenant's data and nothing else. `tenantry sql --all
 * "<statement>"` runs it in every ready tenant, one `withTenant` each, with a progress bar
 * on a terminal, and prints the rows with their tenant; one tenant's failure does not stop
 * the others (the summary lists each, and the command exits 1).
 */
export function registerSqlCommand(program: Command, out: Output): void {
  program
    .command('sql')
    .description("run one SQL statement in a tenant's database (or, with --all, in every ready tenant's) and print its rows")
    .argument('[slug]', 'the tenant slug (not with --all)')
    .argument('[statement]', 'one SQL statement (quote it)')
    .option('--all', 'run it in every ready tenant')
    .option('--concurrency <n>', 'with --all: tenants at once (default 4)', positiveInteger)
    .option('--json', 'print as JSON: { rows, numAffectedRows }, with --all { results: [{ slug, rows | numAffectedRows | error }], succeeded, failed }')
    .action(async (first: string | undefined, second: string | undefined, options: SqlOptions, command: Command) => {
      if (options.all) {
        if (second !== undefined) throw new UsageError('With --all, give the statement only: tenantry sql --all "<statement>"')
        if (first === undefined || first.trim() === '') throw new UsageError('The SQL statement is empty')
        return withTenantry(command, (tenantry) => runEverywhere(tenantry, first, options, out))
      }
      if (options.concurrency !== undefined) throw new UsageError('--concurrency goes with --all')
      if (first === undefined || second === undefined) throw new UsageError('Give a tenant slug and a statement: tenantry sql <slug> "<statement>" (or --all "<statement>")')
      requireSlug(first)
      if (second.trim() === '') throw new UsageError('The SQL statement is empty')
      await withTenantry(command, async (tenantry) => {
        const result = await tenantry.withTenant(first, () => runHere(tenantry, second))
        if (options.json) return out.json(result)
        if (result.numAffectedRows !== undefined) return out.line(`${plural(result.numAffectedRows, 'row')} affected`)
        if (result.rows.length === 0) return out.line('(0 rows)')
        printRows(out, result.rows)
        out.line(`(${plural(result.rows.length, 'row')})`)
      })
    })
}

async function runEverywhere(tenantry: Tenantry, statement: string, options: SqlOptions, out: Output): Promise<void> {
  // The total for the progress bar; forEachTenant reads the tenants themselves a page at a time.
  const total = await tenantry.catalog.countTenants(['ready'])
  const progress = new Progress(out, { unit: 'tenants', total, json: options.json })
  progress.start(total)
  const outcomes = await tenantry.forEachTenant(
    () => runHere(tenantry, statement),
    {
      concurrency: options.concurrency ?? 4,
      onResult: (outcome) => {
        const { slug } = outcome.tenant
        if (outcome.status === 'success') {
          const what = outcome.value.numAffectedRows !== undefined ? `${plural(outcome.value.numAffectedRows, 'row')} affected` : plural(outcome.value.rows.length, 'row')
          progress.done(slug, 'succeeded', `  ${slug}: ${what}`)
        } else {
          const message = outcome.status === 'error' ? outcome.error.message : `skipped: ${outcome.reason}`
          progress.done(slug, 'failed', `  FAILED ${slug}: ${message}`, message)
        }
      },
    },
  )
  // In slug order, whatever order the tenants finished in.
  const results: TenantAnswer[] = outcomes
    .map((o) => (o.status === 'success' ? { slug: o.tenant.slug, ...o.value } : { slug: o.tenant.slug, error: o.status === 'error' ? o.error.message : `skipped: ${o.reason}` }))
    .sort((a, b) => a.slug.localeCompare(b.slug))
  const failed = results.filter((r) => r.error !== undefined).length
  if (options.json) {
    out.json({ results: results.map(({ rows, ...rest }) => (rest.error === undefined && rest.numAffectedRows === undefined ? { ...rest, rows } : rest)), succeeded: results.length - failed, failed })
  } else {
    const rows = results.flatMap((r) => (r.rows ?? []).map((row) => ({ tenant: r.slug, ...row })))
    const affected = results.reduce((sum, r) => sum + (r.numAffectedRows ?? 0n), 0n)
    if (rows.length > 0) printRows(out, rows)
    const ran = results.length - failed
    const returnedRows = results.some((r) => r.error === undefined && r.numAffectedRows === undefined)
    progress.finish(
      returnedRows || ran === 0
        ? `${plural(rows.length, 'row')} from ${plural(ran, 'tenant')}; ${failed} failed.`
        : `${plural(affected, 'row')} affected in ${plural(ran, 'tenant')}; ${failed} failed.`,
    )
  }
  // Exit 1: a script must see that some tenants did not run it.
  if (failed > 0) throw new Error(`The statement failed in ${plural(failed, 'tenant')} of ${results.length}`)
}

function printRows(out: Output, rows: Row[]): void {
  const columns = [...new Set(rows.flatMap((row) => Object.keys(row)))]
  out.table(rows, columns.map((name) => ({ header: name, value: (row: Row) => row[name] })))
}
