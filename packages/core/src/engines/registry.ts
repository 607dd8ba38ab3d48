import { z } from 'zod'
import type { DataSourceRecord } from '../catalog/catalog.js'
import { TenantryError } from '../errors.js'
import { assertValidIdentifier } from '../identifiers.js'
import type { SecretBox } from '../secrets/secret-box.js'
import type { DatabaseEngine } from './engine.js'
import type { AnyDataSourceConfig, DataSourceInput, DataSourceRecordParts, DataSourceResolveContext, EngineDefinition, EngineFactoryContext } from './engine-definition.js'
import { POSTGRES_ENGINE, type PostgresDataSourceConfig } from './postgres/postgres-definition.js'
import { SQLITE_ENGINE, type SqliteDataSourceConfig, type SqliteDataSourceInput } from './sqlite/sqlite-definition.js'

/**
 * The data source config of each engine, by engine name. An engine added with
 * `registerEngine` adds its config here by declaration merging, so that config files are
 * typed for it:
 *
 * @example
 * declare module 'tenantry' {
 *   interface DataSourceConfigs {
 *     memory: DataSourceBase & { engine: 'memory'; seed?: string }
 *   }
 * }
 */
export interface DataSourceConfigs {
  sqlite: SqliteDataSourceConfig
  postgres: PostgresDataSourceConfig
}

/** A data source, as the config declares it once resolved, and as `tenantry data-source add` takes it. */
export type DataSourceConfig = DataSourceConfigs[keyof DataSourceConfigs]

/** A data source as a config file may declare it, before defaults that depend on where the file lives. */
export type DataSourceConfigInput = Exclude<DataSourceConfig, SqliteDataSourceConfig> | SqliteDataSourceInput

const definitions = new Map<string, EngineDefinition>()

/** The fields of every data source; each engine's schema adds its own, and together they refuse anything else. */
const DATA_SOURCE_BASE = z.object({
  id: z.string(),
  engine: z.string(),
  mode: z.enum(['shared', 'dedicated', 'byod']).optional(),
  capacity: z.number().int().positive().optional(),
  region: z.string().optional(),
})

/**
 * Adds an engine: data sources whose `engine` is `definition.name` are then configured,
 * recorded and opened through it, by the config, `tenantry data-source add` and every
 * Tenantry instance in this process. Returns a function that removes it again (for tests).
 * A name can be registered once; the built-ins (`sqlite`, `postgres`) cannot be replaced.
 */
export function registerEngine<Config extends AnyDataSourceConfig>(definition: EngineDefinition<Config>): () => void {
  assertValidIdentifier('engine name', definition.name)
  if (definitions.has(definition.name)) {
    throw new TenantryError('INVALID_CONFIG', `An engine named "${definition.name}" is registered already`)
  }
  definitions.set(definition.name, definition as unknown as EngineDefinition)
  return () => {
    if (definitions.get(definition.name) === (definition as unknown as EngineDefinition)) definitions.delete(definition.name)
  }
}

/** The names of the registered engines, built-ins first. */
export function registeredEngines(): string[] {
  return [...definitions.keys()]
}

/** The definition of engine `name`. Throws `INVALID_CONFIG` when no such engine is registered. */
export function engineDefinition(name: unknown, dataSourceId?: string): EngineDefinition {
  const definition = typeof name === 'string' ? definitions.get(name) : undefined
  if (!definition) {
    const known = registeredEngines().join(', ')
    throw new TenantryError('INVALID_CONFIG', `${dataSourceId ? `Data source ${dataSourceId}: unknown` : 'Unknown'} engine ${String(name)} (registered: ${known})`)
  }
  return definition
}

/**
 * Checks a data source config against its engine's schema, after applying the engine's
 * defaults when `context` says where the config lives. Throws `INVALID_IDENTIFIER` for a
 * bad id and `INVALID_CONFIG` naming the first field that is wrong or unknown.
 */
export function parseDataSourceConfig(input: unknown, context?: DataSourceResolveContext): DataSourceConfig {
  if (!input || typeof input !== 'object') throw new TenantryError('INVALID_CONFIG', 'A data source must be an object')
  const { id, engine } = input as { id?: unknown; engine?: unknown }
  // Every path in (config, `add`, a pre-resolved config) passes here: the id names files, roles and databases.
  assertValidIdentifier('data source id', id)
  const definition = engineDefinition(engine, id)
  const resolved = context && definition.resolveConfig ? definition.resolveConfig(input as DataSourceInput, context) : input
  const result = DATA_SOURCE_BASE.extend(definition.configSchema.shape).strict().safeParse(resolved)
  if (!result.success) {
    const issue = result.error.issues[0]!
    const field = issue.code === 'unrecognized_keys' ? issue.keys.join(', ') : issue.path.join('.')
    throw new TenantryError('INVALID_CONFIG', `Data source ${id}: ${field ? `${field}: ` : ''}${issue.message}`, {
      details: { dataSource: id, field },
    })
  }
  return result.data as unknown as DataSourceConfig
}

/** What the catalog records of a data source: non-secret facts in `config`, credentials sealed in `secret`. */
export function toDataSourceRecord(source: DataSourceConfig | DataSourceInput, box: SecretBox): Omit<DataSourceRecord, 'createdAt'> {
  const config = parseDataSourceConfig(source)
  const parts: DataSourceRecordParts = engineDefinition(config.engine).toRecord(config, { box })
  return { id: config.id, engine: config.engine, mode: config.mode ?? 'shared', capacity: config.capacity ?? null, region: config.region ?? null, ...parts }
}

/** Builds the engine for a data source recorded in the catalog. */
export function createEngine(record: DataSourceRecord, context: EngineFactoryContext): DatabaseEngine {
  return engineDefinition(record.engine, record.id).createEngine(record, context)
}

/** Where a recorded data source is, without credentials: `sqlite /srv/tenants`, `postgres app@db:5432/main`. */
export function describeDataSource(record: Pick<DataSourceRecord, 'engine' | 'config'>): string {
  const definition = definitions.get(record.engine)
  return definition ? `${record.engine} ${definition.describe(record.config)}` : record.engine
}

/** How people call engine `name` (`PostgreSQL`), or the name itself for an unknown one. */
export function engineLabel(name: string): string {
  return definitions.get(name)?.label ?? name
}

registerEngine(SQLITE_ENGINE)
registerEngine(POSTGRES_ENGINE)
