import {
  CompiledQuery,
  PostgresDialect,
  type DatabaseConnection,
  type Driver,
  type PostgresDialectConfig,
  type QueryResult,
  type TransactionSettings,
} from 'kysely'

export interface ScopedPostgresDialectConfig extends PostgresDialectConfig {
  /** The tenant's schema, put first on `search_path` for the length of each transaction. */
  schema?: string
  /** Whether destroying the Kysely instance ends the pool. `false` for a pool shared by many tenants. @default true */
  ownsPool?: boolean
}

/**
 * Kysely's Postgres dialect, confined to one schema without a session setting: every
 * transaction starts with `set_config('search_path', schema, true)`, which Postgres drops at
 * COMMIT or ROLLBACK, so a pooled connection never carries it to the next request. Raw SQL
 * outside a transaction runs in one of its own for the same reason. (Query-builder queries
 * are schema-qualified by `WithSchemaPlugin` and need no transaction.)
 */
export class ScopedPostgresDialect extends PostgresDialect {
  readonly #config: ScopedPostgresDialectConfig

  constructor(config: ScopedPostgresDialectConfig) {
    super(config)
    this.#config = config
  }

  override createDriver(): Driver {
    return new ScopedPostgresDriver(super.createDriver(), this.#config.schema, this.#config.ownsPool ?? true)
  }
}

class ScopedPostgresDriver implements Driver {
  constructor(
    readonly inner: Driver,
    readonly schema: string | undefined,
    readonly ownsPool: boolean,
  ) {}

  init(): Promise<void> {
    return this.inner.init()
  }

  async acquireConnection(): Promise<DatabaseConnection> {
    return new ScopedConnection(await this.inner.acquireConnection(), this.schema)
  }

  async beginTransaction(connection: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    const scoped = connection as ScopedConnection
    await this.inner.beginTransaction(scoped.inner, settings)
    try {
      await scoped.scope()
    } catch (error) {
      // Kysely rolls back only a transaction whose begin returned: if the scope fails (a
      // cancel, a timeout), end the transaction here, or the connection goes back to the pool
      // inside an aborted transaction and fails whoever borrows it next.
      await this.inner.rollbackTransaction(scoped.inner).catch(() => {})
      throw error
    }
    scoped.inTransaction = true
  }

  async commitTransaction(connection: DatabaseConnection): Promise<void> {
    const scoped = connection as ScopedConnection
    scoped.inTransaction = false
    await this.inner.commitTransaction(scoped.inner)
  }

  async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    const scoped = connection as ScopedConnection
    scoped.inTransaction = false
    await this.inner.rollbackTransaction(scoped.inner)
  }

  async savepoint(connection: DatabaseConnection, name: string, compile: Parameters<NonNullable<Driver['savepoint']>>[2]) {
    await this.inner.savepoint!((connection as ScopedConnection).inner, name, compile)
  }

  async rollbackToSavepoint(connection: DatabaseConnection, name: string, compile: Parameters<NonNullable<Driver['rollbackToSavepoint']>>[2]) {
    await this.inner.rollbackToSavepoint!((connection as ScopedConnection).inner, name, compile)
  }

  async releaseSavepoint(connection: DatabaseConnection, name: string, compile: Parameters<NonNullable<Driver['releaseSavepoint']>>[2]) {
    await this.inner.releaseSavepoint!((connection as ScopedConnection).inner, name, compile)
  }

  releaseConnection(connection: DatabaseConnection): Promise<void> {
    return this.inner.releaseConnection((connection as ScopedConnection).inner)
  }

  async destroy(): Promise<void> {
    if (this.ownsPool) await this.inner.destroy()
  }
}

class ScopedConnection implements DatabaseConnection {
  inTransaction = false

  constructor(
    readonly inner: DatabaseConnection,
    readonly schema: string | undefined,
  ) {}

  /** Transaction-local, so COMMIT or ROLLBACK clears it. */
  async scope(): Promise<void> {
    if (this.schema) await this.inner.executeQuery(CompiledQuery.raw(`select set_config('search_path', $1, true)`, [this.schema]))
  }

  async executeQuery<R>(query: CompiledQuery): Promise<QueryResult<R>> {
    if (!this.schema || this.inTransaction || query.query.kind !== 'RawNode') return this.inner.executeQuery<R>(query)
    await this.inner.executeQuery(CompiledQuery.raw('begin'))
    try {
      await this.scope()
      const result = await this.inner.executeQuery<R>(query)
      await this.inner.executeQuery(CompiledQuery.raw('commit'))
      return result
    } catch (error) {
      await this.inner.executeQuery(CompiledQuery.raw('rollback')).catch(() => {})
      throw error
    }
  }

  streamQuery<R>(query: CompiledQuery, chunkSize?: number): AsyncIterableIterator<QueryResult<R>> {
    return this.inner.streamQuery<R>(query, chunkSize)
  }
}
