import { TenantryError } from '../errors.js'
import type { Catalog, DataSourceRecord } from '../catalog/catalog.js'
import type { DataSourceMode } from '../catalog/catalog-schema.js'
import type { DatabaseEngine } from '../engines/engine.js'
import { SqliteEngine, type SqliteSynchronous } from '../engines/sqlite/sqlite-engine.js'

/** A SQLite directory holding one database file per tenant. */
export interface SqliteDataSourceConfig {
  id: string
  engine: 'sqlite'
  /** @default `${home}/tenants` for the default data source */
  directory: string
  /** @default 'shared' */
  mode?: DataSourceMode
  /** @default 'NORMAL' (see SqliteEngineOptions.synchronous) */
  synchronous?: SqliteSynchronous
  /** Tenants this data source should hold at most, for placement. */
  capacity?: number
  region?: string
}

export type DataSourceConfig = SqliteDataSourceConfig

/** Builds the engine for a data source recorded in the catalog. */
export function createEngine(source: DataSourceRecord): DatabaseEngine {
  switch (source.engine) {
    case 'sqlite': {
      const { directory, synchronous } = source.config as { directory?: string; synchronous?: SqliteSynchronous }
      if (typeof directory !== 'string') {
        throw new TenantryError('INVALID_CONFIG', `Data source ${source.id} has no directory`)
      }
      return new SqliteEngine({ directory, ...(synchronous ? { synchronous } : {}) })
    }
    default:
      throw new TenantryError('INVALID_CONFIG', `Data source ${source.id}: engine ${source.engine} is not available yet`)
  }
}

/** The open engines, one per data source, built on first use from the catalog's records. */
export class DataSources {
  readonly #catalog: Catalog
  readonly #engines = new Map<string, Promise<DatabaseEngine>>()

  constructor(catalog: Catalog) {
    this.#catalog = catalog
  }

  /** The engine of data source `id`. Throws `DATA_SOURCE_NOT_FOUND`. */
  engine(id: string): Promise<DatabaseEngine> {
    let engine = this.#engines.get(id)
    if (!engine) {
      engine = this.#load(id)
      engine.catch(() => this.#engines.delete(id))
      this.#engines.set(id, engine)
    }
    return engine
  }

  async #load(id: string): Promise<DatabaseEngine> {
    const source = await this.#catalog.findDataSource(id)
    if (!source) throw new TenantryError('DATA_SOURCE_NOT_FOUND', `Data source "${id}" not found`)
    return createEngine(source)
  }

  async close(): Promise<void> {
    const engines = await Promise.allSettled(this.#engines.values())
    this.#engines.clear()
    await Promise.all(engines.map((e) => (e.status === 'fulfilled' ? e.value.close() : undefined)))
  }
}
