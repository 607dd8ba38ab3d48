import { Option, type Command } from 'commander'
import { engineDefinition, type DataSourceConfig, type DataSourceMode, type DataSourceRecord, type Isolation } from 'tenantry'
import { UsageError } from '../errors.js'
import { positiveInteger, requireDataSourceId } from '../input.js'
import { withTenantry } from '../open-tenantry.js'
import type { Column, Output } from '../output.js'

const MODES: readonly DataSourceMode[] = ['shared', 'dedicated', 'byod']

interface AddOptions {
  engine: 'sqlite' | 'postgres'
  url?: string
  urlEnv?: string
  directory?: string
  mode?: DataSourceMode
  isolation?: string
  capacity?: number
  region?: string
  json?: boolean
}

type Listed = DataSourceRecord & { tenants: number }

/** Where a data source is, as its engine describes it, without credentials: they live sealed in the catalog and are never printed. */
function location(source: DataSourceRecord): string {
  return engineDefinition(source.engine, source.id).describe(source.config)
}

const COLUMNS: ReadonlyArray<Column<Listed>> = [
  { header: 'ID', value: (s) => s.id },
  { header: 'ENGINE', value: (s) => s.engine },
  { header: 'MODE', value: (s) => s.mode },
  { header: 'LOCATION', value: location },
  { header: 'TENANTS', value: (s) => (s.capacity ? `${s.tenants}/${s.capacity}` : s.tenants) },
  { header: 'REGION', value: (s) => s.region ?? '' },
]

/** JSON without the sealed secret: scripts get facts, never credentials. */
function publicView({ secret: _secret, ...source }: Listed | DataSourceRecord) {
  return { ...source, hasCredentials: _secret !== null }
}

/** `tenantry data-source …` (alias `datasource`, the old spelling): add, list, test. */
export function registerDataSourceCommands(program: Command, out: Output): void {
  const dataSource = program
    .command('data-source')
    .alias('datasource')
    .description('add, list and test data sources: the places that hold tenants’ data')

  dataSource
    .command('add')
    .description('add a data source (a customer’s own Postgres: --mode byod); it is tested before it is recorded')
    .argument('<id>', 'the data source id: 1-63 of a-z, 0-9 and _, starting with a letter')
    .addOption(new Option('--engine <engine>', 'the database software').choices(['sqlite', 'postgres']).makeOptionMandatory())
    .option('--url <url>', 'postgres: the admin connection URL (prefer --url-env: a URL here stays in shell history)')
    .option('--url-env <variable>', 'postgres: read the admin connection URL from this environment variable')
    .option('--directory <path>', 'sqlite: the directory for tenant files')
    .addOption(new Option('--mode <mode>', 'shared takes new tenants by policy; dedicated and byod only when named').choices(MODES))
    .option('--isolation <list>', 'postgres: isolations offered, comma-separated (default: schema,database,row)')
    .option('--capacity <n>', 'tenants it should hold at most', positiveInteger)
    .option('--region <region>', 'where it is, for placement and compliance')
    .option('--json', 'print the data source as JSON')
    .action(async (id: string, options: AddOptions, command: Command) => {
      requireDataSourceId(id)
      const source = toConfig(id, options)
      await withTenantry(command, async (tenantry) => {
        const added = await tenantry.dataSources.add(source)
        if (options.json) return out.json(publicView(added))
        out.line(`Added data source ${added.id} (${added.engine}, ${added.mode}) at ${location(added)}.`)
      })
    })

  dataSource
    .command('list')
    .description('list data sources with the tenants placed on each')
    .option('--json', 'print JSON')
    .action(async (options: { json?: boolean }, command: Command) => {
      await withTenantry(command, async (tenantry) => {
        const [sources, counts] = await Promise.all([tenantry.catalog.listDataSources(), tenantry.catalog.placementCounts()])
        const rows = sources.map((s) => ({ ...s, tenants: counts.get(s.id) ?? 0 }))
        if (options.json) return out.json(rows.map(publicView))
        out.table(rows, COLUMNS)
      })
    })

  dataSource
    .command('test')
    .description('connect to a data source and report what answered')
    .argument('<id>', 'the data source id')
    .option('--json', 'print JSON')
    .action(async (id: string, options: { json?: boolean }, command: Command) => {
      requireDataSourceId(id)
      await withTenantry(command, async (tenantry) => {
        const result = await tenantry.dataSources.test(id)
        if (options.json) return out.json({ ok: true, ...result })
        out.line(`Data source ${id} answered in ${result.latencyMs} ms: ${result.detail}.`)
      })
    })
}

function toConfig(id: string, options: AddOptions): DataSourceConfig {
  const common = {
    id,
    ...(options.mode ? { mode: options.mode } : {}),
    ...(options.capacity ? { capacity: options.capacity } : {}),
    ...(options.region ? { region: options.region } : {}),
  }
  if (options.engine === 'sqlite') {
    if (!options.directory) throw new UsageError('A sqlite data source needs --directory')
    return { ...common, engine: 'sqlite', directory: options.directory }
  }
  const url = options.urlEnv ? process.env[options.urlEnv] : options.url
  if (!url) throw new UsageError(options.urlEnv ? `${options.urlEnv} is not set` : 'A postgres data source needs --url or --url-env')
  const isolations = options.isolation?.split(',').map((s) => s.trim()) as Isolation[] | undefined
  if (isolations?.some((i) => !['schema', 'database', 'row'].includes(i))) {
    throw new UsageError('--isolation takes schema, database and/or row, comma-separated')
  }
  return { ...common, engine: 'postgres', url, ...(isolations ? { isolations } : {}) }
}
