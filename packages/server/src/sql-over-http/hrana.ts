import { isTenantryError, type RawCursor, type RawSqlValue, type SqliteRawSession } from 'tenantry'

/**
 * Hrana 2 and 3 over HTTP, JSON encoding: the request and response shapes that
 * `@libsql/hrana-client` (under `@libsql/client`) sends and expects. See
 * https://github.com/tursodatabase/libsql/blob/main/docs/HRANA_3_SPEC.md (v3 is v2 plus
 * `get_autocommit`, the `is_autocommit` condition and cursors).
 */
export type HranaValue =
  | { type: 'null' }
  | { type: 'integer'; value: string }
  | { type: 'float'; value: number }
  | { type: 'text'; value: string }
  | { type: 'blob'; base64: string }

export interface HranaStmt {
  sql?: string
  sql_id?: number
  args?: HranaValue[]
  named_args?: Array<{ name: string; value: HranaValue }>
  want_rows?: boolean
}

export type HranaBatchCond =
  | { type: 'ok'; step: number }
  | { type: 'error'; step: number }
  | { type: 'not'; cond: HranaBatchCond }
  | { type: 'and'; conds: HranaBatchCond[] }
  | { type: 'or'; conds: HranaBatchCond[] }
  | { type: 'is_autocommit' }

export interface HranaBatch {
  steps: Array<{ condition?: HranaBatchCond | null; stmt: HranaStmt }>
}

export type HranaRequest =
  | { type: 'close' }
  | { type: 'execute'; stmt: HranaStmt }
  | { type: 'batch'; batch: HranaBatch }
  | { type: 'sequence'; sql?: string; sql_id?: number }
  | { type: 'describe'; sql?: string; sql_id?: number }
  | { type: 'store_sql'; sql_id: number; sql: string }
  | { type: 'close_sql'; sql_id: number }
  | { type: 'get_autocommit' }

/**
 * Hrana's error object. `code` is what libSQL's server sends and `@libsql/client` surfaces as
 * `LibsqlError.code`: SQLite's base code (`SQLITE_CONSTRAINT`) or a protocol code.
 * `extended_code` is Tenantry's addition for SQLite errors (`SQLITE_CONSTRAINT_PRIMARYKEY`);
 * libSQL's clients ignore fields they do not know, and read it from the raw response only.
 */
export interface HranaError {
  message: string
  code: string
  extended_code?: string
}

export interface HranaStmtResult {
  cols: Array<{ name: string; decltype: string | null }>
  rows: HranaValue[][]
  affected_row_count: number
  last_insert_rowid: string | null
}

export type HranaResult = { type: 'ok'; response: Record<string, unknown> & { type: string } } | { type: 'error'; error: HranaError }

/** A protocol-level mistake in the request (not a SQL error). */
export class HranaProtocolError extends Error {
  override readonly name = 'HranaProtocolError'
}

/** A statement the SQL's own rules refused: reported as that request's Hrana error, and the stream goes on. */
class StatementFailed extends Error {
  override readonly name = 'StatementFailed'
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message)
  }
}

/** The state of one Hrana stream: its raw session (a connection in an executor process) and its stored SQL texts. */
export interface StreamState {
  readonly session: SqliteRawSession
  readonly sqls: Map<number, string>
  closed: boolean
}

const MAX_STORED_SQL = 256

/**
 * Runs one request of a pipeline on `stream`. SQL errors become `{ type: 'error' }` results;
 * what ends the stream (a deadline, a cap, a busy database: a `TenantryError`) rejects, and
 * the whole pipeline is answered with its HTTP status.
 */
export async function runRequest(stream: StreamState, request: HranaRequest): Promise<HranaResult> {
  if (stream.closed) return fail('STREAM_CLOSED', 'The stream is closed')
  try {
    switch (request?.type) {
      case 'close':
        stream.closed = true
        return ok({ type: 'close' })
      case 'execute':
        return ok({ type: 'execute', result: await execute(stream, request.stmt) })
      case 'batch':
        return ok({ type: 'batch', result: await batch(stream, request.batch) })
      case 'store_sql':
        storeSql(stream.sqls, request.sql_id, request.sql)
        return ok({ type: 'store_sql' })
      case 'close_sql':
        stream.sqls.delete(request.sql_id)
        return ok({ type: 'close_sql' })
      case 'get_autocommit':
        return ok({ type: 'get_autocommit', is_autocommit: !stream.session.inTransaction })
      case 'sequence': {
        // Split where SQLite would and checked statement by statement, in the executor (sql-text.ts).
        const outcome = await stream.session.sequence(sqlOf(stream, request))
        if (!outcome.ok) throw new StatementFailed(outcome.code, outcome.message)
        return ok({ type: 'sequence' })
      }
      case 'describe': {
        const outcome = await stream.session.describe(sqlOf(stream, request))
        if (!outcome.ok) throw new StatementFailed(outcome.code, outcome.message)
        return ok({
          type: 'describe',
          result: {
            params: outcome.params.map((name) => ({ name })),
            cols: outcome.columns.map((c) => ({ name: c.name, decltype: c.type })),
            is_explain: outcome.isExplain,
            is_readonly: outcome.isReadonly,
          },
        })
      }
      default:
        throw new HranaProtocolError(`Unknown request type ${JSON.stringify((request as { type?: unknown })?.type)}`)
    }
  } catch (error) {
    if (isTenantryError(error)) throw error
    return { type: 'error', error: toHranaError(error) }
  }
}

/**
 * Stores a SQL text under `sqlId`, within the cap. Over HTTP the texts belong to a stream; over
 * a WebSocket to the connection (every stream of it reads them), as the spec has it.
 */
export function storeSql(sqls: Map<number, string>, sqlId: number, sql: string): void {
  if (!Number.isInteger(sqlId) || typeof sql !== 'string') throw new HranaProtocolError('store_sql needs sql_id and sql')
  if (sqls.size >= MAX_STORED_SQL && !sqls.has(sqlId)) throw new HranaProtocolError('Too many stored SQL texts')
  sqls.set(sqlId, sql)
}

function ok(response: Record<string, unknown> & { type: string }): HranaResult {
  return { type: 'ok', response }
}

function fail(code: string, message: string): HranaResult {
  return { type: 'error', error: { code, message } }
}

/** A thrown error as Hrana reports it: refusals and SQLite errors keep their code, nothing else leaks. */
export function toHranaError(error: unknown): HranaError {
  if (error instanceof StatementFailed) {
    // SQLite's own refusal: a read-only token's connection, or a read transaction (`transaction('read')`).
    if (error.code.startsWith('SQLITE_READONLY')) return { code: 'READ_ONLY', message: 'The statement would write, and this token or this transaction is read-only' }
    if (error.code === 'INTERNAL') return { code: 'INTERNAL', message: 'Internal error' }
    // As libSQL's server does: the base code, which clients compare against; the extended one beside it.
    const base = /^SQLITE_[A-Z]+/.exec(error.code)?.[0]
    if (base) return { code: base, extended_code: error.code, message: error.message }
    return { code: error.code, message: error.message }
  }
  if (error instanceof HranaProtocolError) return { code: 'PROTOCOL_ERROR', message: error.message }
  return { code: 'INTERNAL', message: 'Internal error' }
}

function sqlOf(stream: StreamState, stmt: { sql?: string; sql_id?: number }): string {
  if (typeof stmt?.sql === 'string' && typeof stmt.sql_id === 'number') throw new HranaProtocolError('Give sql or sql_id, not both')
  if (typeof stmt?.sql === 'string') return stmt.sql
  if (typeof stmt?.sql_id === 'number') {
    const sql = stream.sqls.get(stmt.sql_id)
    if (sql === undefined) throw new HranaProtocolError(`No stored SQL with id ${stmt.sql_id}`)
    return sql
  }
  throw new HranaProtocolError('A statement needs sql or sql_id')
}

async function execute(stream: StreamState, stmt: HranaStmt): Promise<HranaStmtResult> {
  const sql = sqlOf(stream, stmt)
  const outcome = await stream.session.execute({ sql, ...bindingsOf(stmt), wantRows: stmt.want_rows !== false })
  if (!outcome.ok) throw new StatementFailed(outcome.code, outcome.message)
  return {
    cols: outcome.columns.map((c) => ({ name: c.name, decltype: c.type })),
    rows: outcome.rows.map((row) => row.map(encodeValue)),
    affected_row_count: outcome.rowsAffected,
    last_insert_rowid: outcome.lastInsertRowid === null ? null : String(outcome.lastInsertRowid),
  }
}

async function batch(stream: StreamState, input: HranaBatch): Promise<{ step_results: Array<HranaStmtResult | null>; step_errors: Array<HranaError | null> }> {
  if (!input || !Array.isArray(input.steps)) throw new HranaProtocolError('A batch needs steps')
  const results: Array<HranaStmtResult | null> = []
  const errors: Array<HranaError | null> = []
  const outcomes: Array<'ok' | 'error' | 'skipped'> = []
  for (const [i, step] of input.steps.entries()) {
    let result: HranaStmtResult | null = null
    let error: HranaError | null = null
    if (step.condition && !holds(step.condition, outcomes, stream, i)) outcomes.push('skipped')
    else {
      try {
        result = await execute(stream, step.stmt)
      } catch (failure) {
        // What ends the stream ends the whole request; the SQL's own errors end only their step.
        if (isTenantryError(failure)) throw failure
        error = toHranaError(failure)
      }
      outcomes.push(result ? 'ok' : 'error')
    }
    results.push(result)
    errors.push(error)
  }
  return { step_results: results, step_errors: errors }
}

/** One entry of a Hrana 3 cursor, as both `/v3/cursor` and a WebSocket's `fetch_cursor` send it. */
export type CursorEntry =
  | { type: 'step_begin'; step: number; cols: HranaStmtResult['cols'] }
  | { type: 'row'; row: HranaValue[] }
  | { type: 'step_end'; affected_row_count: number; last_insert_rowid: string | null }
  | { type: 'step_error'; step: number; error: HranaError }
  | { type: 'error'; error: HranaError }

/** What a cursor's reader may want to know while it runs. */
export interface CursorWatch {
  /** Called with each statement's signal, which aborts when the statement's deadline ends it (or its session ends). */
  statement?(signal: AbortSignal): void
}

/**
 * A batch's results as cursor entries, read from the executor a batch of rows at a time
 * (`SqliteRawSession.cursor`) and yielded one by one: a step's rows are never all held, so a
 * cursor reads past the row and size caps of `execute`, at the pace of its reader. A
 * protocol mistake in the batch ends the cursor with an `error` entry, and the stream goes
 * on; what ends the stream (a `TenantryError`) rejects, for the transport to report and close
 * the stream. Returning early (`return()`) stops the running statement and frees its process.
 */
export async function* cursorEntries(stream: StreamState, input: HranaBatch, watch: CursorWatch = {}): AsyncGenerator<CursorEntry> {
  try {
    if (!input || !Array.isArray(input.steps)) throw new HranaProtocolError('A batch needs steps')
    const outcomes: Array<'ok' | 'error' | 'skipped'> = []
    for (const [i, step] of input.steps.entries()) {
      if (step.condition && !holds(step.condition, outcomes, stream, i)) {
        outcomes.push('skipped')
        continue
      }
      outcomes.push((yield* cursorStep(stream, step.stmt, i, watch)) ? 'ok' : 'error')
    }
  } catch (error) {
    if (!(error instanceof HranaProtocolError)) throw error
    yield { type: 'error', error: toHranaError(error) }
  }
}

/** One step of a cursor: its entries, as its rows come; whether it succeeded. */
async function* cursorStep(stream: StreamState, stmt: HranaStmt, step: number, watch: CursorWatch): AsyncGenerator<CursorEntry, boolean> {
  let cursor: RawCursor
  try {
    const sql = sqlOf(stream, stmt)
    const opened = await stream.session.cursor({ sql, ...bindingsOf(stmt) })
    if (!opened.ok) throw new StatementFailed(opened.code, opened.message)
    cursor = opened
  } catch (error) {
    if (isTenantryError(error)) throw error
    yield { type: 'step_error', step, error: toHranaError(error) }
    return false
  }
  try {
    watch.statement?.(cursor.signal)
    yield { type: 'step_begin', step, cols: cursor.columns.map((c) => ({ name: c.name, decltype: c.type })) }
    for (;;) {
      const batch = await cursor.next()
      if (!batch.ok) {
        // A SQL error part-way (after some rows): the step ends with it, as libSQL's server reports one.
        yield { type: 'step_error', step, error: toHranaError(new StatementFailed(batch.code, batch.message)) }
        return false
      }
      if (stmt.want_rows !== false) for (const row of batch.rows) yield { type: 'row', row: row.map(encodeValue) }
      if (batch.done) break
    }
    yield { type: 'step_end', affected_row_count: cursor.rowsAffected, last_insert_rowid: cursor.lastInsertRowid === null ? null : String(cursor.lastInsertRowid) }
    return true
  } finally {
    await cursor.close()
  }
}

function holds(cond: HranaBatchCond, outcomes: ReadonlyArray<'ok' | 'error' | 'skipped'>, stream: StreamState, current: number): boolean {
  switch (cond.type) {
    case 'ok':
    case 'error':
      if (!Number.isInteger(cond.step) || cond.step >= current) throw new HranaProtocolError('A batch condition may only refer to an earlier step')
      return outcomes[cond.step] === cond.type
    case 'not':
      return !holds(cond.cond, outcomes, stream, current)
    case 'and':
      return cond.conds.every((c) => holds(c, outcomes, stream, current))
    case 'or':
      return cond.conds.some((c) => holds(c, outcomes, stream, current))
    case 'is_autocommit':
      return !stream.session.inTransaction
    default:
      throw new HranaProtocolError('Unknown batch condition')
  }
}

function bindingsOf(stmt: HranaStmt): { args: RawSqlValue[]; namedArgs?: Record<string, RawSqlValue> } {
  const args = (stmt.args ?? []).map(decodeValue)
  if (!stmt.named_args?.length) return { args }
  const namedArgs: Record<string, RawSqlValue> = Object.create(null) as Record<string, RawSqlValue>
  // As the client wrote them (`:a` or `a`): the executor matches either, and `?1`'s `1`.
  for (const { name, value } of stmt.named_args) namedArgs[String(name)] = decodeValue(value)
  return { args, namedArgs }
}

function decodeValue(value: HranaValue): RawSqlValue {
  switch (value?.type) {
    case 'null':
      return null
    case 'integer':
      if (typeof value.value !== 'string' || !/^-?\d{1,20}$/.test(value.value)) throw new HranaProtocolError('Invalid integer value')
      return BigInt(value.value)
    case 'float':
      if (typeof value.value !== 'number') throw new HranaProtocolError('Invalid float value')
      return value.value
    case 'text':
      if (typeof value.value !== 'string') throw new HranaProtocolError('Invalid text value')
      return value.value
    case 'blob':
      if (typeof value.base64 !== 'string') throw new HranaProtocolError('Invalid blob value')
      return Buffer.from(value.base64, 'base64')
    default:
      throw new HranaProtocolError('Unknown value type')
  }
}

function encodeValue(value: unknown): HranaValue {
  if (value === null || value === undefined) return { type: 'null' }
  if (typeof value === 'bigint') return { type: 'integer', value: value.toString() }
  // JSON has no Infinity: SQLite's ±Inf (e.g. 9e999) goes out as the largest finite double.
  if (typeof value === 'number') return { type: 'float', value: Number.isFinite(value) ? value : Math.sign(value) * Number.MAX_VALUE }
  if (typeof value === 'string') return { type: 'text', value }
  if (value instanceof Uint8Array) return { type: 'blob', base64: Buffer.from(value).toString('base64') }
  return { type: 'text', value: String(value) }
}
