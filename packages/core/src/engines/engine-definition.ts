import type { z } from 'zod'
import type { DataSourceRecord } from '../catalog/catalog.js'
import type { DataSourceMode } from '../catalog/catalog-schema.js'
import type { Logger } from '../logger.js'
import type { SecretBox } from '../secrets/secret-box.js'
import type { DatabaseEngine, EngineName } from './engine.js'

/** The fields every data source has, whatever its engine. */
export interface DataSourceBase {
  /** `^[a-z][a-z0-9_]{0,62}$`. Engines may allow fewer characters where the id names database objects. */
  id: string
  /** `shared` sources take new tenants by placement policy; `dedicated` and `byod` only when named. @default 'shared' */
  mode?: DataSourceMode
  /** Tenants this data source should hold at most; placement skips it when full. */
  capacity?: number
  region?: string
}

/** A data source config of some engine, before its engine's schema has checked it. */
export type DataSourceInput = DataSourceBase & { engine: EngineName; [field: string]: unknown }

/** A data source config of some engine, checked by its engine's schema. */
export type AnyDataSourceConfig = DataSourceBase & { engine: EngineName }

/** Where a config file lives, for engines whose settings are paths. */
export interface DataSourceResolveContext {
  /** Tenantry's home directory (absolute). */
  home: string
  /** Makes a path from the config absolute, relative to the config file's directory. */
  resolvePath(path: string): string
}

/** What the catalog records of a data source besides its id, mode, capacity and region. */
export interface DataSourceRecordParts {
  /** Non-secret facts, shown in listings: never a password. */
  config: Record<string, unknown>
  /** Credentials sealed with the secret box, or `null`. */
  secret: string | null
}

/** What an engine's factory gets besides the data source record. */
export interface EngineFactoryContext {
  /** Opens what `toRecord` sealed, and derives stable per-purpose secrets (generated roles' passwords). */
  box: SecretBox
  /** Where the engine logs errors it handles without throwing, with the tenant id where there is one. */
  logger: Logger
}

/**
 * An engine as the registry knows it: its name, how its data sources are configured and
 * recorded, and how to build the engine for one. `registerEngine(definition)` adds one.
 *
 * @example
 * registerEngine({
 *   name: 'memory',
 *   label: 'in-memory SQLite',
 *   configSchema: z.object({}),
 *   toRecord: () => ({ config: {}, secret: null }),
 *   createEngine: (record, { logger }) => new MemoryEngine({ id: record.id, logger }),
 *   describe: () => 'in memory',
 * })
 */
export interface EngineDefinition<Config extends AnyDataSourceConfig = AnyDataSourceConfig> {
  /** The `engine` of its data sources. Lowercase, like a data source id. */
  readonly name: Config['engine']
  /** How people call it, for messages: `PostgreSQL`, `SQLite`. */
  readonly label: string
  /**
   * The engine's own fields of a data source config (not `id`, `engine`, `mode`, `capacity`
   * or `region`, which the registry adds). The registry refuses unknown fields, so a
   * misspelled setting is an `INVALID_CONFIG` that names it rather than a silent default.
   */
  readonly configSchema: z.ZodObject
  /**
   * Applies defaults that depend on where the config lives (a directory under `home`, a path
   * relative to the config file), before the schema checks the result.
   * @default the input as it is
   */
  resolveConfig?(input: DataSourceInput, context: DataSourceResolveContext): DataSourceInput
  /** Splits a checked config into the catalog's non-secret `config` and sealed `secret`. Throws `INVALID_CONFIG`. */
  toRecord(config: Config, context: { box: SecretBox }): DataSourceRecordParts
  /** Builds the engine for a data source the catalog records. */
  createEngine(record: DataSourceRecord, context: EngineFactoryContext): DatabaseEngine
  /** Where the data source is, without credentials, from its recorded `config`: `/srv/tenants`, `app@db:5432/main`. */
  describe(config: Record<string, unknown>): string
}
