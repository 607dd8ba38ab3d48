/**
 * One executor process: runs tenants' raw SQL statements on better-sqlite3, one at a time,
 * for the executor in the parent (sqlite-executor.ts). It is the unit the parent kills at a
 * deadline, since nothing else can stop a statement running inside SQLite's C code: the
 * parent SIGKILLs this process and starts another. WAL mode makes that safe: a transaction
 * that never committed is never seen by the next connection.
 *
 * Holds the connections of the sessions the parent routed here (one at a time in practice:
 * the parent gives a process to one statement, or one open transaction) and a few spare ones.
 * Every statement passes the statement guard first.
 */
import { Worker } from 'node:worker_threads'
import Database from 'better-sqlite3'
import type { ChildRequest, ChildResponse, CursorBatch, OpenParams, RawValue, StatementCaps } from './executor-protocol.js'
import { beginMode, BindingError, bindParameters, splitStatements, sqlParameters } from './sql-text.js'
import { prepareGuarded, StatementRefused, type Bindings } from './statement-guard.js'

const connections = new Map<number, Database.Database>()
/**
 * Connections no session holds, by file and mode, for the next statement on the same tenant:
 * opening one costs more than a point read. Reuse is safe because a connection between
 * statements outside a transaction has no state a client set: the guard refuses PRAGMAs that
 * write, temp objects and ATTACH.
 */
const spare = new Map<string, Database.Database>()
const MAX_SPARE = 16
const spareKey = (path: string, readOnly: boolean) => `${readOnly ? 'ro' : 'rw'}:${path}`

/**
 * Read-write connections inside libSQL's read transaction (`BEGIN TRANSACTION READONLY`, what
 * `@libsql/client`'s `transaction('read')` sends), which SQLite alone would run as a plain
 * `BEGIN`: they run with `PRAGMA query_only` until the transaction ends, so its writes fail
 * with SQLITE_READONLY, by SQLite. Clients cannot set the pragma themselves (the guard
 * refuses PRAGMAs); it is lifted before the connection serves anything else.
 */
const queryOnly = new WeakSet<Database.Database>()

/** Lifts a read transaction's `query_only` once its transaction is over. */
function endReadTransaction(db: Database.Database): void {
  if (!queryOnly.has(db) || db.inTransaction) return
  db.pragma('query_only = OFF')
  queryOnly.delete(db)
}

/** After `sql` ran on `db`: a read transaction it began makes the connection query-only. */
function afterStatement(db: Database.Database, sql: string): void {
  if (db.readonly || queryOnly.has(db) || !db.inTransaction || !beginMode(sql)?.readonly) return
  db.pragma('query_only = ON')
  queryOnly.add(db)
}

/** A cap reached while reading rows. */
class TooLarge extends Error {}

function open(params: OpenParams): Database.Database {
  const db = new Database(params.path, { readonly: params.readOnly, fileMustExist: true, timeout: params.busyTimeoutMs })
  try {
    // As on every handle of the SQLite engine, set before any statement of the client's.
    if (!params.readOnly) db.pragma('foreign_keys = ON')
    // better-sqlite3's default page cache is 16 MB per connection; a process keeps several
    // connections under its memory limit, and statements here are short.
    db.pragma('cache_size = -2000')
    // 64-bit integers stay exact: they leave as bigints.
    db.defaultSafeIntegers(true)
    limitStorage(db, params.maxStorageBytes)
  } catch (error) {
    db.close()
    throw error
  }
  return db
}

/**
 * The tenant's storage quota, enforced by SQLite: a write that would grow the file past
 * `max_page_count` pages fails with SQLITE_FULL and writes nothing. Set per connection (the
 * statement guard refuses PRAGMAs, so a client cannot lift it), and again whenever a session
 * takes a spare connection, since the quota may have changed since it opened.
 */
function limitStorage(db: Database.Database, bytes: number | null | undefined): void {
  if (db.readonly || bytes === undefined) return
  const pageSize = Number(db.pragma('page_size', { simple: true }))
  // SQLite's own ceiling when there is no quota; a limit below the current size holds it there.
  db.pragma(`max_page_count = ${bytes === null ? 4294967294 : Math.max(1, Math.floor(bytes / pageSize))}`)
}

function sizeOf(value: unknown): number {
  if (typeof value === 'string') return Buffer.byteLength(value)
  if (value instanceof Uint8Array) return value.byteLength
  return 8
}

/** The session's connection: its own, a spare one, or a new one. */
function connectionFor(request: { session: number; open?: OpenParams | undefined }): Database.Database {
  let db = connections.get(request.session)
  if (!db) {
    if (!request.open) throw new Error(`No connection for session ${request.session}`)
    const key = spareKey(request.open.path, request.open.readOnly)
    const reused = spare.get(key)
    db = reused ?? open(request.open)
    if (reused) limitStorage(db, request.open.maxStorageBytes)
    spare.delete(key)
    connections.set(request.session, db)
  }
  endReadTransaction(db)
  return db
}

function execute(request: Extract<ChildRequest, { op: 'execute' }>): ChildResponse {
  const db = connectionFor(request)
  const readOnly = request.open?.readOnly ?? db.readonly
  if (request.mode === 'sequence') return sequence(db, request, readOnly)
  if (request.mode === 'describe') return describe(db, request)
  // Bound as SQLite numbers parameters: better-sqlite3 alone cannot bind `?NNN` by position.
  const bindings: Bindings = bindParameters(request.sql, request.args, request.namedArgs)
  const statement = prepareGuarded(db, request.sql, bindings, readOnly)
  return runStatement(db, request, statement, bindings)
}

/** Runs a guarded statement to its end, its rows held within `caps`. */
function runStatement(
  db: Database.Database,
  request: { id: number; sql: string; caps: StatementCaps; wantRows?: boolean },
  statement: Database.Statement,
  bindings: Bindings,
): Extract<ChildResponse, { ok: true }> {
  if (!statement.reader) {
    const info = statement.run(...bindings)
    afterStatement(db, request.sql)
    return {
      id: request.id,
      ok: true,
      inTransaction: db.inTransaction,
      columns: [],
      rows: [],
      rowsAffected: info.changes,
      lastInsertRowid: info.changes > 0 ? BigInt(info.lastInsertRowid) : null,
    }
  }
  const { maxRows, maxResultBytes, maxValueBytes } = request.caps
  const columns = statement.columns().map((c) => ({ name: c.name, type: c.type }))
  const writes = !statement.readonly
  // A reader that writes (`INSERT … RETURNING`) runs in a savepoint, so that a cap reached
  // while reading its rows undoes its changes too: hitting a cap loses nothing and writes nothing.
  if (writes) db.exec('SAVEPOINT tenantry_capped')
  const rows: RawValue[][] = []
  let bytes = 0
  try {
    for (const row of statement.raw(true).iterate(...bindings) as Iterable<RawValue[]>) {
      if (rows.length >= maxRows) throw new TooLarge(`The statement returned more than ${maxRows} rows; add a LIMIT`)
      for (const value of row) {
        const size = sizeOf(value)
        if (size > maxValueBytes) throw new TooLarge(`A value of the result is larger than ${maxValueBytes} bytes`)
        bytes += size
      }
      if (bytes > maxResultBytes) throw new TooLarge(`The result is larger than ${maxResultBytes} bytes; select fewer rows or columns`)
      rows.push(row)
    }
  } catch (error) {
    if (writes && db.inTransaction) db.exec('ROLLBACK TO tenantry_capped; RELEASE tenantry_capped')
    throw error
  }
  if (writes) db.exec('RELEASE tenantry_capped')
  const lastInsertRowid = writes ? (db.prepare('SELECT last_insert_rowid()').pluck().get() as bigint) : null
  return {
    id: request.id,
    ok: true,
    inTransaction: db.inTransaction,
    columns,
    rows: request.wantRows !== false ? rows : [],
    rowsAffected: writes ? rows.length : 0,
    lastInsertRowid,
  }
}

/**
 * A statement read a batch at a time (Hrana cursors): better-sqlite3's iterator steps SQLite
 * one row at a time, and stops between batches until the parent asks for the next, so this
 * process never holds more than one batch of a result of any size. The statement's read
 * snapshot stays open meanwhile; the parent bounds how long (the statement's deadline).
 */
interface OpenCursor {
  rows: Iterator<RawValue[]>
  caps: StatementCaps
  batch: CursorBatch
}
/** By session: a session runs one statement at a time, so it has one cursor at most. */
const cursors = new Map<number, OpenCursor>()

function openCursor(request: Extract<ChildRequest, { op: 'cursor' }>): ChildResponse {
  const db = connectionFor(request)
  const readOnly = request.open?.readOnly ?? db.readonly
  const bindings: Bindings = bindParameters(request.sql, request.args, request.namedArgs)
  const statement = prepareGuarded(db, request.sql, bindings, readOnly)
  // Only a statement that reads and writes nothing streams. One that writes (`INSERT …
  // RETURNING`) runs to its end under the caps, in its savepoint, as `execute` runs it: a cap
  // reached undoes its changes, where a write streamed half-way could not be.
  if (!statement.reader || !statement.readonly) return { ...runStatement(db, request, statement, bindings), done: true }
  const columns = statement.columns().map((c) => ({ name: c.name, type: c.type }))
  const rows = (statement.raw(true).iterate(...bindings) as IterableIterator<RawValue[]>)[Symbol.iterator]()
  cursors.set(request.session, { rows, caps: request.caps, batch: request.batch })
  return { ...nextBatch(request, db), columns }
}

/** The next rows of the session's cursor, up to its batch size; the cursor closes at its end or on a failure. */
function nextBatch(request: { id: number; session: number }, db: Database.Database | undefined): Extract<ChildResponse, { ok: true }> {
  const cursor = cursors.get(request.session)
  // A parent that asks for more than there is: its bug, answered as INTERNAL.
  if (!cursor || !db) throw new Error(`No cursor open for session ${request.session}`)
  const rows: RawValue[][] = []
  let bytes = 0
  let done = false
  try {
    while (rows.length < cursor.batch.maxRows && bytes < cursor.batch.maxBytes) {
      const next = cursor.rows.next()
      if (next.done) {
        done = true
        break
      }
      for (const value of next.value) {
        const size = sizeOf(value)
        if (size > cursor.caps.maxValueBytes) throw new TooLarge(`A value of the result is larger than ${cursor.caps.maxValueBytes} bytes`)
        bytes += size
      }
      rows.push(next.value)
    }
  } catch (error) {
    closeCursor(request.session)
    throw error
  }
  if (done) cursors.delete(request.session)
  return { ...succeeded(request, db), rows, done }
}

/** Stops the session's cursor: SQLite resets the statement and lets its read snapshot go. */
function closeCursor(session: number): void {
  const cursor = cursors.get(session)
  cursors.delete(session)
  cursor?.rows.return?.()
}

/** A success that carries nothing but the connection's transaction state. */
function succeeded(request: { id: number }, db: Database.Database): Extract<ChildResponse, { ok: true }> {
  return { id: request.id, ok: true, inTransaction: db.inTransaction, columns: [], rows: [], rowsAffected: 0, lastInsertRowid: null }
}

/**
 * A script (Hrana's `sequence`, libSQL's `executeMultiple`), split into statements where
 * SQLite's `sqlite3_complete` would (sql-text.ts). Every statement passes the guard before the
 * first runs, so a refused one (DDL, a write on a read-only token) leaves nothing applied; the
 * schema cannot change in between, since the guard refuses every schema change. Then they run
 * in order, each on its own like `sqlite3_exec` (no implicit transaction), until one fails.
 * Parameters have no values here: SQLite binds NULL.
 */
function sequence(db: Database.Database, request: Extract<ChildRequest, { op: 'execute' }>, readOnly: boolean): ChildResponse {
  const statements = splitStatements(request.sql).map((sql) => {
    const bindings = bindParameters(sql, [], undefined, { unboundIsNull: true })
    return { sql, statement: prepareGuarded(db, sql, bindings, readOnly), bindings }
  })
  for (const { sql, statement, bindings } of statements) {
    endReadTransaction(db)
    statement.run(...bindings)
    afterStatement(db, sql)
  }
  endReadTransaction(db)
  return succeeded(request, db)
}

/** Compiles one statement (through the guard: compiling a PRAGMA applies it) and reports it, running nothing. */
function describe(db: Database.Database, request: Extract<ChildRequest, { op: 'execute' }>): ChildResponse {
  // Whether it would write is reported, not refused: nothing runs, and the connection stays read-only.
  const statement = prepareGuarded(db, request.sql, bindParameters(request.sql, [], undefined, { unboundIsNull: true }), false)
  return {
    ...succeeded(request, db),
    description: {
      params: sqlParameters(request.sql),
      columns: statement.reader ? statement.columns().map((c) => ({ name: c.name, type: c.type })) : [],
      // The guard refuses EXPLAIN, so a described statement never is one.
      isExplain: false,
      isReadonly: statement.readonly,
    },
  }
}

function failure(request: ChildRequest, error: unknown): ChildResponse {
  const inTransaction = connections.get(request.session)?.inTransaction ?? false
  const base = { id: request.id, ok: false as const, inTransaction }
  if (error instanceof TooLarge) return { ...base, kind: 'too-large', code: 'RESULT_TOO_LARGE', message: error.message }
  if (error instanceof StatementRefused) return { ...base, kind: 'statement', code: error.code, message: error.message }
  const e = error as { code?: unknown; message?: unknown; name?: string }
  if (e?.name === 'SqliteError' && typeof e.code === 'string') {
    if (e.code === 'SQLITE_NOMEM' || e.code === 'SQLITE_TOOBIG') return { ...base, kind: 'memory', code: e.code, message: String(e.message) }
    if (e.code.startsWith('SQLITE_BUSY') || e.code.startsWith('SQLITE_LOCKED')) return { ...base, kind: 'busy', code: e.code, message: String(e.message) }
    return { ...base, kind: 'statement', code: e.code, message: String(e.message) }
  }
  if (e instanceof BindingError) return { ...base, kind: 'statement', code: 'ARGS_INVALID', message: String(e.message) }
  // Bad bindings (a wrong count, an unnamed value for a named parameter): the input's fault.
  if (e instanceof RangeError || e instanceof TypeError) return { ...base, kind: 'statement', code: 'SQL_INPUT_ERROR', message: String(e.message) }
  // V8 out of memory inside the heap limit also lands here as a RangeError on big strings; anything else is a bug.
  return { ...base, kind: 'statement', code: 'INTERNAL', message: String(e?.message ?? error) }
}

function handle(request: ChildRequest): ChildResponse {
  try {
    if (request.op === 'close') {
      closeCursor(request.session)
      const db = connections.get(request.session)
      connections.delete(request.session)
      // Closing inside a transaction rolls it back.
      db?.close()
      return { id: request.id, ok: true, inTransaction: false, columns: [], rows: [], rowsAffected: 0, lastInsertRowid: null }
    }
    const response = run(request)
    // A session whose cursor is still open keeps its connection: the cursor reads on it.
    if (request.closeIfIdle && !response.inTransaction && !cursors.has(request.session)) closeSession(request.session)
    return response
  } catch (error) {
    const response = failure(request, error)
    if (request.op !== 'close' && request.closeIfIdle && !response.inTransaction && !cursors.has(request.session)) closeSession(request.session)
    return response
  }
}

function run(request: Exclude<ChildRequest, { op: 'close' }>): ChildResponse {
  switch (request.op) {
    case 'execute':
      return execute(request)
    case 'cursor':
      return openCursor(request)
    case 'cursor-next':
      return nextBatch(request, connections.get(request.session))
    case 'cursor-close': {
      closeCursor(request.session)
      const db = connections.get(request.session)
      return db ? succeeded(request, db) : { id: request.id, ok: true, inTransaction: false, columns: [], rows: [], rowsAffected: 0, lastInsertRowid: null }
    }
  }
}

/** Lets go of a session's connection outside a transaction: kept as a spare, or closed. */
function closeSession(session: number): void {
  const db = connections.get(session)
  connections.delete(session)
  if (!db) return
  const key = spareKey(db.name, db.readonly)
  if (db.inTransaction || spare.has(key)) return void db.close()
  endReadTransaction(db)
  if (spare.size >= MAX_SPARE) {
    const oldest = spare.keys().next().value!
    spare.get(oldest)!.close()
    spare.delete(oldest)
  }
  spare.set(key, db)
}

process.on('message', (request: ChildRequest) => {
  process.send!(handle(request))
})
// The parent is gone (or let go of this process): nothing here is anyone's any more.
process.on('disconnect', () => process.exit(0))
// 'disconnect' needs this thread, which a never-ending statement holds inside SQLite's C code.
// If the parent dies then (kill -9), a watchdog thread, which runs while this one is blocked,
// sees this process handed to another parent and ends it, so no orphan burns a core forever.
// Ready only once the watchdog runs: the parent measures the process then, watchdog included,
// and sets its memory limit on top of that before the first statement.
const watchdog = new Worker(
  `const parent = ${process.ppid}
  setInterval(() => { if (process.ppid !== parent) process.kill(process.pid, 'SIGKILL') }, 500)`,
  { eval: true },
)
watchdog.unref()
watchdog.once('error', () => process.exit(1))
watchdog.once('online', () => process.send!({ ready: true }))
