import { join } from 'node:path'
import { z } from 'zod'
import { TenantryError } from '../../errors.js'
import type { DataSourceBase, EngineDefinition } from '../engine-definition.js'
import { SqliteEngine, type SqliteSynchronous } from './sqlite-engine.js'

/** A SQLite directory holding one database file per tenant. */
export interface SqliteDataSourceConfig extends DataSourceBase {
  engine: 'sqlite'
  /** @default `${home}/tenants` for `local`, `${home}/<id>` otherwise */
  directory: string
  /** @default 'NORMAL' (see SqliteEngineOptions.synchronous) */
  synchronous?: SqliteSynchronous
}

/** A SQLite data source as a config file declares it: the directory has a default. */
export type SqliteDataSourceInput = Omit<SqliteDataSourceConfig, 'directory'> & { directory?: string }

const SQLITE_CONFIG_SCHEMA = z.object({
  directory: z.string().min(1),
  synchronous: z.enum(['OFF', 'NORMAL', 'FULL', 'EXTRA']).optional(),
})

/** SQLite in the engine registry. */
export const SQLITE_ENGINE: EngineDefinition<SqliteDataSourceConfig> = {
  name: 'sqlite',
  label: 'SQLite',
  configSchema: SQLITE_CONFIG_SCHEMA,

  resolveConfig(input, { home, resolvePath }) {
    const { directory } = input
    return { ...input, directory: typeof directory === 'string' && directory ? resolvePath(directory) : join(home, input.id === 'local' ? 'tenants' : input.id) }
  },

  toRecord(source) {
    return { config: { directory: source.directory, ...(source.synchronous ? { synchronous: source.synchronous } : {}) }, secret: null }
  },

  createEngine(record, { logger }) {
    const { directory, synchronous } = record.config as { directory?: unknown; synchronous?: SqliteSynchronous }
    if (typeof directory !== 'string') throw new TenantryError('INVALID_CONFIG', `Data source ${record.id} has no directory`)
    return new SqliteEngine({ directory, logger, ...(synchronous ? { synchronous } : {}) })
  },

  describe(config) {
    return String(config.directory)
  },
}
