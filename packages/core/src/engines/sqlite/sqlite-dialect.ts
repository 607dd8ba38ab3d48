import {
  CompiledQuery,
  IdentifierNode,
  RawNode,
  createQueryId,
  type QueryCompiler,
  SelectQueryNode,
  SqliteAdapter,
  SqliteDialect,
  type DatabaseConnection,
  type DialectAdapter,
  type Driver,
  type QueryResult,
  type SqliteDatabase,
  type SqliteDialectConfig,
  type SqliteStatement,
} from 'kysely'

/**
 * SQLite runs DDL inside transactions, but Kysely's adapter says it does not, which
 * would make its Migrator apply each migration and record it in two steps. A crash
 * between them leaves a migration applied and unrecorded. This adapter tells the truth,
 * so a migration and its record commit together.
 */
class TransactionalSqliteAdapter extends SqliteAdapter {
  override get supportsTransactionalDdl(): boolean {
    return true
  }
}

export interface TransactionalSqliteDialectConfig extends SqliteDialectConfig {
  /**
   * Begin every transaction with `BEGIN IMMEDIATE`, taking the write lock up front. A
   * deferred transaction that reads and then writes fails at once with SQLITE_BUSY when
   * another process holds or took the write lock in between; an immediate one waits its
   * turn (the busy timeout). For databases whose transactions all write, like the catalog.
   * @default false
   */
  immediateTransactions?: boolean
  /**
   * Where prepared statements are kept by SQL text. Kysely's own driver prepares every query
   * anew, which costs more than running a point read; a handle passes its cache so that
   * `tenantry.prepare` shares it. @default a cache of this dialect's own
   */
  statements?: StatementCache
}

/**
 * Prepared statements of one connection by SQL text, least recently used dropped past `max`.
 * SQLite re-prepares a cached statement itself when the schema changed under it.
 */
export class StatementCache {
  readonly #statements = new Map<string, SqliteStatement>()
  #database: SqliteDatabase | undefined

  /** `database`: the connection, when the caller has it before the driver starts. */
  constructor(database?: SqliteDatabase, readonly max = 200) {
    this.#database = database
  }

  /** The connection the statements belong to: set once the driver has it. */
  attach(database: SqliteDatabase): void {
    this.#database = database
  }

  get size(): number {
    return this.#statements.size
  }

  get(sql: string): SqliteStatement {
    let statement = this.#statements.get(sql)
    if (statement) {
      // Recency: a hit moves to the end (Map keeps insertion order).
      this.#statements.delete(sql)
      this.#statements.set(sql, statement)
      return statement
    }
    if (!this.#database) throw new Error('The statement cache has no open connection')
    statement = this.#database.prepare(sql)
    this.#statements.set(sql, statement)
    if (this.#statements.size > this.max) this.#statements.delete(this.#statements.keys().next().value!)
    return statement
  }

  /** Drops every statement: the connection is closing. */
  clear(): void {
    this.#statements.clear()
    this.#database = undefined
  }
}

/** Runs one compiled statement through the cache, shaped as Kysely's SQLite driver shapes results. */
function runCached(statements: StatementCache, sql: string, parameters: readonly unknown[]): QueryResult<any> {
  const statement = statements.get(sql)
  if (statement.reader) return { rows: statement.all(parameters) }
  return resultOfRun(statement.run(parameters))
}

/** A write's `run()` result, shaped as Kysely's SQLite driver shapes it. */
export function resultOfRun({ changes, lastInsertRowid }: { changes?: number | bigint | null; lastInsertRowid?: number | bigint | null }): QueryResult<any> {
  return {
    numAffectedRows: changes !== undefined && changes !== null ? BigInt(changes) : undefined,
    insertId: lastInsertRowid !== undefined && lastInsertRowid !== null ? BigInt(lastInsertRowid) : undefined,
    rows: [],
  }
}

class CachedStatementConnection implements DatabaseConnection {
  constructor(
    readonly database: SqliteDatabase,
    readonly statements: StatementCache,
  ) {}

  executeQuery<R>(compiledQuery: CompiledQuery): Promise<QueryResult<R>> {
    return Promise.resolve(runCached(this.statements, compiledQuery.sql, compiledQuery.parameters) as QueryResult<R>)
  }

  async *streamQuery<R>(compiledQuery: CompiledQuery): AsyncIterableIterator<QueryResult<R>> {
    if (!SelectQueryNode.is(compiledQuery.query)) throw new Error('Sqlite driver only supports streaming of select queries')
    // Not from the cache: an iterating statement is busy until the stream ends.
    for (const row of this.database.prepare(compiledQuery.sql).iterate(compiledQuery.parameters)) yield { rows: [row as R] }
  }
}

/**
 * Kysely's SQLite driver (one connection behind a mutex) with a statement cache. Written out
 * rather than extended because Kysely's keeps its connection private.
 */
/** What Kysely's own driver sends for a savepoint command: the name as an identifier. */
function savepointNode(command: string, name: string): RawNode {
  return RawNode.createWithChildren([RawNode.createWithSql(`${command} `), IdentifierNode.create(name)])
}

class CachingSqliteDriver implements Driver {
  #locked: Promise<void> | undefined
  #unlock: (() => void) | undefined
  #database: SqliteDatabase | undefined
  #connection: CachedStatementConnection | undefined

  constructor(
    readonly config: TransactionalSqliteDialectConfig,
    readonly statements: StatementCache,
  ) {}

  async init(): Promise<void> {
    const { database } = this.config
    this.#database = typeof database === 'function' ? await database() : database
    this.statements.attach(this.#database)
    this.#connection = new CachedStatementConnection(this.#database, this.statements)
    await this.config.onCreateConnection?.(this.#connection)
  }

  async acquireConnection(): Promise<DatabaseConnection> {
    // SQLite has one connection: wait until whoever holds it releases it.
    while (this.#locked) await this.#locked
    this.#locked = new Promise((resolve) => (this.#unlock = resolve))
    return this.#connection!
  }

  async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw(this.config.immediateTransactions ? 'begin immediate' : 'begin'))
  }

  async commitTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('commit'))
  }

  async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('rollback'))
  }

  async savepoint(connection: DatabaseConnection, name: string, compile: QueryCompiler['compileQuery']): Promise<void> {
    await connection.executeQuery(compile(savepointNode('savepoint', name), createQueryId()))
  }

  async rollbackToSavepoint(connection: DatabaseConnection, name: string, compile: QueryCompiler['compileQuery']): Promise<void> {
    await connection.executeQuery(compile(savepointNode('rollback to', name), createQueryId()))
  }

  async releaseSavepoint(connection: DatabaseConnection, name: string, compile: QueryCompiler['compileQuery']): Promise<void> {
    await connection.executeQuery(compile(savepointNode('release', name), createQueryId()))
  }

  async releaseConnection(): Promise<void> {
    const unlock = this.#unlock
    this.#locked = undefined
    this.#unlock = undefined
    unlock?.()
  }

  async destroy(): Promise<void> {
    this.statements.clear()
    this.#database?.close()
  }
}

/** Kysely's SQLite dialect with transactional DDL. */
export class TransactionalSqliteDialect extends SqliteDialect {
  readonly #config: TransactionalSqliteDialectConfig

  constructor(config: TransactionalSqliteDialectConfig) {
    super(config)
    this.#config = config
  }

  override createDriver(): Driver {
    return new CachingSqliteDriver(this.#config, this.#config.statements ?? new StatementCache())
  }

  override createAdapter(): DialectAdapter {
    return new TransactionalSqliteAdapter()
  }
}
