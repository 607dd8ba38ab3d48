import { AsyncLocalStorage } from 'node:async_hooks'
import {
  CompiledQuery,
  type DatabaseIntrospector,
  type Kysely,
  PostgresDialect,
  type DatabaseConnection,
  type Driver,
  type PostgresDialectConfig,
  type QueryResult,
  type TransactionSettings,
} from 'kysely'
import { IDENTIFIER_PATTERN, TENANT_ID_PATTERN } from '../../identifiers.js'
import { SILENT_LOGGER, type Logger } from '../../logger.js'
import { TENANT_SETTING } from './postgres-names.js'
import { SchemaIntrospector } from './schema-introspector.js'

export interface ScopedPostgresDialectConfig extends PostgresDialectConfig {
  /** The tenant's schema, put first on `search_path` for the length of each transaction. */
  schema?: string
  /**
   * Row isolation: the tenant id, set as `tenantry.tenant_id` for the length of each
   * transaction. RLS needs it on every statement, so every query runs in a transaction.
   */
  tenantId?: string
  /** Whether destroying the Kysely instance ends the pool. `false` for a pool shared by many tenants. @default true */
  ownsPool?: boolean
  /** Hears of rollbacks that failed while another error was on its way to the caller. @default SILENT_LOGGER */
  logger?: Logger
  /**
   * Rewrites each statement before it is sent (row isolation's migrations: see
   * row-foreign-keys.ts). `connection` runs look-ups on the statement's own connection, in its
   * transaction.
   */
  rewrite?: StatementRewrite
}

/** See `ScopedPostgresDialectConfig.rewrite`. */
export type StatementRewrite = (query: CompiledQuery, connection: DatabaseConnection) => Promise<CompiledQuery>

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

  /** Introspects the scoped schema only (see `SchemaIntrospector`); the whole database otherwise. */
  override createIntrospector(db: Kysely<any>): DatabaseIntrospector {
    return this.#config.schema ? new SchemaIntrospector(db, this.#config.schema) : super.createIntrospector(db)
  }

  override createDriver(): Driver {
    const { schema, tenantId } = this.#config
    return new ScopedPostgresDriver(
      super.createDriver(),
      scopeStatement(schema, tenantId),
      !!tenantId,
      this.#config.ownsPool ?? true,
      this.#config.logger ?? SILENT_LOGGER,
      this.#config.rewrite,
    )
  }
}

/**
 * Transaction-local settings for the next transaction begun in an async context (see
 * `withTransactionSettings`); `applied` tells the caller they travelled with its `BEGIN`.
 */
export interface PendingTransactionSettings {
  /** `set_config(name, value, true)` calls, built from checked values only: never from input. */
  readonly calls: readonly string[]
  applied: boolean
}

const pendingSettings = new AsyncLocalStorage<PendingTransactionSettings>()

/**
 * Runs `fn` so that the first transaction it begins on a scoped handle sends `pending.calls`
 * in the same round trip as its `BEGIN` (and scope), e.g. `statement_timeout` for
 * `tenantry.bounded`. A transaction with an isolation level or access mode is begun as usual
 * and leaves `applied` false: the caller then sets them itself.
 */
export function withTransactionSettings<T>(pending: PendingTransactionSettings, fn: () => Promise<T>): Promise<T> {
  return pendingSettings.run(pending, fn)
}

/**
 * The statement that scopes a transaction, as literals so that `begin` and the scope travel
 * in one round trip. Both values are checked against strict patterns first: nothing here
 * ever comes from input.
 */
function scopeStatement(schema: string | undefined, tenantId: string | undefined): string | undefined {
  if (schema !== undefined && !IDENTIFIER_PATTERN.test(schema)) throw new Error(`Invalid schema ${JSON.stringify(schema)}`)
  if (tenantId !== undefined && !TENANT_ID_PATTERN.test(tenantId)) throw new Error(`Invalid tenant id ${JSON.stringify(tenantId)}`)
  const settings = [
    ...(schema ? [`set_config('search_path', '${schema}', true)`] : []),
    ...(tenantId ? [`set_config('${TENANT_SETTING}', '${tenantId}', true)`] : []),
  ]
  return settings.length ? `select ${settings.join(', ')}` : undefined
}

class ScopedPostgresDriver implements Driver {
  constructor(
    readonly inner: Driver,
    readonly scope: string | undefined,
    /** Wrap every statement outside a transaction, not only raw SQL (row isolation's RLS needs the setting). */
    readonly everyStatement: boolean,
    readonly ownsPool: boolean,
    readonly logger: Logger,
    readonly rewrite: StatementRewrite | undefined,
  ) {}

  init(): Promise<void> {
    return this.inner.init()
  }

  async acquireConnection(): Promise<DatabaseConnection> {
    return new ScopedConnection(await this.inner.acquireConnection(), this.scope, this.everyStatement, this.logger, this.rewrite)
  }

  async beginTransaction(connection: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    const scoped = connection as ScopedConnection
    const pending = pendingSettings.getStore()
    const extra = pending && !pending.applied && pending.calls.length && !settings.isolationLevel && !settings.accessMode ? pending : undefined
    if (extra) extra.applied = true
    if (!extra) await this.inner.beginTransaction(scoped.inner, settings)
    try {
      // With extra settings, one round trip: a parameterless multi-statement query goes over the simple protocol.
      if (extra) await scoped.inner.executeQuery(CompiledQuery.raw(['begin', ...(scoped.statement ? [scoped.statement] : []), `select ${extra.calls.join(', ')}`].join('; ')))
      else await scoped.scope()
    } catch (error) {
      // Kysely rolls back only a transaction whose begin returned: if the scope fails (a
      // cancel, a timeout), end the transaction here, or the connection goes back to the pool
      // inside an aborted transaction and fails whoever borrows it next.
      await this.inner.rollbackTransaction(scoped.inner).catch((err: unknown) => this.logger.warn({ err }, 'Rolling back a transaction whose scope failed also failed'))
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
    readonly statement: string | undefined,
    readonly everyStatement: boolean,
    readonly logger: Logger,
    readonly rewrite: StatementRewrite | undefined,
  ) {}

  /** Transaction-local settings, so COMMIT or ROLLBACK clears them. */
  async scope(): Promise<void> {
    if (this.statement) await this.inner.executeQuery(CompiledQuery.raw(this.statement))
  }

  async executeQuery<R>(query: CompiledQuery): Promise<QueryResult<R>> {
    if (this.rewrite) query = await this.rewrite(query, this.inner)
    if (!this.statement || this.inTransaction || (!this.everyStatement && query.query.kind !== 'RawNode')) {
      return this.inner.executeQuery<R>(query)
    }
    try {
      // One round trip: a parameterless multi-statement query goes over the simple protocol.
      await this.inner.executeQuery(CompiledQuery.raw(`begin; ${this.statement}`))
      const result = await this.inner.executeQuery<R>(query)
      await this.inner.executeQuery(CompiledQuery.raw('commit'))
      return result
    } catch (error) {
      // The caller gets the statement's own error; a failed rollback is only logged.
      await this.inner.executeQuery(CompiledQuery.raw('rollback')).catch((err: unknown) => this.logger.warn({ err }, 'Rolling back a scoped statement failed'))
      throw error
    }
  }

  streamQuery<R>(query: CompiledQuery, chunkSize?: number): AsyncIterableIterator<QueryResult<R>> {
    return this.inner.streamQuery<R>(query, chunkSize)
  }
}
