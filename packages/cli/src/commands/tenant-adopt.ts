import { existsSync, statSync } from 'node:fs'
import { resolve } from 'node:path'
import { Option, type Command } from 'commander'
import { externalIdProblem, type AdoptSource, type Isolation } from 'tenantry'
import { UsageError } from '../errors.js'
import { cliActor, ISOLATIONS, requireDataSourceId, requireSlug } from '../input.js'
import { withTenantry } from '../open-tenantry.js'
import { quoteInput, type Output } from '../output.js'
import { Progress } from '../progress.js'

/** An external id from the command line, checked before anything is opened. */
export function requireExternalId(value: string): string {
  const problem = externalIdProblem(value)
  if (problem) throw new UsageError(`Invalid external id ${quoteInput(value)}: ${problem}`)
  return value
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/

function requireFile(option: string, path: string): string {
  const file = resolve(path)
  if (!existsSync(file)) throw new UsageError(`${option} ${quoteInput(path)} does not exist`)
  if (!statSync(file).isFile()) throw new UsageError(`${option} ${quoteInput(path)} is not a file`)
  return file
}

interface AdoptOptions {
  sqlite?: string
  postgresUrlEnv?: string
  schema?: string
  dataSource?: string
  name?: string
  externalId?: string
  applied?: string
  json?: boolean
}

interface SplitOptions {
  sqlite: string
  by: string
  slugPrefix?: string
  dataSource?: string
  isolation?: Isolation
  copyUnkeyed?: boolean
  json?: boolean
}

/** `tenantry tenant adopt|split`: databases made outside Tenantry brought in as tenants (issue 13). */
export function registerTenantAdoptCommands(program: Command, out: Output): void {
  const tenant = program.commands.find((c) => c.name() === 'tenant')
  if (!tenant) throw new Error('register the tenant commands first')

  tenant
    .command('adopt')
    .description(
      'register an existing database as a tenant: a SQLite file (copied in; the file is only read), a schema of a Postgres data source (moved in place) or a whole Postgres database on a data source\'s server (copied in as a database tenant); its tables must match a prefix of the tenant migrations, which are recorded as applied',
    )
    .argument('<slug>', 'the new tenant slug (must be free)')
    .option('--sqlite <file>', 'a SQLite database file to copy in')
    .option('--postgres-url-env <variable>', 'read the Postgres URL from this environment variable (never from the command line); with --schema its database must be a data source Tenantry knows, without it the whole database is adopted and its server must be one')
    .option('--schema <name>', 'with --postgres-url-env: the schema to adopt, e.g. tenant_acme (without it: the whole database)')
    .option('--data-source <id>', 'SQLite: the data source to copy the file into (default: from the config); Postgres: the data source the URL names')
    .option('--name <name>', 'display name (default: the slug)')
    .option('--external-id <id>', "the tenant's id in another system")
    .option('--applied <migration>', 'the last tenant migration the database holds, where its tables cannot tell')
    .option('--json', 'print JSON: { tenant, applied, recorded }')
    .action(async (slug: string, options: AdoptOptions, command: Command) => {
      requireSlug(slug)
      if (options.dataSource !== undefined) requireDataSourceId(options.dataSource)
      if (options.externalId !== undefined) requireExternalId(options.externalId)
      if ((options.sqlite === undefined) === (options.postgresUrlEnv === undefined)) throw new UsageError('Name one database to adopt: --sqlite <file>, or --postgres-url-env <variable> [--schema <name>]')
      let source: AdoptSource
      if (options.sqlite !== undefined) {
        if (options.schema !== undefined) throw new UsageError('--schema goes with --postgres-url-env, not --sqlite')
        source = { sqlite: requireFile('--sqlite', options.sqlite) }
      } else {
        const variable = options.postgresUrlEnv!
        if (!ENV_NAME.test(variable)) throw new UsageError(`--postgres-url-env takes the name of an environment variable, not ${quoteInput(variable.slice(0, 40))}`)
        const url = process.env[variable]
        if (!url) throw new UsageError(`${variable} is not set`)
        source = { postgresUrl: url, ...(options.schema === undefined ? {} : { schema: options.schema }) }
      }
      await withTenantry(command, async (tenantry) => {
        const result = await tenantry.tenants.adopt(slug, source, {
          actor: cliActor(),
          ...(options.dataSource ? { dataSource: options.dataSource } : {}),
          ...(options.name ? { name: options.name } : {}),
          ...(options.externalId ? { externalId: options.externalId } : {}),
          ...(options.applied ? { applied: options.applied } : {}),
        })
        if (options.json) return out.json(result)
        const { isolation, dataSourceId } = result.tenant.placement
        out.line(`Adopted tenant ${slug} (${result.tenant.id}): ${isolation} isolation on data source ${dataSourceId}.`)
        out.line(`Migrations recorded as applied (${result.recorded ? 'from its migration table' : 'from its tables'}): ${result.applied.join(', ') || 'none'}.`)
        if ('sqlite' in source) out.note(`${source.sqlite} was copied and left as it was: remove it once the tenant serves.`)
      })
    })

  tenant
    .command('split')
    .description('turn one shared SQLite database into a tenant per distinct value of a column (e.g. user_id), each with its rows and the value as its external id; idempotent, all-or-nothing per tenant')
    .requiredOption('--sqlite <file>', 'the shared SQLite database (only read)')
    .requiredOption('--by <column>', 'the column whose values become tenants')
    .option('--slug-prefix <prefix>', "put before each value to make its slug (values that are not slug-safe get a hash)")
    .option('--data-source <id>', 'for every tenant (default: from the config)')
    .addOption(new Option('--isolation <isolation>', 'for every tenant (default: from the config)').choices(ISOLATIONS))
    .option('--copy-unkeyed', 'copy tables without the column whole into every tenant (otherwise they are refused)')
    .option('--json', 'print { results: [{ value, slug, outcome, id?, rows?, error? }], succeeded, skipped, failed, unassigned }')
    .action(async (options: SplitOptions, command: Command) => {
      if (options.dataSource !== undefined) requireDataSourceId(options.dataSource)
      if (options.slugPrefix !== undefined && !/^[a-z][a-z0-9_]{0,39}$/.test(options.slugPrefix)) {
        throw new UsageError(`Invalid --slug-prefix ${quoteInput(options.slugPrefix)}: up to 40 of a-z, 0-9 and _, starting with a letter`)
      }
      const file = requireFile('--sqlite', options.sqlite)
      await withTenantry(command, async (tenantry) => {
        const progress = new Progress(out, { unit: 'tenants', json: options.json })
        const result = await tenantry.tenants.split({
          sqlite: file,
          by: options.by,
          actor: cliActor(),
          ...(options.slugPrefix ? { slugPrefix: options.slugPrefix } : {}),
          ...(options.dataSource ? { dataSource: options.dataSource } : {}),
          ...(options.isolation ? { isolation: options.isolation } : {}),
          ...(options.copyUnkeyed ? { copyUnkeyed: true } : {}),
          onPlan: (total) => progress.start(total),
          onTenant: (r) => {
            const rows = r.rows ? Object.values(r.rows).reduce((a, b) => a + b, 0) : 0
            if (r.outcome === 'succeeded') progress.done(r.slug, 'succeeded', `  created  ${r.slug} (${r.id}): ${rows} rows`)
            else if (r.outcome === 'skipped') progress.done(r.slug, 'skipped', `  skipped  ${r.slug}: already split`)
            else progress.done(r.slug, 'failed', `  FAILED   ${r.slug}: ${r.error}`, r.error)
          },
        })
        progress.finish(
          `Split into ${result.succeeded} new tenants; ${result.skipped} were split already; ${result.failed} failed.${result.unassigned ? ` ${result.unassigned} rows with no ${options.by} were not copied.` : ''}`,
        )
        if (options.json) out.json(result)
        if (result.failed > 0) throw new Error(`${result.failed} of ${result.results.length} tenants were not split; running the command again retries them`)
      })
    })
}
