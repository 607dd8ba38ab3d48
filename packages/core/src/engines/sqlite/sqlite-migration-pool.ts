import { availableParallelism } from 'node:os'
import { fileURLToPath } from 'node:url'
import { Worker } from 'node:worker_threads'
import type { Logger } from '../../logger.js'
import type { HandleMigrationOutcome } from '../../migrations/migration-set.js'
import type { EnginePlacement } from '../engine.js'
import { deserializeError, type MigrationJob, type MigrationWorkerData, type WorkerMessage } from './sqlite-migration-protocol.js'

export interface SqliteMigrationPoolOptions {
  /** Worker threads at most (`migrate` can raise it). @default the machine's available parallelism, at least 2 */
  size?: number
  /** Workers with nothing to do for this long stop (the next job starts them again). @default 10 s */
  idleMs?: number
  logger: Logger
}

interface Pending {
  job: MigrationJob
  resolve(outcome: HandleMigrationOutcome): void
  reject(error: unknown): void
}

interface Slot {
  worker: Worker
  running: Pending | undefined
  /** Settles when the running job has answered (at once when idle). */
  finished: Promise<void>
}

/**
 * Worker threads that migrate SQLite tenant files (`SqliteEngine.migrateOffThread`).
 * better-sqlite3 is synchronous: on the event loop's thread, a tenant's migration (opening the
 * file, the migration's statements, and the checkpoint and syncs of its close) holds every
 * other request of the process, and a fan-out over thousands of tenants uses one core. Here each
 * worker migrates one file at a time, so a fan-out uses every core and overlaps the syncs,
 * while the process keeps serving.
 */
export class SqliteMigrationPool {
  #size: number
  readonly #data: MigrationWorkerData
  readonly #logger: Logger
  readonly #idleMs: number
  readonly #slots: Slot[] = []
  readonly #queue: Pending[] = []
  #nextId = 1
  #idleTimer: NodeJS.Timeout | undefined
  #closed = false

  constructor(data: MigrationWorkerData, options: SqliteMigrationPoolOptions) {
    this.#data = data
    this.#logger = options.logger
    this.#size = Math.max(1, options.size ?? Math.max(2, availableParallelism()))
    this.#idleMs = options.idleMs ?? 10_000
  }

  /**
   * Migrates the tenant's file in a worker: what `migrateHandle` returns, the migrator's error
   * included. `threads`: the caller's parallelism (a fan-out's concurrency), which the pool
   * grows to, so as many tenants as it asked for are migrated at once.
   */
  migrate(placement: EnginePlacement, options: { storageLimit?: number | null; threads?: number } = {}): Promise<HandleMigrationOutcome> {
    if (this.#closed) return Promise.reject(new Error('The SQLite migration pool is closed'))
    if (options.threads !== undefined) this.#size = Math.max(this.#size, Math.floor(options.threads))
    const { storageLimit } = options
    return new Promise((resolve, reject) => {
      const job: MigrationJob = { id: this.#nextId++, placement, ...(storageLimit !== undefined ? { storageLimit } : {}) }
      this.#queue.push({ job, resolve, reject })
      this.#dispatch()
    })
  }

  /** Refuses what is queued, lets the migrations that are running finish, and stops the workers. */
  async close(): Promise<void> {
    this.#closed = true
    clearTimeout(this.#idleTimer)
    for (const pending of this.#queue.splice(0)) pending.reject(new Error('The SQLite migration pool closed before the job ran'))
    await Promise.all(this.#slots.map((slot) => slot.finished))
    await Promise.all(this.#slots.splice(0).map((slot) => slot.worker.terminate()))
  }

  #dispatch(): void {
    clearTimeout(this.#idleTimer)
    while (this.#queue.length > 0) {
      const slot = this.#slots.find((s) => s.running === undefined) ?? (this.#slots.length < this.#size ? this.#start() : undefined)
      if (!slot) return
      const pending = this.#queue.shift()!
      slot.running = pending
      slot.finished = new Promise<void>((settle) => {
        const { resolve, reject } = pending
        pending.resolve = (outcome) => (settle(), resolve(outcome))
        pending.reject = (error) => (settle(), reject(error))
      })
      slot.worker.ref() // a job in flight keeps the process alive until it answers
      slot.worker.postMessage(pending.job)
    }
    if (this.#slots.every((s) => s.running === undefined)) {
      this.#idleTimer = setTimeout(() => void this.#stopIdle(), this.#idleMs).unref()
    }
  }

  #start(): Slot {
    const worker = new Worker(workerEntry(), { workerData: this.#data })
    const slot: Slot = { worker, running: undefined, finished: Promise.resolve() }
    this.#slots.push(slot)
    worker.on('message', (message: WorkerMessage) => this.#onMessage(slot, message))
    worker.on('error', (error) => this.#logger.error({ err: error }, 'A SQLite migration worker failed'))
    worker.on('exit', (code) => {
      const index = this.#slots.indexOf(slot)
      if (index >= 0) this.#slots.splice(index, 1)
      const running = slot.running
      slot.running = undefined
      if (running) {
        running.reject(new Error(`The migration worker stopped (exit code ${code}) while migrating tenant ${running.job.placement.tenantId}`))
      }
      if (!this.#closed) this.#dispatch()
    })
    return slot
  }

  #onMessage(slot: Slot, message: WorkerMessage): void {
    if ('log' in message) {
      this.#logger[message.log.level](message.log.facts, message.log.message)
      return
    }
    const running = slot.running
    if (!running || running.job.id !== message.id) return
    slot.running = undefined
    slot.worker.unref()
    if ('failed' in message) running.reject(deserializeError(message.failed))
    else {
      const { applied, executed, error } = message.outcome
      running.resolve({ applied, executed, ...(error ? { error: deserializeError(error) } : {}) })
    }
    this.#dispatch()
  }

  async #stopIdle(): Promise<void> {
    const idle = this.#slots.filter((s) => s.running === undefined)
    for (const slot of idle) this.#slots.splice(this.#slots.indexOf(slot), 1)
    await Promise.all(idle.map((slot) => slot.worker.terminate()))
  }
}

/**
 * The worker's module: compiled JavaScript from dist; from the TypeScript source (tests), a
 * bootstrap that registers tsx in the worker first (a worker does not inherit `--import`).
 */
function workerEntry(): URL {
  const fromSource = fileURLToPath(import.meta.url).endsWith('.ts')
  return new URL(fromSource ? './sqlite-migration-worker-source.mjs' : './sqlite-migration-worker.js', import.meta.url)
}
