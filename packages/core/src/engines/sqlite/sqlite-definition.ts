import { join } from 'node:path'
import { z } from 'zod'
import { BOUNDED_CONFIG_SCHEMA, parseBoundedConfig, type BoundedConfig } from '../../bounded.js'
import { TenantryError } from '../../errors.js'
import type { DataSourceBase, EngineDefinition } from '../engine-definition.js'
import type { SqliteExecutorOptions } from '../../executor/sqlite-executor.js'
import { SqliteEngine, type SqliteSynchronous } from './sqlite-engine.js'

/**
 * How raw SQL (SQL-over-HTTP) runs on a SQLite data source: executor processes, deadlines,
 * caps and per-tenant shares. Every field is optional; the defaults are `SqliteExecutorOptions`'.
 */
export type SqliteRawSqlConfig = Omit<SqliteExecutorOptions, 'logger'>

/** A SQLite directory holding one database file per tenant. */
export interface SqliteDataSourceConfig extends DataSourceBase {
  engine: 'sqlite'
  /** @default `${home}/tenants` for `local`, `${home}/<id>` otherwise */
  directory: string
  /** @default 'NORMAL' (see SqliteEngineOptions.synchronous) */
  synchronous?: SqliteSynchronous
  /**
   * Raw SQL limits of this data source, e.g. `{ statementTimeoutMs: 2000, maxRows: 1000 }`.
   * A tenant's own deadline can be set over it by the server (`server.sqlOverHttp.tenants`).
   * @default see `SqliteExecutorOptions`: 5 s per statement, 10 s per transaction, 10,000 rows,
   * 16 MiB per result, 4 MiB per value, 512 MiB per process, max(4, CPUs) processes, half of them per tenant
   */
  rawSql?: SqliteRawSqlConfig
  /**
   * Deadlines of `tenantry.bounded` (the server's data API, which runs in the same executor
   * processes as raw SQL), e.g. `{ statementTimeoutMs: 1000 }`. A tenant's own can be set over
   * it by the server (`server.dataApi.tenants`).
   * @default { statementTimeoutMs: 2000 }
   */
  bounded?: BoundedConfig
}

/** A SQLite data source as a config file declares it: the directory has a default. */
export type SqliteDataSourceInput = Omit<SqliteDataSourceConfig, 'directory'> & { directory?: string }

const positiveInt = z.number().int().positive()

const RAW_SQL_SCHEMA = z.strictObject({
  poolSize: positiveInt.max(256).optional(),
  maxStatementsPerTenant: positiveInt.optional(),
  memoryLimitMiB: positiveInt.min(64).optional(),
  statementTimeoutMs: positiveInt.optional(),
  transactionTimeoutMs: positiveInt.optional(),
  queueTimeoutMs: positiveInt.optional(),
  busyTimeoutMs: z.number().int().min(0).optional(),
  maxRows: positiveInt.optional(),
  maxResultBytes: positiveInt.optional(),
  maxValueBytes: positiveInt.optional(),
  niceness: z.number().int().min(0).max(19).optional(),
  requireMemoryLimit: z.boolean().optional(),
})

const SQLITE_CONFIG_SCHEMA = z.object({
  directory: z.string().min(1),
  synchronous: z.enum(['OFF', 'NORMAL', 'FULL', 'EXTRA']).optional(),
  rawSql: RAW_SQL_SCHEMA.optional(),
  bounded: BOUNDED_CONFIG_SCHEMA.optional(),
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
    return {
      config: {
        directory: source.directory,
        ...(source.synchronous ? { synchronous: source.synchronous } : {}),
        ...(source.rawSql ? { rawSql: source.rawSql } : {}),
        ...(source.bounded ? { bounded: source.bounded } : {}),
      },
      secret: null,
    }
  },

  createEngine(record, { logger }) {
    const { directory, synchronous, rawSql, bounded: boundedRecord } = record.config as { directory?: unknown; synchronous?: SqliteSynchronous; rawSql?: unknown; bounded?: unknown }
    if (typeof directory !== 'string') throw new TenantryError('INVALID_CONFIG', `Data source ${record.id} has no directory`)
    // Checked again: a record may come from an older version or another process's config.
    const limits = rawSql === undefined ? undefined : RAW_SQL_SCHEMA.safeParse(rawSql)
    if (limits && !limits.success) throw new TenantryError('INVALID_CONFIG', `Data source ${record.id}: rawSql: ${limits.error.issues[0]?.message}`)
    const bounded = parseBoundedConfig(boundedRecord, record.id)
    return new SqliteEngine({ directory, logger, ...(synchronous ? { synchronous } : {}), ...(limits ? { rawSql: limits.data } : {}), ...(bounded ? { bounded } : {}) })
  },

  describe(config) {
    return String(config.directory)
  },
}
