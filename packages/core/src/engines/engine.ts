import type { CompiledQuery, Kysely, QueryResult } from 'kysely'
import type { HandleMigrationOutcome, MigrationSetSource } from '../migrations/migration-set.js'

/** How a tenant's rows are kept apart. See docs/architecture.md. */
export type Isolation = 'row' | 'schema' | 'database'

/** The engines Tenantry ships with. */
export type BuiltInEngineName = 'sqlite' | 'postgres'

/**
 * The database software behind a data source: a built-in, or any name given to
 * `registerEngine`. (`string & {}` keeps the built-ins in editors' completions.)
 */
export type EngineName = BuiltInEngineName | (string & {})

/** Where one tenant lives inside a data source: its isolation and the engine-specific locator. */
export interface EnginePlacement {
  readonly tenantId: string
  readonly isolation: Isolation
  /** File name, schema name or database name: always derived from the tenant id, never from input. */
  readonly locator: string
}

/** Who a handle connects as. */
export type EngineRole = 'app' | 'admin'

/** An open connection (or pool) to one tenant's data. */
export interface EngineHandle {
  /** The engine behind the handle, for migrations that must differ between engines. */
  readonly engine: EngineName
  /** Kysely on the tenant's data. The router wraps it before app code sees it. */
  readonly db: Kysely<any>
  /** The schema holding the tenant's tables (and migration table) where it is not the default one. */
  readonly schema?: string
  /**
   * The tenant's tables are shared with other tenants (row isolation): a migration applied
   * through one tenant's handle is applied for all of them.
   * @default false
   */
  readonly shared?: boolean
  /**
   * Runs after each migration, inside its transaction: row isolation turns the tables the
   * migration made into tenant-keyed, RLS-protected ones here.
   */
  afterEachMigration?(db: Kysely<any>): Promise<void>
  /**
   * Runs a multi-statement SQL script (a `.sql` migration) on `db`, which is this handle's
   * Kysely or a transaction of it, so the script joins that transaction.
   */
  execScript(db: Kysely<any>, script: string): Promise<void>
  /** Closes the connection(s). Kysely waits for a running query before it lets go. */
  close(): Promise<void>
  /**
   * A runner for a query compiled on `db` (its plugins applied), holding its statement
   * prepared on this handle's connection, under the same write gate as `db`
   * (`tenantry.prepare` keeps one per handle and query). Absent: the router runs the query
   * through `db`.
   */
  prepareCompiled?(query: CompiledQuery): CompiledRunner
}

/**
 * Runs a prepared query with these parameters. `first`: one row is enough. A result (not a
 * promise) when it ran at once: the caller saves promise hops.
 */
export type CompiledRunner = (parameters: readonly unknown[], first: boolean) => QueryResult<unknown> | Promise<QueryResult<unknown>>

/** A sealed, pre-migrated copy that new tenants are created from. */
export interface EngineTemplate {
  /** Identifies the migration set the template holds (a content hash). */
  readonly key: string
}

/** One finding of an engine's `doctor`. `fail` means an isolation guarantee does not hold (or cannot be checked). */
export interface EngineCheck {
  /** Short and stable, e.g. `app role attributes`: tools and tests match on it. */
  name: string
  status: 'ok' | 'warn' | 'fail'
  /** What was found, in a sentence; never a secret. */
  detail: string
}

/** A tenant placed on the data source being checked, as `tenantry doctor` sees it in the catalog. */
export interface DoctorTenant {
  readonly id: string
  readonly slug: string
  readonly placement: EnginePlacement
  /** The tenant's storage must exist: it is ready, suspended, moving, or deleted with its data kept. */
  readonly stored: boolean
  /** Purged: nothing of it may remain, and storage found for it is stray. */
  readonly purged: boolean
}

/** What `tenantry doctor` hands an engine. */
export interface EngineDoctorContext {
  /** Every tenant ever placed on this data source, purged ones included. */
  readonly tenants: readonly DoctorTenant[]
}

/** A login that reads one tenant and nothing else, for `psql`, BI tools and integrations. */
export interface ReadOnlyCredentials {
  /** The database role (or user) the URL logs in as. */
  role: string
  /** A connection URL, with the password, that the engine's own clients accept. */
  url: string
}

/**
 * Read-only access: a database login per tenant that can read that tenant's data and
 * nothing else, confined by the database's own privileges.
 */
export interface ReadOnlyAccess {
  /**
   * The isolations whose boundary privileges can enforce. Others are refused with
   * `UNSUPPORTED_PLACEMENT` (row isolation, for one, rests on a setting the SQL could change).
   */
  readonly isolations: readonly Isolation[]
  /** Creates (or brings up to date) the tenant's read-only login. Calling it again returns the same credentials. */
  grant(placement: EnginePlacement): Promise<ReadOnlyCredentials>
  /** Removes the tenant's read-only login and everything granted to it. Idempotent. */
  revoke(placement: EnginePlacement): Promise<void>
}

/** Options of `RawSessions.open`. */
export interface RawSessionOptions {
  /** The session may read only, enforced by the database connection itself, not by parsing SQL. */
  readOnly: boolean
  /**
   * Longest one statement may run before it is stopped with `STATEMENT_TIMEOUT`: a per-tenant
   * override of the data source's setting.
   * @default the data source's `rawSql.statementTimeoutMs`
   */
  statementTimeoutMs?: number
  /**
   * Longest a transaction may stay open, from its `BEGIN`, before it is rolled back with
   * `TRANSACTION_TIMEOUT`: a per-tenant override of the data source's setting.
   * @default the data source's `rawSql.transactionTimeoutMs`
   */
  transactionTimeoutMs?: number
  /**
   * Rows one statement may return, at most the data source's own cap.
   * @default the data source's `rawSql.maxRows`
   */
  maxRows?: number
  /**
   * Statements (an open transaction counting as one) the tenant may run at once: a per-tenant
   * override of the data source's share. Give every session of one tenant the same value.
   * @default the data source's `rawSql.maxStatementsPerTenant`
   */
  maxConcurrentStatements?: number
}

/** A value bound to, or read from, a raw SQL statement. Integers are bigints, so 64-bit values stay exact. */
export type RawSqlValue = null | bigint | number | string | Uint8Array

/** One statement of a raw session. */
export interface RawStatement {
  sql: string
  /** Positional parameters. */
  args?: RawSqlValue[]
  /**
   * Named parameters, by name with or without its `:`, `@` or `$` (`1` or `?1` for `?1`). Both
   * kinds may be mixed: positional value `i` binds parameter index `i + 1`, whatever its form,
   * as SQLite numbers them.
   */
  namedArgs?: Record<string, RawSqlValue>
  /** Return the rows (or only count them). @default true */
  wantRows?: boolean
}

/** What a statement returned. */
export interface RawStatementSuccess {
  ok: true
  columns: Array<{ name: string; type: string | null }>
  rows: RawSqlValue[][]
  /** Rows inserted, updated or deleted. */
  rowsAffected: number
  /** The rowid of the last insert, when the statement wrote. */
  lastInsertRowid: bigint | null
}

/** A statement compiled but not run (`describe`). */
export interface RawStatementDescription {
  ok: true
  /** Parameter names by index: `:a`, `?2`, or `null` for a bare `?`. */
  params: Array<string | null>
  /** The result's columns and declared types (none for a statement that returns no rows). */
  columns: Array<{ name: string; type: string | null }>
  isExplain: boolean
  /** SQLite's `sqlite3_stmt_readonly`: the statement would not write. */
  isReadonly: boolean
}

/**
 * A statement the SQL's own rules refused (the statement guard, a constraint, a syntax error):
 * the session goes on. `code` is SQLite's (`SQLITE_CONSTRAINT_…`) or the guard's
 * (`SQL_FORBIDDEN`, `READ_ONLY`, `SQL_INPUT_ERROR`).
 */
export interface RawStatementFailure {
  ok: false
  code: string
  message: string
}

/**
 * A session on one tenant's SQLite database, for SQL a client sends as text. Its statements
 * run off the caller's event loop, each under a deadline, and every statement passes the
 * statement guard (no schema change, nothing outside the tenant's file). A statement the SQL
 * refuses resolves to a `RawStatementFailure`; what ends the session rejects with a
 * `TenantryError`:
 * - `STATEMENT_TIMEOUT`: the statement ran past its deadline and was stopped;
 * - `TRANSACTION_TIMEOUT`: the transaction passed its deadline and was rolled back;
 * - `RESULT_TOO_LARGE`: a row, byte, value or memory cap was reached (nothing was written);
 * - `DATABASE_BUSY`: another connection holds the lock, or every executor is busy: retry soon;
 * - `CONCURRENCY_LIMITED`: the tenant runs as many statements at once as it may.
 *
 * Whoever opened a session closes it; closing rolls back an open transaction.
 */
export interface SqliteRawSession {
  readonly dialect: 'sqlite'
  /** A transaction is open (after `BEGIN`, until `COMMIT` or `ROLLBACK`). */
  readonly inTransaction: boolean
  /** The session ended (closed, timed out, or its executor stopped): every later statement rejects. */
  readonly closed: boolean
  /** Runs one statement. One at a time: a session is a single connection. */
  execute(statement: RawStatement): Promise<RawStatementSuccess | RawStatementFailure>
  /**
   * Runs a script of several statements, split where SQLite would: every one passes the
   * statement guard before the first runs, then they run in order (no implicit transaction)
   * until one fails, under one statement deadline. No rows come back.
   */
  sequence(sql: string): Promise<{ ok: true } | RawStatementFailure>
  /** Compiles one statement through the guard and describes it, running nothing. */
  describe(sql: string): Promise<RawStatementDescription | RawStatementFailure>
  /**
   * Runs one statement as a cursor: its rows are read a batch at a time, whatever their number
   * (no `maxRows` or result-size cap; the value cap holds), so neither side holds more than a
   * batch. The session runs nothing else until the cursor ends or is closed. A statement that
   * writes is not streamed: it runs as `execute` does, within the caps, and comes in one batch.
   */
  cursor(statement: Omit<RawStatement, 'wantRows'>): Promise<RawCursor | RawStatementFailure>
  /** Ends the session, rolling back an open transaction. Idempotent. */
  close(): Promise<void>
}

/**
 * A statement whose rows are read a batch at a time (`SqliteRawSession.cursor`). It holds its
 * executor process, and a place of its tenant's statement share, until it ends or is closed,
 * and for no longer than the statement deadline (the transaction's, inside one): past it, the
 * session ends with `STATEMENT_TIMEOUT` (or `TRANSACTION_TIMEOUT`) and `signal` aborts, so that
 * whoever waits on a client that stopped reading can let go too.
 */
export interface RawCursor {
  readonly ok: true
  readonly columns: Array<{ name: string; type: string | null }>
  /**
   * The next rows, with `done` once the statement gave its last. A SQL error met part-way
   * resolves to a failure and ends the cursor; what ends the session rejects (as `execute`).
   */
  next(): Promise<{ ok: true; rows: RawSqlValue[][]; done: boolean } | RawStatementFailure>
  /** Rows written (only a statement that writes, which comes in one batch). */
  readonly rowsAffected: number
  readonly lastInsertRowid: bigint | null
  /** Aborted, with the reason, when the cursor ends other than by `next` or `close`. */
  readonly signal: AbortSignal
  /** Stops the statement before its end and frees the executor process. Idempotent. */
  close(): Promise<void>
}

/** A raw session, tagged by the SQL dialect its statements are written in. */
export type RawSession = SqliteRawSession

/**
 * Raw sessions: a connection on exactly one tenant's data for SQL a client sends as text
 * (SQL-over-HTTP), where the database itself confines what the SQL can reach.
 */
export interface RawSessions {
  /** The isolations where a connection confines raw SQL to the tenant; others are refused with `UNSUPPORTED_PLACEMENT`. */
  readonly isolations: readonly Isolation[]
  /** Opens a session on the tenant's storage, which must exist. */
  open(placement: EnginePlacement, options: RawSessionOptions): Promise<RawSession>
  /**
   * Ends every open session and stops what runs them (executor processes). Opening a session
   * afterwards starts afresh. The engine's `close` does this too.
   * @default nothing to stop
   */
  close?(): Promise<void>
}

/** Options of `BoundedQueries.run` (and `tenantry.bounded`). */
export interface BoundedQueryOptions {
  /**
   * `fn` only reads: the connection (SQLite) or transaction (Postgres) is read-only, enforced
   * by the database. @default false
   */
  readOnly?: boolean
  /**
   * Longest one statement may run before it is stopped with `STATEMENT_TIMEOUT`: a per-tenant
   * override of the data source's setting.
   * @default the data source's `bounded.statementTimeoutMs`, else 2000
   */
  statementTimeoutMs?: number
  /**
   * Longest a transaction `fn` opens may stay open (SQLite's executor rolls it back past it,
   * `TRANSACTION_TIMEOUT`): for a long write in one transaction, such as a claim's commit.
   * @default the data source's `rawSql.transactionTimeoutMs` (10 s)
   */
  transactionTimeoutMs?: number
}

/** What `BoundedQueries.run` is handed about the tenant in context. */
export interface BoundedQueryTarget {
  readonly placement: EnginePlacement
  /** The tenant's in-process handle (`tenantry.db()`), for engines whose driver is already asynchronous. */
  db(): Kysely<any>
}

/**
 * Bounded queries: ordinary Kysely queries that can neither hold the caller's event loop nor
 * run past a deadline, for work whose cost a client controls (the server's data API: scans,
 * searches, writes that may wait on a lock). SQLite runs them in the executor's processes
 * (like raw sessions, under the statement guard); Postgres runs them in a transaction whose
 * `statement_timeout` and `lock_timeout` are set for that transaction only. What ends them
 * rejects with a `TenantryError`: `STATEMENT_TIMEOUT`, `TRANSACTION_TIMEOUT`,
 * `DATABASE_BUSY` (a lock held elsewhere, every executor busy), `RESULT_TOO_LARGE`.
 */
export interface BoundedQueries {
  /**
   * Runs `fn` on a Kysely instance bound to the tenant's data and to these deadlines; the
   * instance is only valid until `fn` settles. `fn`'s own `transaction()` calls run on the same
   * connection.
   */
  run<T>(target: BoundedQueryTarget, options: BoundedQueryOptions, fn: (db: Kysely<any>) => Promise<T>): Promise<T>
}

/**
 * A tenant's storage on an engine: measured, and limited by the storage quota. Where the
 * database itself enforces the limit (`enforced`: SQLite's `max_page_count` on every connection
 * that can write the tenant's file) a write past it fails with `QUOTA_EXCEEDED` and writes
 * nothing; elsewhere (Postgres) callers compare `size` with the quota before writing.
 */
export interface TenantStorage {
  readonly enforced: boolean
  /**
   * The limit for connections opened from now on, applied at once to the ones open; `null`
   * lifts it. The router sets it whenever it resolves the tenant.
   */
  setLimit(tenantId: string, bytes: number | null): void
  /** The tenant's storage in bytes (approximate under row isolation). */
  size(placement: EnginePlacement): Promise<number>
}

/** Where an engine counts each statement it ran for a tenant (see `UsageMeter`). */
export type StatementSink = (tenantId: string, usage: { rowsRead: number; rowsWritten: number; ms: number }) => void

/** One table's rows, as `exportRows` yields and `importRows` takes them: engine-neutral values. */
export interface TenantRows {
  readonly table: string
  readonly rows: ReadonlyArray<Record<string, unknown>>
}

/** Options of `EngineBackups.restore`. */
export interface EngineRestoreOptions {
  /** The tenant the backup was taken of, when it is not the one restored into (restoring as a new tenant). */
  from?: EnginePlacement
  /** @internal Fault tests: fail after the restored data is written, before it commits. */
  failBeforeCommit?: boolean
  /** Hears how far the restore has come. */
  onProgress?: (progress: BackupProgress) => void
}

/**
 * How far a backup or a restore of one tenant has come: the step it is in (e.g. `copy`, `dump`,
 * `rows`, `checksum`) and, where it counts something, how much of it is done (in `unit`s).
 */
export interface BackupProgress {
  step: string
  /** The table being read or written, in a step that goes table by table. */
  table?: string
  done?: number
  /** All of the step's work, where it is known. */
  total?: number
  /** What `done` and `total` count: `pages`, `tables`, `rows`, `bytes`. */
  unit?: string
}

/**
 * Backups of one tenant's storage in the engine's own format, taken while the tenant serves,
 * and restored so that readers see the old data until the restored data commits in one step.
 */
export interface EngineBackups {
  /** The isolations these backups cover; others are backed up row by row (the export codec). */
  readonly isolations: readonly Isolation[]
  /** How a backup is taken, for the catalog and operators (e.g. `sqlite-backup-api`, `pg_dump`). */
  readonly method: string
  /** Writes a consistent copy of the tenant's storage (schema, rows, migration records) to `destination`, which must not exist. */
  dump(placement: EnginePlacement, destination: string, options?: { onProgress?: (progress: BackupProgress) => void }): Promise<void>
  /**
   * Replaces the tenant's storage, which exists, with what `source` holds, atomically: a
   * failure part-way (or a crash) leaves the old data serving. `from`: the tenant the backup
   * was taken of, when it is another one (restoring as a new tenant).
   */
  restore(placement: EnginePlacement, source: string, options?: EngineRestoreOptions): Promise<void>
}

/**
 * App-level shared tables (seed 002's `public` schema): one place on the data source, outside
 * every tenant, where the app's shared migrations make tables that tenants' own connections
 * may read where the app says so.
 */
export interface SharedTables {
  /** Where the shared tables are, for messages (e.g. `schema public of database app`). */
  readonly location: string
  /** An admin handle on the shared tables, for the shared migrations. */
  open(): EngineHandle
  /**
   * Lets tenants' connections (and the app role) `SELECT` exactly `tables` of the shared
   * schema, and do nothing else there: a table left out is taken back. Tenants made later get
   * the same. Rejects with `INVALID_CONFIG` naming a table that does not exist. Idempotent.
   */
  grantReadable(tables: readonly string[]): Promise<void>
}

/**
 * One engine serving one data source. Every engine has the same few required operations,
 * so a reader who knows one knows all; everything else is an optional capability that
 * callers ask for by name (`engine.readOnlyAccess?.…`), never by the engine's class.
 *
 * Engines are found through the registry (`registerEngine`), which builds them from the
 * catalog's data source records.
 */
export interface DatabaseEngine {
  readonly name: EngineName
  /** The isolation kinds this engine offers on this data source. */
  readonly isolations: readonly Isolation[]
  /**
   * The locator for a new tenant's data, derived from its id alone. Throws
   * `UNSUPPORTED_PLACEMENT` for an isolation not in `isolations`.
   */
  locatorFor(tenantId: string, isolation: Isolation): string
  /**
   * Creates the tenant's empty storage. Fails if it exists. Every method taking a placement
   * refuses (`INVALID_IDENTIFIER`) a locator that `locatorFor` would not have derived.
   */
  create(placement: EnginePlacement): Promise<void>
  /**
   * Returns the template for `key`, building it with `migrate` when missing, or `undefined`
   * where this engine cannot clone for `isolation`: tenants are then created by replaying migrations.
   * @default undefined: no templates; every tenant replays the migrations.
   */
  ensureTemplate?(
    key: string,
    isolation: Isolation,
    migrate: (handle: EngineHandle) => Promise<void>,
  ): Promise<EngineTemplate | undefined>
  /**
   * Creates the tenant's storage as a consistent copy of `template`. Fails if it exists.
   * Offered together with `ensureTemplate`.
   * @default undefined
   */
  createFromTemplate?(placement: EnginePlacement, template: EngineTemplate): Promise<void>
  /** Whether the tenant's storage exists. */
  exists(placement: EnginePlacement): Promise<boolean>
  /**
   * Opens the tenant's storage. Synchronous so that `tenantry.db()` is; engines that dial out
   * connect lazily. `app` (the default) is what app code gets: on engines with roles, a
   * least-privilege role that owns nothing. `admin` runs DDL: migrations and provisioning.
   */
  open(placement: EnginePlacement, role?: EngineRole): EngineHandle
  /**
   * Brings the tenant's storage to the latest migration of the set `source` describes, off the
   * event loop's thread (SQLite: in a worker thread, so a fan-out uses every core and the
   * process keeps serving). Resolves like `migrateHandle`, the migrator's error included.
   * `parallelism`: how many tenants the caller migrates at once (a fan-out's concurrency).
   * @default undefined: the fan-out migrates through `open(placement, 'admin')` in this thread.
   */
  migrateOffThread?(placement: EnginePlacement, source: MigrationSetSource, options?: { parallelism?: number }): Promise<HandleMigrationOutcome>
  /** Removes the tenant's storage and any partial leftovers of a crashed create. Idempotent. */
  drop(placement: EnginePlacement): Promise<void>
  /** Releases engine-wide resources. */
  close(): Promise<void>

  /**
   * Checks that the data source answers, before it is recorded (`tenantry data-source add`)
   * and on demand (`tenantry data-source test`). Resolves to what answered, e.g.
   * `PostgreSQL 16.4`; rejects with the reason it cannot connect.
   * @default undefined: nothing to connect to; the data source is taken as it is.
   */
  test?(): Promise<string>
  /**
   * What the data source's credentials must be allowed to do, one line each, for the
   * operator setting it up (e.g. `CREATEDB: a database per tenant (database isolation)`).
   * @default []
   */
  readonly requiredPrivileges?: readonly string[]
  /**
   * `tenantry doctor`'s checks of this data source: that what the catalog promises holds in
   * the database itself. Read-only. Rejects only when the data source cannot be inspected,
   * which doctor reports as a failure.
   * @default undefined: doctor warns that it has no checks for the engine.
   */
  doctor?(context: EngineDoctorContext): Promise<EngineCheck[]>
  /**
   * Removes what interrupted writes left on this data source that no tenant owns or will
   * finish (a SQLite create's staging file whose tenant is not being created), and returns
   * what it removed (`tenantry doctor --fix`, and at server start). `context.creating`: the
   * tenants whose create may still be running; their leftovers are theirs.
   * @default undefined: nothing to remove.
   */
  removeLeftovers?(context: EngineDoctorContext & { creating: ReadonlySet<string> }): Promise<string[]>
  /**
   * Per-tenant read-only logins (`tenantry.readOnlyAccess`).
   * @default undefined: refused with `UNSUPPORTED_PLACEMENT`.
   */
  readonly readOnlyAccess?: ReadOnlyAccess
  /**
   * Raw sessions for SQL-over-HTTP.
   * @default undefined: SQL-over-HTTP is not offered for this engine's tenants.
   */
  readonly rawSession?: RawSessions
  /**
   * Bounded queries for `tenantry.bounded` (the server's data API).
   * @default undefined: `tenantry.bounded` runs `fn` on the in-process handle (`tenantry.db()`)
   * with no deadline; on an engine with a synchronous driver a slow query then holds the event loop.
   */
  readonly boundedQueries?: BoundedQueries
  /**
   * Tenants' storage: its size, and a per-tenant limit (the storage quota).
   * @default undefined: storage is neither measured nor limited on this engine.
   */
  readonly storage?: TenantStorage
  /**
   * Hands the engine where to count statements it runs outside the router's handles (SQLite's
   * executor processes), for usage metering. Handles the router opens are metered by the router.
   */
  meterWith?(sink: StatementSink): void
  /**
   * Writes a consistent copy of the tenant's storage (schema, rows and migration records) to
   * the file `destination`, which must not exist, while the tenant keeps serving. The copy
   * is in the engine's own format: `copyIn` of the same engine reads it back.
   * @default undefined: copies are not offered.
   */
  copyOut?(placement: EnginePlacement, destination: string): Promise<void>
  /**
   * Creates the tenant's storage from a file `copyOut` of this engine wrote. Fails if the
   * tenant's storage exists; a failed copy-in leaves nothing behind.
   * @default undefined: copies are not offered.
   */
  copyIn?(placement: EnginePlacement, source: string): Promise<void>
  /**
   * App-level shared tables and their migrations (`migrations.shared`).
   * @default undefined: shared migrations are refused on this data source (`INVALID_CONFIG`).
   */
  readonly sharedTables?: SharedTables
  /**
   * The tenant's rows, table by table and in batches, as engine-neutral values, without the
   * migration tables: for moving a tenant between engines or isolations.
   * @default undefined: row export is not offered.
   */
  exportRows?(placement: EnginePlacement): AsyncIterable<TenantRows>
  /**
   * Inserts rows that any engine's `exportRows` yielded into the tenant's tables, which its
   * migrations made, in one transaction.
   * @default undefined: row import is not offered.
   */
  importRows?(placement: EnginePlacement, rows: AsyncIterable<TenantRows>): Promise<void>
  /**
   * Per-tenant backups in the engine's own format (`tenantry.tenants.backup`).
   * @default undefined: tenants are backed up row by row with the export codec.
   */
  readonly backups?: EngineBackups
  /**
   * Adopting storage that exists already (a schema made outside Tenantry) as a tenant's
   * (`tenantry.tenants.adopt`).
   * @default undefined: only SQLite files are adopted, by copy.
   */
  readonly adoption?: EngineAdoption
}

/** Moves existing storage in as a tenant's, and back out when the adopt fails. */
export interface EngineAdoption {
  /** The isolations whose storage can be adopted (Postgres: `schema`). */
  readonly isolations: readonly Isolation[]
  /**
   * Moves `existing` (a schema name) in as the tenant's storage at its locator, owned and
   * granted exactly as a provisioned tenant's. Rejects, changing nothing, when it is missing.
   */
  adopt(placement: EnginePlacement, existing: string): Promise<void>
  /** Undoes `adopt`: drops the tables in `created`, moves the storage back to `existing`. Idempotent. */
  release(placement: EnginePlacement, existing: string, created: readonly string[]): Promise<void>
}
