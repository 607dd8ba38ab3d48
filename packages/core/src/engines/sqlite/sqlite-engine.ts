import { chmodSync, constants as fsConstants, copyFileSync, existsSync, rmSync, statSync } from 'node:fs'
import { chmod, copyFile, link, mkdir, readdir, rm, stat, unlink } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import Database from 'better-sqlite3'
import { Kysely, type CompiledQuery, type QueryResult } from 'kysely'
import { TenantryError } from '../../errors.js'
import { assertTenantId, assertTemplateKey } from '../../identifiers.js'
import { SILENT_LOGGER, type Logger } from '../../logger.js'
import { isProcessAlive } from '../../processes.js'
import { SqliteExecutor, type SqliteExecutorOptions, type SqliteExecutorStats } from '../../executor/sqlite-executor.js'
import { ExecutorDialect } from '../../executor/executor-dialect.js'
import { boundedTimeout, type BoundedConfig } from '../../bounded.js'
import type {
  BoundedQueries,
  CompiledRunner,
  DatabaseEngine,
  EngineCheck,
  EngineDoctorContext,
  EngineHandle,
  EnginePlacement,
  EngineRole,
  EngineTemplate,
  Isolation,
  RawSessionOptions,
  RawSessions,
  SqliteRawSession,
  StatementSink,
  TenantStorage,
  EngineBackups,
} from '../engine.js'
import { resultOfRun, StatementCache, TransactionalSqliteDialect } from './sqlite-dialect.js'
import { gatedDialect, translateMovingError, writeGatesSet } from '../../lifecycle/write-gate.js'
import { checkSqlite, removeSqliteLeftovers } from './sqlite-doctor.js'
import { backupSqliteFile, restoreSqliteFile } from './sqlite-backup.js'
import { checkpointOffThread, type CheckpointMode, type CheckpointOutcome } from './sqlite-checkpoint.js'
import { SqliteMigrationPool } from './sqlite-migration-pool.js'
import type { HandleMigrationOutcome, MigrationSetSource } from '../../migrations/migration-set.js'
import { BUILD_FILE_PATTERN, SIDE_FILE_SUFFIXES, TEMPLATES_DIRECTORY, templateFileName, tenantFileName } from './sqlite-names.js'

/**
 * A write-ahead log larger than this is checkpointed in a worker thread before its connection
 * closes (see the handle's `close`). SQLite's own automatic checkpoints keep a log near 1000
 * pages (4 MiB) at most; one larger has been held back.
 */
export const OFF_THREAD_CLOSE_BYTES = 1024 * 1024

/**
 * A sealed template up to this size is copied to a new tenant's file on the calling thread: a
 * copy of tens of KiB (a schema with no data) takes ~50 µs there, against ~140 µs through the
 * thread pool's two round trips (copy, chmod). A larger one (seeded reference data) is copied
 * off the thread, so a create never holds the event loop for long.
 */
export const SYNC_TEMPLATE_COPY_BYTES = 256 * 1024

/** SQLite `synchronous` levels. See https://sqlite.org/pragma.html#pragma_synchronous */
export type SqliteSynchronous = 'OFF' | 'NORMAL' | 'FULL' | 'EXTRA'

export interface SqliteEngineOptions {
  /** The directory holding one file per tenant. Created when missing. */
  directory: string
  /**
   * Durability of each commit. In WAL mode `NORMAL` never corrupts a database and
   * loses no commit when the *process* dies; a power cut or OS crash may roll back
   * the last transactions before the WAL was synced. `FULL` syncs the WAL on every
   * commit and survives power loss too, at the cost of one fsync per commit.
   * @default 'NORMAL'
   */
  synchronous?: SqliteSynchronous
  /** How long a writer waits for another connection's lock before SQLITE_BUSY. @default 5000 */
  busyTimeoutMs?: number
  /**
   * How raw SQL (SQL-over-HTTP) runs: in executor processes, never on the caller's event loop,
   * under deadlines, caps and per-tenant shares (see `SqliteExecutorOptions` for each default).
   */
  rawSql?: Omit<SqliteExecutorOptions, 'logger'>
  /** Deadlines of `tenantry.bounded` (the server's data API), which runs in the same executor processes. @default { statementTimeoutMs: 2000 } */
  bounded?: BoundedConfig
  /** @default SILENT_LOGGER */
  logger?: Logger
}

interface SqliteTemplate extends EngineTemplate {
  readonly path: string
  /** The sealed file's size: a small one is copied on the calling thread (`SYNC_TEMPLATE_COPY_BYTES`). */
  readonly bytes: number
}

/** Database-per-tenant on SQLite: one file per tenant, named after the tenant id. */
export class SqliteEngine implements DatabaseEngine {
  readonly name = 'sqlite' as const
  readonly isolations: readonly Isolation[] = ['database']
  readonly directory: string
  readonly requiredPrivileges: readonly string[]
  /**
   * Every tenant's own file is a boundary SQL cannot cross; the statement guard refuses what
   * would reach past it (ATTACH, schema changes…). Statements run in executor processes
   * started on the first session: a runaway statement is stopped at its deadline and never
   * holds the caller's event loop.
   */
  readonly rawSession: RawSessions = {
    isolations: ['database'],
    open: async (placement, options) => this.#openRawSession(placement, options),
    close: () => this.#closeExecutor(),
  }
  /**
   * `tenantry.bounded`: Kysely queries compiled here and run on a raw session (`ExecutorDialect`),
   * so a scan, a search or a write waiting on a lock holds an executor process, never the
   * caller's event loop, and stops at its deadline. The statement guard applies as to raw SQL.
   */
  readonly boundedQueries: BoundedQueries = {
    run: async (target, options, fn) => {
      const statementTimeoutMs = boundedTimeout(options.statementTimeoutMs, this.#bounded)
      const session = await this.#openRawSession(target.placement, {
        readOnly: options.readOnly ?? false,
        statementTimeoutMs,
        ...(options.transactionTimeoutMs !== undefined ? { transactionTimeoutMs: options.transactionTimeoutMs } : {}),
      })
      // A burst of one tenant's calls waits its turn for the tenant's share inside the executor.
      const db = new Kysely<any>({ dialect: new ExecutorDialect(session) })
      try {
        return await fn(db)
      } finally {
        // Closes the session, rolling back a transaction `fn` left open. Kysely does so only if
        // `fn` ran a query: a session it never used is closed here, or the executor keeps it.
        await db.destroy()
        if (!session.closed) await session.close()
      }
    },
  }
  readonly #bounded: BoundedConfig | undefined
  readonly #synchronous: SqliteSynchronous
  readonly #busyTimeoutMs: number
  readonly #logger: Logger
  readonly #rawSql: Omit<SqliteExecutorOptions, 'logger'>
  #executor: SqliteExecutor | undefined
  /** Storage quotas by tenant id, as the router last resolved them. */
  readonly #storageLimits = new Map<string, number | null>()
  /** The in-process connections open on each tenant's file, to apply a changed quota at once. */
  readonly #openDatabases = new Map<string, Set<Database.Database>>()
  /** Tenants whose in-process connections leave checkpoints to a worker thread (see `holdCheckpoints`). */
  readonly #heldCheckpoints = new Set<string>()
  #statementSink: StatementSink | undefined
  /**
   * Storage quotas enforced by SQLite itself: `PRAGMA max_page_count` on every connection that
   * can write a tenant's file (the in-process handle and the executor's), so a write past the
   * quota fails with SQLITE_FULL (`QUOTA_EXCEEDED`) and writes nothing.
   */
  readonly storage: TenantStorage = {
    enforced: true,
    setLimit: (tenantId, bytes) => {
      if (this.#storageLimits.get(tenantId) === bytes) return
      this.#storageLimits.set(tenantId, bytes)
      for (const database of this.#openDatabases.get(tenantId) ?? []) limitStorage(database, bytes)
    },
    size: async (placement) => {
      const path = this.pathOf(placement)
      let total = 0
      for (const file of [path, `${path}-wal`]) total += await stat(file).then((s) => s.size, () => 0)
      return total
    },
  }
  #directoryReady = false
  #manualCheckpoints = false
  /** The worker threads of `migrateOffThread`, for one migration set; started on first use. */
  #migrationPool: { key: string; pool: SqliteMigrationPool } | undefined
  /**
   * Backups through SQLite's online backup API, while the tenant serves; a restore replaces the
   * tenant's file in one write transaction of it (see sqlite-backup.ts).
   */
  readonly backups: EngineBackups = {
    isolations: ['database'],
    method: 'sqlite-backup-api',
    dump: (placement, destination, options) => backupSqliteFile(this.pathOf(placement), destination, options),
    restore: (placement, source, options) => restoreSqliteFile(source, this.pathOf(placement), options),
  }

  constructor(options: SqliteEngineOptions) {
    this.directory = resolve(options.directory)
    this.#synchronous = options.synchronous ?? 'NORMAL'
    this.#busyTimeoutMs = options.busyTimeoutMs ?? 5000
    this.#logger = options.logger ?? SILENT_LOGGER
    this.#rawSql = options.rawSql ?? {}
    this.#bounded = options.bounded
    // Checks the limits now, so a mistake in them fails at start rather than on the first request.
    new SqliteExecutor(this.#rawSql)
    this.requiredPrivileges = [`read, write and create files in ${this.directory} (created when missing)`]
  }

  locatorFor(tenantId: string, isolation: Isolation): string {
    this.#assertIsolation(isolation)
    assertTenantId(tenantId)
    return tenantFileName(tenantId)
  }

  /** The tenant's file. Checked again here so that no locator, however it got into the catalog, escapes the directory. */
  pathOf(placement: EnginePlacement): string {
    if (placement.locator !== this.locatorFor(placement.tenantId, placement.isolation)) {
      throw new TenantryError('INVALID_IDENTIFIER', `Invalid SQLite locator ${JSON.stringify(placement.locator)}`)
    }
    return join(this.directory, placement.locator)
  }

  async create(placement: EnginePlacement): Promise<void> {
    const path = this.pathOf(placement)
    await this.#ensureDirectory()
    const staging = `${path}.creating`
    await rm(staging, { force: true })
    new Database(staging).close()
    await chmod(staging, 0o600) // before WAL: SQLite gives -wal and -shm the file's mode
    await this.#publish(staging, path)
  }

  async ensureTemplate(key: string, isolation: Isolation, migrate: (handle: EngineHandle) => Promise<void>): Promise<SqliteTemplate> {
    this.#assertIsolation(isolation)
    assertTemplateKey(key)
    const templates = join(this.directory, TEMPLATES_DIRECTORY)
    const path = join(templates, templateFileName(key))
    await this.#removeAbandonedBuilds(templates)
    const sealedTemplate = () => ({ key, path, bytes: statSync(path).size })
    if (existsSync(path)) return sealedTemplate()
    await mkdir(templates, { recursive: true, mode: 0o700 })

    const unique = `${process.pid}-${Date.now().toString(36)}`
    const scratch = join(templates, `${key}.${unique}.build`)
    const sealed = join(templates, `${key}.${unique}.sealed`)
    try {
      const handle = this.#openFile(scratch, false)
      try {
        await migrate(handle)
      } finally {
        await handle.close()
      }
      // VACUUM INTO writes a compact, self-contained copy with no WAL: the template is
      // sealed once and never opened for writing again, so copying it is always consistent.
      vacuumInto(scratch, sealed)
      setWalMode(sealed)
      await chmod(sealed, 0o400)
      await link(sealed, path).catch((error: NodeJS.ErrnoException) => {
        if (error.code !== 'EEXIST') throw error // another process sealed the same template first
      })
    } finally {
      await Promise.all([scratch, `${scratch}-wal`, `${scratch}-shm`, sealed].map((f) => rm(f, { force: true })))
    }
    return sealedTemplate()
  }

  /**
   * Copies the sealed template straight to the tenant's file: one copy and one chmod, where a
   * staging file would add three more file-system calls to every create. `COPYFILE_EXCL` never
   * replaces a file, and a copy cut short (a crash) belongs to a tenant still `provisioning`,
   * which never serves and whose resumed create drops its storage first.
   */
  async createFromTemplate(placement: EnginePlacement, template: EngineTemplate): Promise<void> {
    const path = this.pathOf(placement)
    const sealed = template as SqliteTemplate
    await this.#ensureDirectory()
    const flags = fsConstants.COPYFILE_EXCL | fsConstants.COPYFILE_FICLONE
    const small = sealed.bytes <= SYNC_TEMPLATE_COPY_BYTES
    try {
      if (small) copyFileSync(sealed.path, path, flags)
      else await copyFile(sealed.path, path, flags)
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') {
        throw new TenantryError('PROVISIONING_FAILED', `Tenant database already exists: ${path}`, { cause: error })
      }
      // The partial copy is this call's own: EXCL created it.
      if (small) rmSync(path, { force: true })
      else await rm(path, { force: true })
      throw error
    }
    // The template is sealed read-only (0400); the tenant's file is its own to write (0600).
    if (small) chmodSync(path, 0o600)
    else await chmod(path, 0o600)
  }

  async exists(placement: EnginePlacement): Promise<boolean> {
    return existsSync(this.pathOf(placement))
  }

  open(placement: EnginePlacement, role: EngineRole = 'app'): EngineHandle {
    return this.#openFile(this.pathOf(placement), true, placement.tenantId, role === 'app')
  }

  async drop(placement: EnginePlacement): Promise<void> {
    const path = this.pathOf(placement)
    await Promise.all([path, ...SIDE_FILE_SUFFIXES.map((suffix) => path + suffix)].map((f) => rm(f, { force: true })))
  }

  async close(): Promise<void> {
    const pool = this.#migrationPool?.pool
    this.#migrationPool = undefined
    await Promise.all([this.#closeExecutor(), pool?.close()])
  }

  /**
   * Migrates the tenant's file in a worker thread (see `SqliteMigrationPool`) that opens it as
   * `open(placement, 'admin')` would here, under the tenant's storage quota where this process
   * knows it. One pool per migration set: another set (a reloaded config) replaces it.
   */
  async migrateOffThread(placement: EnginePlacement, source: MigrationSetSource, options: { parallelism?: number } = {}): Promise<HandleMigrationOutcome> {
    this.pathOf(placement) // the same locator check as every other method, before any thread sees it
    if (this.#migrationPool?.key !== source.key) {
      const previous = this.#migrationPool?.pool
      const data = {
        engine: { directory: this.directory, synchronous: this.#synchronous, busyTimeoutMs: this.#busyTimeoutMs },
        manualCheckpoints: this.#manualCheckpoints,
        source,
      }
      this.#migrationPool = { key: source.key, pool: new SqliteMigrationPool(data, { logger: this.#logger }) }
      await previous?.close()
    }
    const storageLimit = this.#storageLimits.get(placement.tenantId)
    return this.#migrationPool.pool.migrate(placement, { ...(storageLimit !== undefined ? { storageLimit } : {}), ...(options.parallelism ? { threads: options.parallelism } : {}) })
  }

  async test(): Promise<string> {
    return `SQLite directory ${this.directory}`
  }

  doctor(context: EngineDoctorContext): Promise<EngineCheck[]> {
    return checkSqlite(this.directory, context)
  }

  removeLeftovers(context: EngineDoctorContext & { creating: ReadonlySet<string> }): Promise<string[]> {
    return removeSqliteLeftovers(this.directory, context)
  }

  /** A consistent snapshot, taken while writers go on: VACUUM INTO reads in one read transaction. */
  async copyOut(placement: EnginePlacement, destination: string): Promise<void> {
    if (existsSync(destination)) throw new TenantryError('INVALID_OPTION', `${destination} exists: a copy never replaces a file`)
    vacuumInto(this.pathOf(placement), destination, { readonly: true })
  }

  async copyIn(placement: EnginePlacement, source: string): Promise<void> {
    const check = new Database(source, { readonly: true, fileMustExist: true })
    try {
      const result = check.pragma('quick_check', { simple: true })
      if (result !== 'ok') throw new TenantryError('INVALID_OPTION', `${source} is damaged: ${String(result)}`)
    } catch (error) {
      throw error instanceof TenantryError ? error : new TenantryError('INVALID_OPTION', `${source} is not a SQLite database: ${(error as Error).message}`, { cause: error })
    } finally {
      check.close()
    }
    await this.#createFromFile(placement, source, async (staging) => setWalMode(staging))
  }

  /** Copies `source` to a staging file and publishes it as the tenant's, refusing to replace one. */
  async #createFromFile(placement: EnginePlacement, source: string, prepare?: (staging: string) => Promise<void>): Promise<void> {
    const path = this.pathOf(placement)
    await this.#ensureDirectory()
    const staging = `${path}.creating`
    await rm(staging, { force: true })
    try {
      await copyFile(source, staging, fsConstants.COPYFILE_FICLONE)
      await chmod(staging, 0o600)
      await prepare?.(staging)
    } catch (error) {
      await rm(staging, { force: true })
      throw error
    }
    await this.#publish(staging, path)
  }

  /**
   * While held, this process's connections to the tenant's files never checkpoint on their own
   * (`wal_autocheckpoint = 0`): a live move runs the checkpoints in a worker thread instead
   * (`checkpoint`). Otherwise the first commit after the move's long read snapshot, or the last
   * close, would copy the whole log that grew behind it, on the event loop. Connections opened
   * while held start that way too; releasing restores SQLite's default (1000 pages).
   */
  holdCheckpoints(tenantId: string, held: boolean): void {
    if (held) this.#heldCheckpoints.add(tenantId)
    else this.#heldCheckpoints.delete(tenantId)
    // Under point-in-time restore (`manageCheckpoints`) they stay off after a move too: the WAL shipper checkpoints.
    for (const database of this.#openDatabases.get(tenantId) ?? []) autoCheckpoint(database, held || this.#manualCheckpoints)
  }

  /** A checkpoint of the tenant's file in a worker thread, never on the event loop (see `checkpointOffThread`). */
  checkpoint(placement: EnginePlacement, mode: CheckpointMode): Promise<CheckpointOutcome> {
    return checkpointOffThread(this.pathOf(placement), mode, { busyTimeoutMs: this.#busyTimeoutMs })
  }

  async #openRawSession(placement: EnginePlacement, options: RawSessionOptions): Promise<SqliteRawSession> {
    const path = this.pathOf(placement)
    if (!existsSync(path)) throw new TenantryError('TENANT_NOT_FOUND', `The tenant's database ${placement.locator} does not exist`)
    this.#executor ??= new SqliteExecutor({
      ...this.#rawSql,
      logger: this.#logger,
      storageLimitOf: (tenantId) => this.#storageLimits.get(tenantId),
      onStatement: (tenantId, usage) => this.#statementSink?.(tenantId, usage),
    })
    return this.#executor.openSession({ ...options, tenantId: placement.tenantId, path })
  }

  /** The executor processes this engine started, if any (for operators and tests). */
  get executorPids(): number[] {
    return this.#executor?.pids ?? []
  }

  /** What the executor's pool is doing, or `undefined` before the first raw session (for operators and tests). */
  get executorStats(): SqliteExecutorStats | undefined {
    return this.#executor?.stats
  }

  async #closeExecutor(): Promise<void> {
    const executor = this.#executor
    this.#executor = undefined
    await executor?.close()
  }

  /** Makes the fully written staging file visible under its final name, refusing to replace an existing tenant file. */
  async #publish(staging: string, path: string): Promise<void> {
    try {
      await link(staging, path)
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') {
        throw new TenantryError('PROVISIONING_FAILED', `Tenant database already exists: ${path}`, { cause: error })
      }
      throw error
    } finally {
      // A staging file left behind is harmless (the next create removes it), so its removal only logs.
      await unlink(staging).catch((err: unknown) => this.#logger.warn({ err, path: staging }, 'Removing a staging file failed'))
    }
  }

  /**
   * Point-in-time restore ships this engine's WAL (lifecycle/point-in-time.ts) and checkpoints
   * it itself, after shipping: from now on, connections this engine opens or has open leave
   * checkpoints alone (`wal_autocheckpoint = 0`), so none backfills frames not yet shipped.
   */
  manageCheckpoints(): void {
    if (this.#manualCheckpoints) return
    this.#manualCheckpoints = true
    // Migration workers started before open their files the old way: the next migration starts new ones.
    const pool = this.#migrationPool?.pool
    this.#migrationPool = undefined
    void pool?.close()
    for (const databases of this.#openDatabases.values()) for (const database of databases) database.pragma('wal_autocheckpoint = 0')
  }

  meterWith(sink: StatementSink): void {
    this.#statementSink = sink
  }

  /** `gated`: an app handle, which passes the tenant's write gate (a move's pause, maintenance mode). */
  #openFile(path: string, mustExist: boolean, tenantId?: string, gated = false): EngineHandle {
    const database = new Database(path, { fileMustExist: mustExist, timeout: this.#busyTimeoutMs })
    try {
      database.pragma('journal_mode = WAL')
      database.pragma(`synchronous = ${this.#synchronous}`)
      database.pragma('foreign_keys = ON')
      if (this.#manualCheckpoints) database.pragma('wal_autocheckpoint = 0')
      if (tenantId !== undefined) limitStorage(database, this.#storageLimits.get(tenantId) ?? null)
      if (tenantId !== undefined && this.#heldCheckpoints.has(tenantId)) autoCheckpoint(database, true)
    } catch (error) {
      database.close()
      throw error
    }
    const statements = new StatementCache(database)
    const dialect = new TransactionalSqliteDialect({ database, statements })
    const db = new Kysely<any>({ dialect: gated && tenantId !== undefined ? gatedDialect(dialect, tenantId) : dialect })
    /**
     * `tenantry.prepare`: the statement taken from the handle's cache once, then run at once
     * on each call. Through `db` instead (one await on the driver's mutex) while a transaction
     * holds the connection, so the query waits for it rather than joining it, and while any
     * write gate is set in the process, so the gate sees every write.
     */
    const prepareCompiled = (query: CompiledQuery): CompiledRunner => {
      let statement: Database.Statement | undefined
      return (parameters, first) => {
        if (database.inTransaction || writeGatesSet() || !database.open) return db.executeQuery({ ...query, parameters })
        try {
          statement ??= statements.get(query.sql) as unknown as Database.Statement
          if (!statement.reader) return resultOfRun(statement.run(parameters))
          if (!first) return { rows: statement.all(parameters) }
          const row = statement.get(parameters)
          return { rows: row === undefined ? [] : [row] }
        } catch (error) {
          throw tenantId !== undefined ? translateMovingError(error, tenantId) : error
        }
      }
    }
    let open: Set<Database.Database> | undefined
    if (tenantId !== undefined) {
      open = this.#openDatabases.get(tenantId) ?? new Set()
      this.#openDatabases.set(tenantId, open.add(database))
    }
    return {
      engine: 'sqlite',
      db,
      ...(gated && tenantId !== undefined ? { prepareCompiled } : {}),
      async execScript(_db, script) {
        // better-sqlite3 has one connection per file, and a running Kysely transaction holds
        // it, so exec here joins that transaction. Kysely's own `sql` runs one statement only.
        database.exec(script)
      },
      close: async () => {
        if (tenantId !== undefined) open?.delete(database)
        // The last connection to close checkpoints the write-ahead log into the file, and syncs
        // both, on the thread that closes it: for a log grown past OFF_THREAD_CLOSE_BYTES (a
        // move holds checkpoints back; a long read kept them from finishing), a worker thread
        // checkpoints it first, so the close finds little left to copy. PASSIVE: it neither
        // waits for readers nor holds writers back (TRUNCATE would hold the write lock while it
        // waits for a long read, and writes would time out SQLITE_BUSY).
        const log = statSync(`${path}-wal`, { throwIfNoEntry: false })
        if (log && log.size > OFF_THREAD_CLOSE_BYTES && database.open && !database.inTransaction) {
          await checkpointOffThread(path, 'PASSIVE', { busyTimeoutMs: this.#busyTimeoutMs }).catch((err: unknown) =>
            this.#logger.warn({ err, tenantId, path }, 'Checkpointing before a close failed; the close checkpoints instead'),
          )
        }
        await db.destroy()
        // Kysely closes the connection only if it ran a query through it: a handle that served
        // only prepared statements (`tenantry.prepare`, the data API's read by id) would keep its
        // file, log and shared memory open until garbage collection.
        if (database.open) database.close()
      },
    }
  }

  /** Removes what template builds left when their process died mid-build; a live process's build is left alone. */
  async #removeAbandonedBuilds(templates: string): Promise<void> {
    let files: string[]
    try {
      files = await readdir(templates)
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
        this.#logger.warn({ err: error, path: templates }, 'Listing template builds failed; abandoned ones stay until the next build')
      }
      return
    }
    const abandoned = files.filter((file) => {
      const pid = BUILD_FILE_PATTERN.exec(file)?.[1]
      return pid !== undefined && !isProcessAlive(Number(pid))
    })
    await Promise.all(abandoned.map((file) => rm(join(templates, file), { force: true })))
  }

  async #ensureDirectory(): Promise<void> {
    if (this.#directoryReady) return
    await mkdir(this.directory, { recursive: true, mode: 0o700 })
    this.#directoryReady = true
  }

  #assertIsolation(isolation: Isolation): void {
    if (!this.isolations.includes(isolation)) {
      throw new TenantryError('UNSUPPORTED_PLACEMENT', `SQLite data sources offer database isolation only, not ${isolation}`)
    }
  }
}

/** Applies a storage quota to a connection (see `storage`); null lifts it to SQLite's own ceiling. */
function limitStorage(database: Database.Database, bytes: number | null): void {
  const pageSize = Number(database.pragma('page_size', { simple: true }))
  database.pragma(`max_page_count = ${bytes === null ? 4294967294 : Math.max(1, Math.floor(bytes / pageSize))}`)
}

/** SQLite's automatic checkpoints off (`held`) or back at its default of 1000 pages. */
function autoCheckpoint(database: Database.Database, held: boolean): void {
  try {
    database.pragma(`wal_autocheckpoint = ${held ? 0 : 1000}`)
  } catch {
    // A connection busy iterating a statement keeps its setting: at worst it checkpoints itself, as before.
  }
}

/** Writes a compact, consistent copy of the database at `source` to the new file `destination`. */
function vacuumInto(source: string, destination: string, options: { readonly?: boolean } = {}): void {
  const db = new Database(source, { fileMustExist: true, readonly: options.readonly ?? false })
  try {
    db.prepare('VACUUM INTO ?').run(destination)
  } finally {
    db.close()
  }
}

/**
 * Puts a copy in WAL mode, the journal mode every handle sets: it then opens without first
 * converting its journal, which costs a write transaction and several fsyncs per tenant.
 */
function setWalMode(path: string): void {
  const db = new Database(path, { fileMustExist: true })
  try {
    db.pragma('journal_mode = WAL')
  } finally {
    db.close()
  }
}
