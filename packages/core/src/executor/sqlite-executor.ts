import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { promisify } from 'node:util'
import { availableParallelism, setPriority } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { RawCursor, RawSqlValue, RawStatement, RawStatementDescription, RawStatementFailure, RawStatementSuccess, SqliteRawSession } from '../engines/engine.js'
import { TenantryError } from '../errors.js'
import { SILENT_LOGGER, type Logger } from '../logger.js'
import type { ChildReady, ChildRequest, ChildResponse, CursorBatch, OpenParams, StatementCaps, StatementDescription } from './executor-protocol.js'

const execFileAsync = promisify(execFile)

/** Options of `SqliteExecutor`. Every limit has a default that suits a shared server. */
export interface SqliteExecutorOptions {
  /**
   * Executor processes, each running one statement at a time.
   * @default Math.max(4, os.availableParallelism())
   */
  poolSize?: number
  /**
   * Statements one tenant may run at once, an open transaction counting as one: one tenant
   * holds at most this share of the pool, so the others are always served. More wait in the
   * tenant's own queue for up to `queueTimeoutMs`, then are refused with `CONCURRENCY_LIMITED`.
   * @default Math.max(1, Math.floor(poolSize / 2))
   */
  maxStatementsPerTenant?: number
  /**
   * Memory of one executor process, in MiB, beyond what Node itself holds once started: the OS
   * data-segment limit (`RLIMIT_DATA`, which SQLite's allocations hit first, as `SQLITE_NOMEM`;
   * set when the process is ready, with `prlimit`), and twice V8's old-space limit. A
   * statement that reaches it is refused with `RESULT_TOO_LARGE` and its process is
   * replaced, which returns the memory. (better-sqlite3 is built with
   * `SQLITE_DEFAULT_MEMSTATUS=0`, so `PRAGMA hard_heap_limit` is accepted but never enforced.)
   * @default 512
   */
  memoryLimitMiB?: number
  /**
   * Whether statements are refused (`EXECUTOR_UNAVAILABLE`, logged once: raw SQL and the data
   * API's bounded queries, which run in these processes) where the memory limit above cannot
   * be set on a process (no util-linux `prlimit`, or it fails), rather than run with V8's heap
   * limit alone, which leaves SQLite's own allocations unbounded. Off by default where the OS
   * has no such limit (not Linux): V8's heap limit alone applies there.
   * @default true on Linux
   */
  requireMemoryLimit?: boolean
  /**
   * Longest one statement runs, from when a process starts it, before the process is killed
   * (`STATEMENT_TIMEOUT`). Time waiting for a free process is bounded by `queueTimeoutMs`.
   * @default 5000
   */
  statementTimeoutMs?: number
  /** Longest a transaction stays open from its `BEGIN` before it is rolled back (`TRANSACTION_TIMEOUT`). @default 10000 */
  transactionTimeoutMs?: number
  /**
   * Longest a statement waits for a place of its tenant's share (then `CONCURRENCY_LIMITED`),
   * and again for a free process (then `DATABASE_BUSY`). @default 2000
   */
  queueTimeoutMs?: number
  /**
   * How long a statement waits, inside its process, for another connection's lock before
   * `DATABASE_BUSY`. Short: a lock is held by a transaction that may run for seconds, and
   * a waiting statement holds a process. @default 1000
   */
  busyTimeoutMs?: number
  /** Rows one statement may return. @default 10000 */
  maxRows?: number
  /** Bytes of values one statement may return. @default 16 MiB */
  maxResultBytes?: number
  /** Bytes of one text or blob value of a result. @default 4 MiB */
  maxValueBytes?: number
  /**
   * The scheduling priority (nice value, 0 to 19) of executor processes. Above the server's
   * own 0, so that when tenants' statements keep every core busy, the event loop that answers
   * every tenant (and `/healthz`) still gets the CPU first: a noisy tenant slows itself, not
   * its neighbours. 0 runs them at the server's priority.
   * @default 10
   */
  niceness?: number
  /** @default SILENT_LOGGER */
  logger?: Logger
  /**
   * @internal Set by the engine, not by config: the tenant's storage quota in bytes (null for
   * none), read as each session opens and applied with `PRAGMA max_page_count` in the process.
   */
  storageLimitOf?: (tenantId: string) => number | null | undefined
  /** @internal Set by the engine: hears of each statement that ran, for usage metering. */
  onStatement?: (tenantId: string, usage: { rowsRead: number; rowsWritten: number; ms: number }) => void
}

/** A snapshot of an executor's pool. */
export interface SqliteExecutorStats {
  /** Live processes, starting ones included. */
  processes: number
  /** Processes started but not ready yet (the first statement, or replacements of killed ones). */
  starting: number
  /** Ready processes running nothing. */
  idle: number
  /** Statements waiting for a process. */
  waiting: number
  /** Processes held by an open transaction. */
  pinned: number
  /** Sessions opened and not closed yet. */
  sessions: number
}

/** Options of one session. */
export interface ExecutorSessionOptions {
  /** The tenant whose database `path` is: limits are counted per tenant. */
  tenantId: string
  /** The tenant's database file, which must exist. */
  path: string
  /** Opens the file read-only, and the statement guard refuses every write. */
  readOnly: boolean
  /** @default the executor's `statementTimeoutMs` */
  statementTimeoutMs?: number
  /** @default the executor's `transactionTimeoutMs` */
  transactionTimeoutMs?: number
  /** At most the executor's `maxRows`. @default the executor's `maxRows` */
  maxRows?: number
  /** This tenant's share of the pool. @default the executor's `maxStatementsPerTenant` */
  maxConcurrentStatements?: number
}

const MIB = 1024 * 1024
/** How long a session's `close` waits for its process to roll back before killing it instead. */
const CLOSE_DEADLINE_MS = 1000
/** How much longer than `queueTimeoutMs` a statement waits for processes that are still starting. */
const STARTUP_GRACE_MS = 30_000
/** How long setting a ready process's memory limit (`prlimit`) may take; past it, as on any failure, see `requireMemoryLimit`. */
const LIMIT_TIMEOUT_MS = 30_000

/** The executor process entry: compiled JavaScript in dist, TypeScript (run with tsx) from source in tests. */
function childEntry(): { file: string; execArgv: string[] } {
  const here = fileURLToPath(import.meta.url)
  const fromSource = here.endsWith('.ts')
  return {
    file: join(dirname(here), fromSource ? 'executor-process.ts' : 'executor-process.js'),
    execArgv: fromSource ? ['--import', 'tsx'] : [],
  }
}

/**
 * What a started process holds in its data segment (`VmData`, KiB): Node's own, before any
 * statement. Node 24's V8 reserves about 560 MiB per isolate (its code range), and an executor
 * process runs two or three (the watchdog thread; tsx's loader thread from source), where Node 20
 * reserves tens of MiB: the memory limit comes on top of what the process itself measured.
 */
async function dataSegmentKiB(pid: number): Promise<number> {
  const kib = Number(/VmData:\s*(\d+)/.exec(await readFile(`/proc/${pid}/status`, 'utf8'))?.[1])
  if (!(kib > 0)) throw new Error(`no VmData in /proc/${pid}/status`)
  return kib
}

interface Pending {
  resolve(response: ChildResponse): void
  reject(error: unknown): void
  timer?: NodeJS.Timeout
}

/** One child process and the requests it has yet to answer. */
class ExecutorProcess {
  readonly child: ChildProcess
  readonly ready: Promise<void>
  alive = true
  /** The session whose open transaction pins this process, if any. */
  owner: ExecutorSession | undefined
  readonly #pending = new Map<number, Pending>()
  #nextId = 1
  #stderr = ''
  #killedFor: TenantryError | undefined

  constructor(limits: ProcessLimits, logger: Logger, onExit: (process: ExecutorProcess, detail: string) => void) {
    const { memoryLimitMiB } = limits
    const { file, execArgv } = childEntry()
    const nodeArgs = [...execArgv, `--max-old-space-size=${Math.max(64, Math.floor(memoryLimitMiB / 2))}`, file]
    this.child = spawn(process.execPath, nodeArgs, { stdio: ['ignore', 'ignore', 'pipe', 'ipc'], serialization: 'advanced' })
    this.child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      this.#stderr = (this.#stderr + chunk).slice(-2000)
    })
    this.ready = new Promise<void>((resolve, reject) => {
      this.child.once('message', (message: ChildReady) => (message?.ready ? resolve() : reject(new Error('unexpected first message'))))
      this.child.once('exit', () => reject(new TenantryError('INTERNAL', 'An executor process exited before it was ready')))
    }).then(() => this.#confine(limits, logger))
    this.ready.catch(() => {}) // observed through acquire; a failed start is logged by onExit
    this.child.on('message', (message: ChildResponse | ChildReady) => {
      if ('ready' in message) return
      const pending = this.#pending.get(message.id)
      if (!pending) return
      this.#pending.delete(message.id)
      clearTimeout(pending.timer)
      pending.resolve(message)
    })
    this.child.on('exit', (code, signal) => {
      this.alive = false
      const error =
        this.#killedFor ??
        (this.#stderr.includes('heap out of memory') || this.#stderr.includes('Allocation failed')
          ? new TenantryError('RESULT_TOO_LARGE', `The statement needed more than the ${memoryLimitMiB} MiB of memory an executor process may use`)
          : new TenantryError('INTERNAL', 'The executor process running the statement exited'))
      for (const pending of this.#pending.values()) {
        clearTimeout(pending.timer)
        pending.reject(error)
      }
      this.#pending.clear()
      onExit(this, this.#killedFor ? '' : `code ${code ?? '-'}, signal ${signal ?? '-'}: ${this.#stderr.trim().slice(-500)}`)
    })
    // A write to a process that just died: its exit rejects what is pending.
    this.child.on('error', () => this.kill(new TenantryError('INTERNAL', 'The executor process failed')))
  }

  /**
   * Once the process is ready, before its first statement: its memory limit, and its priority.
   *
   * The data-segment limit (`RLIMIT_DATA`) is what Node holds once started, measured on this
   * very process, plus `memoryLimitMiB`: set with util-linux's `prlimit` from outside, since
   * Node cannot call setrlimit. (A limit set before Node starts needs its start-up size known in
   * advance; measured on a separate process, that size varied by a whole isolate's 560 MiB on
   * Node 24 under load, and a limit below it killed every process as it started.) Where it
   * cannot be set (not Linux, no `prlimit`), the process is killed and the pool refuses every
   * statement (`requireMemoryLimit`), or, with that off, V8's heap limit alone applies.
   *
   * The priority is lowered only now: tenants' statements run below the server, while Node's own
   * start-up (seconds of CPU on a busy machine at nice 10, long enough for the first statements
   * to be refused as busy) competes as an equal.
   */
  async #confine({ memoryLimitMiB, niceness, requireMemoryLimit }: ProcessLimits, logger: Logger): Promise<void> {
    const pid = this.child.pid
    if (pid === undefined) return
    if (process.platform === 'linux') {
      try {
        const bytes = ((await dataSegmentKiB(pid)) + memoryLimitMiB * 1024) * 1024
        await execFileAsync('prlimit', ['--pid', String(pid), `--data=${bytes}:${bytes}`], { timeout: LIMIT_TIMEOUT_MS })
      } catch (err) {
        if (!this.alive) return
        if (requireMemoryLimit) this.#refuse("a process's memory limit could not be set with util-linux's prlimit", err)
        logger.warn({ err, pid }, "Setting an executor process's memory limit failed (is util-linux's prlimit installed?): it runs with V8's heap limit only")
      }
    } else if (requireMemoryLimit) {
      this.#refuse(`their memory limit needs Linux (this is ${process.platform})`)
    }
    if (niceness === 0) return
    try {
      setPriority(pid, niceness)
    } catch {
      // The process exited already (its exit is handled), or the OS refused: it runs at the default priority.
    }
  }

  /** Kills this process for `EXECUTOR_UNAVAILABLE` and throws that error: it cannot be confined. */
  #refuse(why: string, cause?: unknown): never {
    const error = new TenantryError('EXECUTOR_UNAVAILABLE', `Statements in executor processes are refused: ${why}`, { cause })
    this.kill(error)
    throw error
  }

  get pid(): number | undefined {
    return this.child.pid
  }

  /** Sends a request; past `deadlineMs` the process is killed and the request rejects with `onDeadline`. */
  request(message: DistributiveOmit<ChildRequest, 'id'>, deadlineMs?: number, onDeadline?: () => TenantryError): Promise<ChildResponse> {
    if (!this.alive) return Promise.reject(this.#killedFor ?? new TenantryError('INTERNAL', 'The executor process is gone'))
    const id = this.#nextId++
    return new Promise((resolve, reject) => {
      const pending: Pending = { resolve, reject }
      if (deadlineMs !== undefined) {
        // Killing the process is the only way to stop a statement inside SQLite from outside.
        pending.timer = setTimeout(() => this.kill(onDeadline?.() ?? new TenantryError('STATEMENT_TIMEOUT')), Math.max(0, deadlineMs))
      }
      this.#pending.set(id, pending)
      this.child.send({ ...message, id } as ChildRequest, (error) => {
        if (error) this.kill(new TenantryError('INTERNAL', 'Sending to the executor process failed', { cause: error }))
      })
    })
  }

  /** SIGKILLs the process: what it runs stops now, and what is pending rejects with `reason` at once. */
  kill(reason: TenantryError): void {
    if (!this.alive) return
    this.#killedFor ??= reason
    this.alive = false
    for (const pending of this.#pending.values()) {
      clearTimeout(pending.timer)
      pending.reject(this.#killedFor)
    }
    this.#pending.clear()
    this.child.kill('SIGKILL')
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never

/** What `#confine` sets on a ready process (see the options of the same names). */
interface ProcessLimits {
  memoryLimitMiB: number
  niceness: number
  requireMemoryLimit: boolean
}

interface Waiter {
  resolve(process: ExecutorProcess): void
  reject(error: unknown): void
  timer: NodeJS.Timeout
}

interface ShareWaiter {
  resolve(): void
  reject(error: unknown): void
  timer: NodeJS.Timeout
}

/**
 * Runs tenants' raw SQLite statements in a pool of child processes, so that no statement
 * runs on the caller's event loop and any statement, one that never ends included, is
 * stopped at its deadline: the process running it is SIGKILLed and replaced. better-sqlite3
 * offers neither `sqlite3_interrupt` nor a progress handler, and `Worker.terminate()` cannot
 * stop a thread inside a native call, so a process is the unit that can be stopped.
 *
 * - A statement takes a free process for its run; a session with an open transaction keeps
 *   its process (it is pinned) until `COMMIT`, `ROLLBACK`, its deadline or `close`.
 * - A cursor (`session.cursor`) keeps its process between batches, which the process reads
 *   only when asked (backpressure), until its last row, `close`, or the statement's deadline.
 * - Tenant databases are in WAL mode: a killed process's uncommitted transaction is never
 *   seen by the next connection, and the tenant's file stays intact and writable.
 * - Processes start on the first session and stop on `close`.
 */
export class SqliteExecutor {
  readonly poolSize: number
  readonly maxStatementsPerTenant: number
  readonly #options: Required<Omit<SqliteExecutorOptions, 'logger' | 'poolSize' | 'maxStatementsPerTenant' | 'storageLimitOf' | 'onStatement'>>
  readonly #logger: Logger
  readonly #processes = new Set<ExecutorProcess>()
  readonly #idle: ExecutorProcess[] = []
  readonly #waiters: Waiter[] = []
  readonly #leases = new Map<string, number>()
  /** Per tenant, its statements waiting for a place of its share, first come first served. */
  readonly #shareQueues = new Map<string, ShareWaiter[]>()
  readonly #sessions = new Set<ExecutorSession>()
  #started = false
  #starting = 0
  #closed = false
  /** Set when processes cannot be confined (see `#refuseAll`): what every statement gets. */
  #unavailable: TenantryError | undefined
  #nextSession = 1
  readonly #hooks: Pick<SqliteExecutorOptions, 'storageLimitOf' | 'onStatement'>

  constructor(options: SqliteExecutorOptions = {}) {
    this.poolSize = positive(options.poolSize, Math.max(4, availableParallelism()), 'poolSize')
    this.maxStatementsPerTenant = positive(options.maxStatementsPerTenant, Math.max(1, Math.floor(this.poolSize / 2)), 'maxStatementsPerTenant')
    this.#options = {
      memoryLimitMiB: positive(options.memoryLimitMiB, 512, 'memoryLimitMiB'),
      statementTimeoutMs: positive(options.statementTimeoutMs, 5000, 'statementTimeoutMs'),
      transactionTimeoutMs: positive(options.transactionTimeoutMs, 10_000, 'transactionTimeoutMs'),
      queueTimeoutMs: positive(options.queueTimeoutMs, 2000, 'queueTimeoutMs'),
      busyTimeoutMs: nonNegative(options.busyTimeoutMs, 1000, 'busyTimeoutMs'),
      maxRows: positive(options.maxRows, 10_000, 'maxRows'),
      maxResultBytes: positive(options.maxResultBytes, 16 * MIB, 'maxResultBytes'),
      maxValueBytes: positive(options.maxValueBytes, 4 * MIB, 'maxValueBytes'),
      niceness: niceness(options.niceness),
      requireMemoryLimit: options.requireMemoryLimit ?? process.platform === 'linux',
    }
    this.#logger = options.logger ?? SILENT_LOGGER
    this.#hooks = { storageLimitOf: options.storageLimitOf, onStatement: options.onStatement }
  }

  /** @internal Counts a statement that ran for the tenant's usage. */
  noteStatement(tenantId: string, usage: { rowsRead: number; rowsWritten: number; ms: number }): void {
    this.#hooks.onStatement?.(tenantId, usage)
  }

  /** The pids of the running executor processes (for operators and tests). */
  get pids(): number[] {
    return [...this.#processes].flatMap((p) => (p.alive && p.pid !== undefined ? [p.pid] : []))
  }

  /** What the pool is doing now, for operators, metrics and tests. */
  get stats(): SqliteExecutorStats {
    return {
      processes: this.pids.length,
      starting: this.#starting,
      idle: this.#idle.length,
      waiting: this.#waiters.length,
      pinned: [...this.#processes].filter((p) => p.owner).length,
      sessions: this.#sessions.size,
    }
  }

  /** Opens a session on one tenant's database; its connection opens with its first statement. */
  openSession(options: ExecutorSessionOptions): SqliteRawSession {
    if (this.#closed) throw new TenantryError('CLOSED', 'The SQL executor is closed')
    this.#start()
    const session = new ExecutorSession(this, this.#nextSession++, options, {
      statementTimeoutMs: options.statementTimeoutMs ?? this.#options.statementTimeoutMs,
      transactionTimeoutMs: options.transactionTimeoutMs ?? this.#options.transactionTimeoutMs,
      open: {
        path: options.path,
        readOnly: options.readOnly,
        busyTimeoutMs: this.#options.busyTimeoutMs,
        maxStorageBytes: options.readOnly ? null : (this.#hooks.storageLimitOf?.(options.tenantId) ?? null),
      },
      caps: {
        maxRows: Math.min(options.maxRows ?? this.#options.maxRows, this.#options.maxRows),
        maxResultBytes: this.#options.maxResultBytes,
        maxValueBytes: this.#options.maxValueBytes,
      },
    })
    this.#sessions.add(session)
    return session
  }

  /** Ends every session (rolling back open transactions) and kills every process. Idempotent. */
  async close(): Promise<void> {
    this.#closed = true
    const closed = new TenantryError('CLOSED', 'The SQL executor is closed')
    for (const waiter of [...this.#waiters.splice(0), ...[...this.#shareQueues.values()].flat()]) {
      clearTimeout(waiter.timer)
      waiter.reject(closed)
    }
    this.#shareQueues.clear()
    for (const session of [...this.#sessions]) void session.end(closed)
    const exits = [...this.#processes].map((p) => new Promise<void>((resolve) => (p.child.exitCode !== null || p.child.signalCode !== null ? resolve() : p.child.once('exit', () => resolve()))))
    for (const p of this.#processes) p.kill(closed)
    this.#idle.length = 0
    await Promise.all(exits)
  }

  /** Starts the pool, or reopens it after `close`. */
  #start(): void {
    if (this.#started) return
    this.#started = true
    for (let i = 0; i < this.poolSize; i++) this.#spawn()
  }

  #spawn(): void {
    if (this.#closed || this.#unavailable) return
    this.#starting++
    const child = new ExecutorProcess(this.#options, this.#logger, (process, detail) => this.#onExit(process, detail))
    this.#processes.add(child)
    child.ready.then(
      () => {
        this.#starting--
        this.#offer(child)
      },
      (error: unknown) => {
        this.#starting--
        if (error instanceof TenantryError && error.code === 'EXECUTOR_UNAVAILABLE') this.#refuseAll(error)
      },
    )
  }

  /**
   * A process could not be confined (`requireMemoryLimit`): no statement runs from now on,
   * rather than each one in a process whose SQLite memory is unbounded. Logged once; every
   * process is stopped and none is started again.
   */
  #refuseAll(error: TenantryError): void {
    if (this.#unavailable) return
    this.#unavailable = error
    // The advice is for the operator, so it is in the log, not in what tenants are answered.
    const fix = process.platform === 'linux' ? "Install util-linux's prlimit, or set" : 'Set'
    this.#logger.error({ err: error.cause ?? error }, `${error.message}. ${fix} rawSql.requireMemoryLimit to false to run with V8's heap limit only`)
    for (const waiter of this.#waiters.splice(0)) {
      clearTimeout(waiter.timer)
      waiter.reject(error)
    }
    for (const process of this.#processes) process.kill(error)
  }

  #onExit(process: ExecutorProcess, detail: string): void {
    this.#processes.delete(process)
    const idle = this.#idle.indexOf(process)
    if (idle !== -1) this.#idle.splice(idle, 1)
    void process.owner?.end(new TenantryError('INTERNAL', 'The executor process holding the transaction exited; it was rolled back'))
    if (detail) this.#logger.error({ pid: process.pid, detail }, 'An executor process exited unexpectedly; starting another')
    // A process that cannot even start would be respawned in a tight loop: wait a little first.
    if (!this.#closed) setTimeout(() => this.#spawn(), detail ? 200 : 0).unref()
  }

  /** A ready, free process: to the first waiter, else back to the idle list. */
  #offer(process: ExecutorProcess): void {
    if (!process.alive || this.#closed) return
    const waiter = this.#waiters.shift()
    if (waiter) {
      clearTimeout(waiter.timer)
      waiter.resolve(process)
    } else this.#idle.push(process)
  }

  /**
   * A process for one statement (or transaction) of `tenantId`, counted against its share.
   * A tenant at its share waits in its own queue, in order, for one of its statements to end;
   * past `queueTimeoutMs` it is refused with `CONCURRENCY_LIMITED`. Other tenants never wait
   * behind it: the queue is per tenant, and it holds no process.
   */
  async acquire(tenantId: string, share = this.maxStatementsPerTenant): Promise<ExecutorProcess> {
    if (this.#closed) throw new TenantryError('CLOSED', 'The SQL executor is closed')
    if (this.#unavailable) throw this.#unavailable
    await this.#takeShare(tenantId, share)
    try {
      // `close` may have run while this statement waited for its share.
      if (this.#closed) throw new TenantryError('CLOSED', 'The SQL executor is closed')
      const idle = this.#idle.pop()
      if (idle) return idle
      return await new Promise<ExecutorProcess>((resolve, reject) => {
        const giveUpAt = Date.now() + this.#options.queueTimeoutMs + STARTUP_GRACE_MS
        const expire = () => {
          // Processes still starting (the first statement, a replacement) are not busy ones: keep
          // waiting for them, though not forever if they never become ready.
          if (this.#starting > 0 && Date.now() < giveUpAt) {
            waiter.timer = setTimeout(expire, this.#options.queueTimeoutMs)
            return
          }
          this.#waiters.splice(this.#waiters.indexOf(waiter), 1)
          reject(new TenantryError('DATABASE_BUSY', 'Every SQL executor is busy; retry shortly', { details: { retryAfterSeconds: 1 } }))
        }
        const waiter: Waiter = { resolve, reject, timer: setTimeout(expire, this.#options.queueTimeoutMs) }
        this.#waiters.push(waiter)
      })
    } catch (error) {
      this.#unlease(tenantId)
      throw error
    }
  }

  /** Gives a process back (a dead one is simply forgotten: its replacement is on its way). */
  release(process: ExecutorProcess, tenantId: string): void {
    this.#unlease(tenantId)
    if (process.alive) this.#offer(process)
  }

  /** Kills a process whose memory must be returned; a fresh one replaces it. */
  recycle(process: ExecutorProcess, reason: TenantryError): void {
    process.kill(reason)
  }

  forget(session: ExecutorSession): void {
    this.#sessions.delete(session)
  }

  /** One of the tenant's `share` places: at once if one is free and nobody of the tenant waits, else in turn. */
  #takeShare(tenantId: string, share: number): Promise<void> {
    const leases = this.#leases.get(tenantId) ?? 0
    const queue = this.#shareQueues.get(tenantId)
    if (leases < share && !queue?.length) {
      this.#leases.set(tenantId, leases + 1)
      return Promise.resolve()
    }
    return new Promise((resolve, reject) => {
      const waiters = queue ?? []
      this.#shareQueues.set(tenantId, waiters)
      const waiter: ShareWaiter = {
        resolve,
        reject,
        timer: setTimeout(() => {
          waiters.splice(waiters.indexOf(waiter), 1)
          if (!waiters.length) this.#shareQueues.delete(tenantId)
          reject(
            new TenantryError('CONCURRENCY_LIMITED', `This tenant already runs ${share} SQL statements or transactions at once, its most; retry when one ends`, {
              details: { retryAfterSeconds: 1 },
            }),
          )
        }, this.#options.queueTimeoutMs),
      }
      waiters.push(waiter)
    })
  }

  /** Gives a place of the tenant's share back: to its next waiter (the count stays), or to no one. */
  #unlease(tenantId: string): void {
    const queue = this.#shareQueues.get(tenantId)
    const next = queue?.shift()
    if (next) {
      if (!queue!.length) this.#shareQueues.delete(tenantId)
      clearTimeout(next.timer)
      next.resolve()
      return
    }
    const leases = (this.#leases.get(tenantId) ?? 1) - 1
    if (leases > 0) this.#leases.set(tenantId, leases)
    else this.#leases.delete(tenantId)
  }

}

interface SessionSettings {
  statementTimeoutMs: number
  transactionTimeoutMs: number
  open: OpenParams
  caps: StatementCaps
}

/** One raw session: a connection that lives in one executor process while a transaction is open. */
class ExecutorSession implements SqliteRawSession {
  readonly dialect = 'sqlite' as const
  #inTransaction = false
  #ended: TenantryError | undefined
  #running = false
  /** The process holding this session's open transaction. */
  #pinned: ExecutorProcess | undefined
  #transactionDeadline = 0
  #transactionTimer: NodeJS.Timeout | undefined
  /** The cursor reading on this session's process, until it ends. */
  #cursor: ExecutorCursor | undefined

  constructor(
    private readonly executor: SqliteExecutor,
    private readonly id: number,
    private readonly options: ExecutorSessionOptions,
    private readonly settings: SessionSettings,
  ) {}

  get inTransaction(): boolean {
    return this.#inTransaction
  }

  get closed(): boolean {
    return this.#ended !== undefined
  }

  execute(statement: RawStatement): Promise<RawStatementSuccess | RawStatementFailure> {
    return this.#run(statement, 'statement')
  }

  async sequence(sql: string): Promise<{ ok: true } | RawStatementFailure> {
    const outcome = await this.#run({ sql, wantRows: false }, 'sequence')
    return outcome.ok ? { ok: true } : outcome
  }

  async describe(sql: string): Promise<RawStatementDescription | RawStatementFailure> {
    const outcome = await this.#run({ sql, wantRows: false }, 'describe')
    if (!outcome.ok) return outcome
    if (!outcome.description) throw new TenantryError('INTERNAL', 'The executor process described nothing')
    return { ok: true, ...outcome.description }
  }

  async #run(
    statement: RawStatement,
    mode: 'statement' | 'sequence' | 'describe',
  ): Promise<(RawStatementSuccess & { description?: StatementDescription }) | RawStatementFailure> {
    if (this.#ended) throw this.#ended
    if (this.#running) throw new TenantryError('INVALID_OPTION', 'A raw session runs one statement at a time')
    this.#running = true
    const tenantId = this.options.tenantId
    let process: ExecutorProcess | undefined
    try {
      process = this.#pinned ?? (await this.executor.acquire(tenantId, this.options.maxConcurrentStatements))
      if (this.#ended) throw this.#ended
      const { deadlineMs, onDeadline } = this.#deadline()
      const started = performance.now()
      const response = await process.request(
        {
          op: 'execute',
          session: this.id,
          ...(this.#pinned ? {} : { open: this.settings.open }),
          sql: statement.sql,
          args: (statement.args ?? []) as RawSqlValue[],
          ...(statement.namedArgs ? { namedArgs: statement.namedArgs } : {}),
          wantRows: statement.wantRows ?? true,
          ...(mode === 'statement' ? {} : { mode }),
          caps: this.settings.caps,
          closeIfIdle: true,
        },
        deadlineMs,
        onDeadline,
      )
      this.#track(process, response.inTransaction)
      if (response.ok) {
        const { columns, rows, rowsAffected, lastInsertRowid } = response
        this.executor.noteStatement(tenantId, { rowsRead: columns.length ? rows.length : 0, rowsWritten: rowsAffected, ms: performance.now() - started })
        return { ok: true, columns, rows, rowsAffected, lastInsertRowid, ...(response.description ? { description: response.description } : {}) }
      }
      return this.#failed(response, process)
    } catch (error) {
      // The process was killed (deadline, memory) or died: its connection, and any transaction, is gone.
      if (process && !process.alive) void this.end(error instanceof TenantryError ? error : new TenantryError('INTERNAL', 'The executor process failed', { cause: error }))
      throw error
    } finally {
      this.#running = false
      if (process && this.#pinned !== process) this.executor.release(process, tenantId)
    }
  }

  /**
   * Runs one statement as a cursor (`RawCursor`): the first batch comes with the answer, the
   * rest as the caller asks. The process (and the tenant's share) stays with the cursor until
   * it ends, is closed, or reaches the statement's deadline.
   */
  async cursor(statement: Omit<RawStatement, 'wantRows'>): Promise<RawCursor | RawStatementFailure> {
    if (this.#ended) throw this.#ended
    if (this.#running) throw new TenantryError('INVALID_OPTION', 'A raw session runs one statement at a time')
    this.#running = true
    const tenantId = this.options.tenantId
    let process: ExecutorProcess | undefined
    let handedOver = false
    try {
      process = this.#pinned ?? (await this.executor.acquire(tenantId, this.options.maxConcurrentStatements))
      if (this.#ended) throw this.#ended
      const { deadlineMs, onDeadline } = this.#deadline()
      const deadlineAt = Date.now() + deadlineMs
      const started = performance.now()
      const response = await process.request(
        {
          op: 'cursor',
          session: this.id,
          ...(this.#pinned ? {} : { open: this.settings.open }),
          sql: statement.sql,
          args: (statement.args ?? []) as RawSqlValue[],
          ...(statement.namedArgs ? { namedArgs: statement.namedArgs } : {}),
          caps: this.settings.caps,
          batch: CURSOR_BATCH,
          closeIfIdle: true,
        },
        deadlineMs,
        onDeadline,
      )
      this.#track(process, response.inTransaction)
      if (!response.ok) return this.#failed(response, process)
      const held = process
      const cursor = new ExecutorCursor(this.id, held, response, deadlineAt, onDeadline, {
        deadline: () => void this.end(onDeadline()),
        failed: (failure) => this.#failed(failure, held),
        died: (error) => void this.end(error instanceof TenantryError ? error : new TenantryError('INTERNAL', 'The executor process failed', { cause: error })),
        finished: (rowsRead) => {
          this.executor.noteStatement(tenantId, { rowsRead, rowsWritten: cursor.rowsAffected, ms: performance.now() - started })
          if (this.#cursor === cursor) this.#cursor = undefined
          this.#running = false
          // A session that ended gave its pinned process to the cursor to let go of.
          if (this.#pinned !== held) this.executor.release(held, tenantId)
        },
      })
      if (response.done) {
        this.executor.noteStatement(tenantId, { rowsRead: response.rows.length, rowsWritten: response.rowsAffected, ms: performance.now() - started })
      } else {
        this.#cursor = cursor
        handedOver = true
      }
      return cursor
    } catch (error) {
      if (process && !process.alive) void this.end(error instanceof TenantryError ? error : new TenantryError('INTERNAL', 'The executor process failed', { cause: error }))
      throw error
    } finally {
      if (!handedOver) {
        this.#running = false
        if (process && this.#pinned !== process) this.executor.release(process, tenantId)
      }
    }
  }

  /** How long the next statement may run, and what it fails with past that: the statement's deadline, or the transaction's if sooner. */
  #deadline(): { deadlineMs: number; onDeadline: () => TenantryError } {
    const now = Date.now()
    const transactionBound = this.#inTransaction && this.#transactionDeadline - now < this.settings.statementTimeoutMs
    return {
      deadlineMs: transactionBound ? this.#transactionDeadline - now : this.settings.statementTimeoutMs,
      onDeadline: () =>
        transactionBound
          ? new TenantryError('TRANSACTION_TIMEOUT', `The transaction stayed open past its deadline of ${this.settings.transactionTimeoutMs} ms and was rolled back`)
          : new TenantryError('STATEMENT_TIMEOUT', `The statement ran past its deadline of ${this.settings.statementTimeoutMs} ms and was stopped`),
    }
  }

  /** A failure the process answered: the SQL's own (resolved), or what ends the request or the session (thrown). */
  #failed(response: Extract<ChildResponse, { ok: false }>, process: ExecutorProcess): RawStatementFailure {
      switch (response.kind) {
        case 'statement':
          // The tenant's storage quota (max_page_count): SQLite undid the statement; the caller's
          // transaction must go too, so this ends the request rather than returning a SQL error.
          if (response.code === 'SQLITE_FULL') {
            throw new TenantryError('QUOTA_EXCEEDED', "The write would take the tenant past its storage quota; nothing was written", { details: { quota: 'storageBytes' } })
          }
          return { ok: false, code: response.code, message: response.message }
        case 'too-large':
          throw new TenantryError('RESULT_TOO_LARGE', response.message)
        case 'busy':
          throw new TenantryError('DATABASE_BUSY', 'Another connection holds the database lock; retry shortly', { details: { retryAfterSeconds: 1 } })
        case 'memory': {
          const error = new TenantryError('RESULT_TOO_LARGE', `The statement needed more memory than an executor process may use (${response.code})`)
          // Returns the memory the statement took: the process is replaced, and this session's connection with it.
          this.executor.recycle(process, error)
          void this.end(error)
          throw error
        }
        default:
          throw new TenantryError('INTERNAL', `Unknown executor failure ${String((response as { kind?: unknown }).kind)}`)
      }
  }

  /** Pins the process while a transaction is open, and arms the transaction's deadline at its `BEGIN`. */
  #track(process: ExecutorProcess, inTransaction: boolean): void {
    if (inTransaction && !this.#inTransaction) {
      this.#pinned = process
      process.owner = this
      this.#transactionDeadline = Date.now() + this.settings.transactionTimeoutMs
      this.#transactionTimer = setTimeout(() => this.#expire(), this.settings.transactionTimeoutMs)
      this.#transactionTimer.unref()
    } else if (!inTransaction && this.#inTransaction) {
      this.#unpin()
    }
    this.#inTransaction = inTransaction
  }

  /** The transaction's deadline passed while the client was away: roll it back and let the process go. */
  #expire(): void {
    // A statement running now has a deadline no later than the transaction's, and ends the session itself.
    if (this.#running || this.#ended) return
    void this.end(new TenantryError('TRANSACTION_TIMEOUT', `The transaction stayed open past its deadline of ${this.settings.transactionTimeoutMs} ms and was rolled back`))
  }

  async close(): Promise<void> {
    await this.end(new TenantryError('CLOSED', 'The session is closed'))
  }

  /**
   * Ends the session with `reason` (what later statements reject with), rolling back and
   * releasing its pinned process. Resolves once the rollback is done.
   */
  end(reason: TenantryError): Promise<void> {
    if (this.#ended) return Promise.resolve()
    this.#ended = reason
    this.#inTransaction = false
    this.executor.forget(this)
    const pinned = this.#unpin()
    // An open cursor holds the process, pinned or not: it closes the connection (rolling back) and lets the process go.
    if (this.#cursor) return this.#cursor.abort(reason)
    // A running statement's own `finally` gives its process back.
    if (!pinned || this.#running) return Promise.resolve()
    if (!pinned.alive) {
      this.executor.release(pinned, this.options.tenantId)
      return Promise.resolve()
    }
    // Closing the connection rolls the transaction back; a process that does not answer in time is killed instead.
    const release = () => this.executor.release(pinned, this.options.tenantId)
    return pinned.request({ op: 'close', session: this.id }, CLOSE_DEADLINE_MS, () => new TenantryError('INTERNAL', 'A rollback took too long')).then(release, release)
  }

  #unpin(): ExecutorProcess | undefined {
    clearTimeout(this.#transactionTimer)
    this.#transactionTimer = undefined
    const pinned = this.#pinned
    this.#pinned = undefined
    if (pinned && pinned.owner === this) pinned.owner = undefined
    return pinned
  }
}

/**
 * Rows of one cursor batch at most, and their bytes: what a paused cursor holds, in its
 * process and here, and few enough round trips that a cursor reads about as fast as a
 * statement would.
 */
const CURSOR_BATCH: CursorBatch = { maxRows: 512, maxBytes: 256 * 1024 }

const ignore = () => {}

/** What a cursor tells its session. */
interface CursorHooks {
  /** Its deadline passed: the session ends (and aborts the cursor). */
  deadline(): void
  /** A failure the process answered part-way: returned or thrown as `execute` would. */
  failed(response: Extract<ChildResponse, { ok: false }>): RawStatementFailure
  /** Its process died or was killed: the session ends. */
  died(error: unknown): void
  /** The statement ended in its process: the session takes its process back (or lets it go). */
  finished(rowsRead: number): void
}

/**
 * A cursor of an executor session: asks its process for one batch at a time, and for the next
 * one as soon as the caller takes a batch, so that reading overlaps with what the caller does
 * with it while at most one batch waits here. Past its deadline it ends with its session.
 */
class ExecutorCursor implements RawCursor {
  readonly ok = true
  readonly columns: Array<{ name: string; type: string | null }>
  readonly rowsAffected: number
  readonly lastInsertRowid: bigint | null
  readonly #controller = new AbortController()
  /** The batch that came with the open, not yet taken. */
  #first: RawSqlValue[][] | undefined
  /** The next batch, asked for. */
  #ahead: Promise<ChildResponse> | undefined
  /** Settles when no request of this cursor is in flight. */
  #inFlight: Promise<void> = Promise.resolve()
  /** The statement ended in the process: its last row read, a failure, or closed. */
  #done: boolean
  /** The process was given back to the session. */
  #finished: boolean
  #closing: Promise<void> | undefined
  #rowsRead: number
  readonly #timer: NodeJS.Timeout | undefined

  constructor(
    private readonly session: number,
    private readonly process: ExecutorProcess,
    first: Extract<ChildResponse, { ok: true }>,
    private readonly deadlineAt: number,
    private readonly onDeadline: () => TenantryError,
    private readonly hooks: CursorHooks,
  ) {
    this.columns = first.columns
    this.rowsAffected = first.rowsAffected
    this.lastInsertRowid = first.lastInsertRowid
    this.#first = first.rows
    this.#rowsRead = first.rows.length
    this.#done = first.done !== false
    this.#finished = this.#done
    if (!this.#done) {
      this.#timer = setTimeout(() => this.hooks.deadline(), Math.max(0, deadlineAt - Date.now()))
      this.#timer.unref()
    }
  }

  get signal(): AbortSignal {
    return this.#controller.signal
  }

  async next(): Promise<{ ok: true; rows: RawSqlValue[][]; done: boolean } | RawStatementFailure> {
    if (this.#controller.signal.aborted) throw this.#controller.signal.reason
    const first = this.#first
    if (first) {
      this.#first = undefined
      if (!this.#done) this.#ahead = this.#fetch()
      return { ok: true, rows: first, done: this.#done }
    }
    const ahead = this.#ahead
    this.#ahead = undefined
    if (!ahead) return { ok: true, rows: [], done: true }
    let response: ChildResponse
    try {
      response = await ahead
    } catch (error) {
      // Killed at its deadline, or died: the session ends, and with it this cursor.
      if (!this.process.alive) this.hooks.died(error)
      throw error
    }
    if (this.#controller.signal.aborted) throw this.#controller.signal.reason
    if (!response.ok) {
      // The process closed the cursor already.
      this.#done = true
      try {
        return this.hooks.failed(response)
      } finally {
        this.#finish()
      }
    }
    this.#rowsRead += response.rows.length
    if (response.done) {
      this.#done = true
      this.#finish()
    } else this.#ahead = this.#fetch()
    return { ok: true, rows: response.rows, done: this.#done }
  }

  /** Stops the statement in its process (a no-op once it ended) and gives the process back. */
  close(): Promise<void> {
    if (this.#finished) return Promise.resolve()
    this.#closing ??= (async () => {
      await this.#inFlight
      this.#ahead = undefined
      if (!this.#done && this.process.alive) {
        await this.process
          .request({ op: 'cursor-close', session: this.session, closeIfIdle: true }, CLOSE_DEADLINE_MS, () => new TenantryError('INTERNAL', 'Closing a cursor took too long'))
          .catch(ignore)
      }
      this.#done = true
      if (!this.process.alive) this.hooks.died(new TenantryError('INTERNAL', 'The executor process reading the cursor exited'))
      this.#finish()
    })()
    return this.#closing
  }

  /**
   * The session ended (`reason`): whoever waits on the cursor hears it, and the session's
   * connection in the process is closed, rolling back a transaction, before the process goes.
   */
  async abort(reason: TenantryError): Promise<void> {
    if (!this.#controller.signal.aborted) this.#controller.abort(reason)
    await this.#inFlight
    await this.#closing
    this.#ahead = undefined
    if (!this.#finished && this.process.alive) {
      await this.process.request({ op: 'close', session: this.session }, CLOSE_DEADLINE_MS, () => new TenantryError('INTERNAL', 'A rollback took too long')).catch(ignore)
    }
    this.#done = true
    this.#finish()
  }

  #fetch(): Promise<ChildResponse> {
    const request = this.process.request(
      { op: 'cursor-next', session: this.session, closeIfIdle: true },
      Math.max(0, this.deadlineAt - Date.now()),
      this.onDeadline,
    )
    this.#inFlight = request.then(ignore, ignore)
    // Observed by `next`, or by nobody when the caller stops reading.
    request.catch(ignore)
    return request
  }

  #finish(): void {
    if (this.#finished) return
    this.#finished = true
    clearTimeout(this.#timer)
    this.hooks.finished(this.#rowsRead)
  }
}

function positive(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback
  if (!Number.isFinite(value) || value <= 0) throw new TenantryError('INVALID_OPTION', `${name} must be a positive number, not ${value}`)
  return value
}

function niceness(value: number | undefined): number {
  if (value === undefined) return 10
  if (!Number.isInteger(value) || value < 0 || value > 19) throw new TenantryError('INVALID_OPTION', `niceness must be an integer from 0 to 19, not ${value}`)
  return value
}

function nonNegative(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback
  if (!Number.isFinite(value) || value < 0) throw new TenantryError('INVALID_OPTION', `${name} must be zero or more, not ${value}`)
  return value
}
