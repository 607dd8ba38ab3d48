import {
  CompiledQuery,
  SqliteAdapter,
  SqliteIntrospector,
  SqliteQueryCompiler,
  type DatabaseConnection,
  type DatabaseIntrospector,
  type Dialect,
  type DialectAdapter,
  type Driver,
  type Kysely,
  type QueryCompiler,
  type QueryResult,
} from 'kysely'
import type { RawSqlValue, SqliteRawSession } from '../engines/engine.js'

/**
 * An error SQLite (or the statement guard) raised for one statement: `code` is SQLite's
 * extended code (`SQLITE_CONSTRAINT_UNIQUE`…) or the guard's (`SQL_FORBIDDEN`, `READ_ONLY`),
 * as better-sqlite3's `SqliteError` carries it in-process, so callers that map constraint
 * violations by code work on both paths.
 */
export class ExecutorStatementError extends Error {
  override readonly name = 'ExecutorStatementError'
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message)
  }
}

/**
 * Kysely's SQLite dialect over one raw session of the executor (sqlite-executor.ts): every
 * compiled query runs in an executor process, under the session's deadline and the
 * statement guard, never on the caller's event loop. For `tenantry.bounded` on SQLite.
 *
 * - Rows come back positional and are turned into objects by column name; 64-bit integers
 *   come back as bigints and become numbers where that is exact, text otherwise.
 * - Transactions are `BEGIN`/`COMMIT`/`ROLLBACK` on the same session, whose process stays
 *   pinned while one is open.
 * - One connection: queries run one at a time, in the order they were started.
 * - Destroying the Kysely instance closes the session (rolling back an open transaction).
 */
export class ExecutorDialect implements Dialect {
  constructor(readonly session: SqliteRawSession) {}

  createDriver(): Driver {
    return new ExecutorDriver(this.session)
  }

  createQueryCompiler(): QueryCompiler {
    return new SqliteQueryCompiler()
  }

  createAdapter(): DialectAdapter {
    return new SqliteAdapter()
  }

  createIntrospector(db: Kysely<any>): DatabaseIntrospector {
    return new SqliteIntrospector(db)
  }
}

class ExecutorDriver implements Driver {
  readonly #connection: ExecutorConnection
  /** The tail of the queue of connection borrowers: one at a time, like a single SQLite connection. */
  #queue: Promise<void> = Promise.resolve()
  #release: (() => void) | undefined

  constructor(readonly session: SqliteRawSession) {
    this.#connection = new ExecutorConnection(session)
  }

  async init(): Promise<void> {}

  async acquireConnection(): Promise<DatabaseConnection> {
    const previous = this.#queue
    let release!: () => void
    this.#queue = new Promise((resolve) => (release = resolve))
    await previous
    this.#release = release
    return this.#connection
  }

  async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('begin'))
  }

  async commitTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('commit'))
  }

  async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    // A session the executor ended (a deadline) has rolled back already: nothing to undo.
    if (this.session.closed || !this.session.inTransaction) return
    await connection.executeQuery(CompiledQuery.raw('rollback'))
  }

  async releaseConnection(): Promise<void> {
    const release = this.#release
    this.#release = undefined
    release?.()
  }

  async destroy(): Promise<void> {
    await this.session.close()
  }
}

class ExecutorConnection implements DatabaseConnection {
  constructor(readonly session: SqliteRawSession) {}

  async executeQuery<R>(query: CompiledQuery): Promise<QueryResult<R>> {
    const args = query.parameters.map(toRawValue)
    // A tenant at its share of the executor waits its turn inside `execute` (the executor's per-tenant queue).
    const result = await this.session.execute({ sql: query.sql, args })
    if (!result.ok) throw new ExecutorStatementError(result.code, result.message)
    if (result.columns.length === 0) {
      return {
        rows: [],
        numAffectedRows: BigInt(result.rowsAffected),
        ...(result.lastInsertRowid !== null ? { insertId: result.lastInsertRowid } : {}),
      }
    }
    const names = result.columns.map((c) => c.name)
    const rows = result.rows.map((raw) => {
      const row: Record<string, unknown> = {}
      for (let i = 0; i < names.length; i++) row[names[i]!] = fromRawValue(raw[i]!)
      return row as R
    })
    return { rows }
  }

  // eslint-disable-next-line require-yield
  async *streamQuery(): AsyncIterableIterator<QueryResult<never>> {
    throw new Error('Bounded queries do not stream: select a page at a time')
  }
}

/** A bound parameter as the executor takes it (better-sqlite3's rules: booleans as 0/1, dates as ISO text). */
function toRawValue(value: unknown): RawSqlValue {
  if (value === undefined || value === null) return null
  if (typeof value === 'boolean') return value ? 1 : 0
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'string' || value instanceof Uint8Array) return value
  if (value instanceof Date) return value.toISOString()
  throw new TypeError(`A ${typeof value} cannot be bound to a SQLite statement`)
}

/** A value read from the executor: a bigint becomes a number where that is exact, text otherwise (as JSON would need). */
function fromRawValue(value: RawSqlValue): unknown {
  if (typeof value !== 'bigint') return value
  return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value.toString()
}
