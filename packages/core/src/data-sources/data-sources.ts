import { isTenantryError, TenantryError } from '../errors.js'
import type { Catalog, DataSourceRecord } from '../catalog/catalog.js'
import type { DatabaseEngine } from '../engines/engine.js'
import { createEngine, engineLabel, toDataSourceRecord, type DataSourceConfig } from '../engines/registry.js'
import { SILENT_LOGGER, type Logger } from '../logger.js'
import type { SecretBox } from '../secrets/secret-box.js'

/** The open engines, one per data source, built on first use from the catalog's records through the engine registry. */
export class DataSources {
  readonly #catalog: Catalog
  readonly #box: SecretBox
  readonly #logger: Logger
  readonly #engines = new Map<string, Promise<DatabaseEngine>>()

  constructor(catalog: Catalog, box: SecretBox, logger: Logger = SILENT_LOGGER) {
    this.#catalog = catalog
    this.#box = box
    this.#logger = logger
  }

  /** Records the data sources a config declares (the config is their source of truth). */
  async sync(sources: readonly DataSourceConfig[]): Promise<void> {
    for (const source of sources) await this.#catalog.upsertDataSource(toDataSourceRecord(source, this.#box))
  }

  /** Adds a data source after checking that it answers; an existing id is refused. */
  async add(source: DataSourceConfig): Promise<DataSourceRecord> {
    const record = toDataSourceRecord(source, this.#box)
    const engine = this.#create({ ...record, createdAt: '' })
    try {
      await testEngine(record.id, engine)
    } finally {
      await engine.close()
    }
    await this.#catalog.insertDataSource(record)
    return (await this.#catalog.findDataSource(source.id))!
  }

  /** Connects to a data source and reports what answered. Throws with the reason when it cannot. */
  async test(id: string): Promise<{ id: string; engine: string; detail: string; latencyMs: number }> {
    const engine = await this.engine(id)
    const started = performance.now()
    const detail = await testEngine(id, engine)
    return { id, engine: engine.name, detail, latencyMs: Math.round((performance.now() - started) * 10) / 10 }
  }

  /** The engine of data source `id`. Throws `DATA_SOURCE_NOT_FOUND`. */
  engine(id: string): Promise<DatabaseEngine> {
    let engine = this.#engines.get(id)
    if (!engine) {
      engine = this.#load(id)
      engine.catch(() => this.#engines.delete(id)) // the caller gets the error; the next call tries again
      this.#engines.set(id, engine)
    }
    return engine
  }

  async #load(id: string): Promise<DatabaseEngine> {
    const source = await this.#catalog.findDataSource(id)
    if (!source) throw new TenantryError('DATA_SOURCE_NOT_FOUND', `Data source "${id}" not found`)
    return this.#create(source)
  }

  #create(record: DataSourceRecord): DatabaseEngine {
    return createEngine(record, { box: this.#box, logger: this.#logger })
  }

  async close(): Promise<void> {
    const engines = await Promise.allSettled(this.#engines.values())
    this.#engines.clear()
    await Promise.all(engines.map((e) => (e.status === 'fulfilled' ? e.value.close() : undefined)))
  }
}

/** The engine's connection test, or its name where it has nothing to connect to. */
async function testEngine(id: string, engine: DatabaseEngine): Promise<string> {
  if (!engine.test) return engine.name
  try {
    return await engine.test()
  } catch (error) {
    // Reached, but its credentials lack what Tenantry needs: the engine's message names what is missing.
    if (isTenantryError(error, 'INVALID_CONFIG')) {
      throw new TenantryError('INVALID_CONFIG', `The ${engineLabel(engine.name)} data source ${id} answered, but ${error.message}`, { cause: error })
    }
    throw new TenantryError('DATA_SOURCE_NOT_FOUND', `Cannot reach the ${engineLabel(engine.name)} data source ${id}: ${(error as Error).message}`, {
      cause: error,
    })
  }
}
