import { TenantryError } from '../errors.js'
import { assertValidIdentifier } from '../identifiers.js'
import type { Catalog, DataSourceRecord } from '../catalog/catalog.js'
import type { DataSourceMode } from '../catalog/catalog-schema.js'
import type { DatabaseEngine, Isolation } from '../engines/engine.js'
import { PostgresEngine } from '../engines/postgres/postgres-engine.js'
import { SqliteEngine, type SqliteSynchronous } from '../engines/sqlite/sqlite-engine.js'
import type { SecretBox } from '../secrets/secret-box.js'

interface DataSourceBase {
  /** `^[a-z][a-z0-9_]{0,62}$`; at most 49 characters on Postgres, where it also names the app role. */
  id: string
  /** `shared` sources take new tenants by placement policy; `dedicated` and `byod` only when named. @default 'shared' */
  mode?: DataSourceMode
  /** Tenants this data source should hold at most; placement skips it when full. */
  capacity?: number
  region?: string
}

/** A SQLite directory holding one database file per tenant. */
export interface SqliteDataSourceConfig extends DataSourceBase {
  engine: 'sqlite'
  /** @default `${home}/tenants` for `local`, `${home}/<id>` otherwise */
  directory: string
  /** @default 'NORMAL' (see SqliteEngineOptions.synchronous) */
  synchronous?: SqliteSynchronous
}

/** A Postgres server (or a customer's own, `mode: 'byod'`). */
export interface PostgresDataSourceConfig extends DataSourceBase {
  engine: 'postgres'
  /**
   * The admin connection URL (DDL and migrations). Sealed into the catalog with the secret
   * key and never shown again: listings show host, port, database and user only.
   */
  url: string
  /** @default ['schema', 'database', 'row'] */
  isolations?: Isolation[]
  poolSize?: number
  tenantPoolSize?: number
}

export type DataSourceConfig = SqliteDataSourceConfig | PostgresDataSourceConfig

/** What the catalog records of a data source: non-secret facts in `config`, credentials sealed in `secret`. */
export function toDataSourceRecord(source: DataSourceConfig, box: SecretBox): Omit<DataSourceRecord, 'createdAt'> {
  // Every path in (config, `add`, a pre-resolved config) passes here: the id names files, roles and databases.
  assertValidIdentifier('data source id', source.id)
  const base = { id: source.id, mode: source.mode ?? 'shared', capacity: source.capacity ?? null, region: source.region ?? null }
  if (source.engine === 'sqlite') {
    const config = { directory: source.directory, ...(source.synchronous ? { synchronous: source.synchronous } : {}) }
    return { ...base, engine: 'sqlite', config, secret: null }
  }
  if (source.id.length > 49) throw new TenantryError('INVALID_IDENTIFIER', `Postgres data source ids have at most 49 characters: ${source.id}`)
  const url = parsePostgresUrl(source.url, source.id)
  return {
    ...base,
    engine: 'postgres',
    config: {
      host: url.hostname,
      port: Number(url.port || 5432),
      database: url.pathname.slice(1),
      user: decodeURIComponent(url.username),
      ...(source.isolations ? { isolations: source.isolations } : {}),
      ...(source.poolSize ? { poolSize: source.poolSize } : {}),
      ...(source.tenantPoolSize ? { tenantPoolSize: source.tenantPoolSize } : {}),
    },
    secret: box.seal(source.url, secretPurpose(source.id)),
  }
}

/** Builds the engine for a data source recorded in the catalog. */
export function createEngine(source: DataSourceRecord, box: SecretBox): DatabaseEngine {
  switch (source.engine) {
    case 'sqlite': {
      const { directory, synchronous } = source.config as { directory?: string; synchronous?: SqliteSynchronous }
      if (typeof directory !== 'string') {
        throw new TenantryError('INVALID_CONFIG', `Data source ${source.id} has no directory`)
      }
      return new SqliteEngine({ directory, ...(synchronous ? { synchronous } : {}) })
    }
    case 'postgres': {
      if (!source.secret) throw new TenantryError('INVALID_CONFIG', `Data source ${source.id} has no credentials`)
      const { isolations, poolSize, tenantPoolSize } = source.config as {
        isolations?: Isolation[]
        poolSize?: number
        tenantPoolSize?: number
      }
      return new PostgresEngine({
        id: source.id,
        url: box.open(source.secret, secretPurpose(source.id)),
        appRole: { name: `tenantry_app_${source.id}`, password: box.derive(`postgres-app-role:${source.id}`) },
        deriveSecret: (purpose) => box.derive(`data-source:${source.id}:${purpose}`),
        ...(isolations ? { isolations } : {}),
        ...(poolSize ? { poolSize } : {}),
        ...(tenantPoolSize ? { tenantPoolSize } : {}),
      })
    }
    default:
      throw new TenantryError('INVALID_CONFIG', `Data source ${source.id}: unknown engine ${String(source.engine)}`)
  }
}

/** The open engines, one per data source, built on first use from the catalog's records. */
export class DataSources {
  readonly #catalog: Catalog
  readonly #box: SecretBox
  readonly #engines = new Map<string, Promise<DatabaseEngine>>()

  constructor(catalog: Catalog, box: SecretBox) {
    this.#catalog = catalog
    this.#box = box
  }

  /** Records the data sources a config declares (the config is their source of truth). */
  async sync(sources: readonly DataSourceConfig[]): Promise<void> {
    for (const source of sources) await this.#catalog.upsertDataSource(toDataSourceRecord(source, this.#box))
  }

  /** Adds a data source after checking that it answers; an existing id is refused. */
  async add(source: DataSourceConfig): Promise<DataSourceRecord> {
    const record = toDataSourceRecord(source, this.#box)
    const engine = createEngine({ ...record, createdAt: '' }, this.#box)
    try {
      await testEngine(engine)
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
    const detail = await testEngine(engine)
    return { id, engine: engine.name, detail, latencyMs: Math.round((performance.now() - started) * 10) / 10 }
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
    return createEngine(source, this.#box)
  }

  async close(): Promise<void> {
    const engines = await Promise.allSettled(this.#engines.values())
    this.#engines.clear()
    await Promise.all(engines.map((e) => (e.status === 'fulfilled' ? e.value.close() : undefined)))
  }
}

async function testEngine(engine: DatabaseEngine): Promise<string> {
  if (engine instanceof PostgresEngine) {
    try {
      return `PostgreSQL ${(await engine.test()).version}`
    } catch (error) {
      throw new TenantryError('DATA_SOURCE_NOT_FOUND', `Cannot reach the Postgres data source: ${(error as Error).message}`, { cause: error })
    }
  }
  if (engine instanceof SqliteEngine) return `SQLite directory ${engine.directory}`
  return engine.name
}

function secretPurpose(id: string): string {
  return `data-source:${id}`
}

function parsePostgresUrl(text: string, id: string): URL {
  let url: URL
  try {
    url = new URL(text)
  } catch {
    throw new TenantryError('INVALID_CONFIG', `Data source ${id}: url is not a URL`)
  }
  if (!/^postgres(ql)?:$/.test(url.protocol) || !url.hostname || url.pathname.length < 2) {
    throw new TenantryError('INVALID_CONFIG', `Data source ${id}: url must look like postgres://user:password@host:5432/database`)
  }
  return url
}
