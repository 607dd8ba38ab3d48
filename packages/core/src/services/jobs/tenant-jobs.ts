import { randomUUID } from 'node:crypto'
import type { Job, Queue, Worker } from 'bullmq'
import type { Redis } from 'ioredis'
import type { z } from 'zod'
import type { TenantRecord } from '../../catalog/catalog.js'
import { TenantryError } from '../../errors.js'
import { SILENT_LOGGER, type Logger } from '../../logger.js'
import { scopeTenant, type TenantService } from '../scope.js'
import type { ResolvedJobsConfig } from '../services-config.js'

/**
 * `tenantry.jobs`: background jobs on BullMQ that carry their tenant (seed 002). A job is
 * defined once with a zod schema for its payload; enqueuing it inside `withTenant` validates
 * the payload (`VALIDATION_FAILED`) and records the tenant; the worker runs the handler inside
 * `withTenant` for that tenant, so the handler's `tenantry.db()`, cache and files are that
 * tenant's and no other's.
 *
 * **Fairness.** BullMQ's groups are a BullMQ Pro feature, so each tenant has its own queue
 * (`<prefix>:t-<tenantId>`), and the worker takes one job from each tenant that has one, in
 * turn (round-robin over a Redis set of tenants with jobs): a tenant's single job waits behind
 * at most one job of every other busy tenant, whatever their backlog.
 *
 * **Lifecycle.** A job of a *suspended* tenant (or one being moved or provisioned) is not run:
 * it goes back to the delayed set for `suspendedDelayMs` and is tried again, without using an
 * attempt. A job of a *deleted* or unknown tenant is dropped (removed, never run). A purge
 * removes the tenant's queue whole (`obliterate`).
 *
 * **Failures.** A handler that throws is retried up to `attempts` times with exponential
 * backoff from `backoffMs`; a job out of attempts stays in its tenant's failed set: the
 * tenant's dead letters (`deadLetters()`, `retryDeadLetter(id)`, `deleteDeadLetter(id)`).
 */
export class TenantJobs implements TenantService {
  readonly name = 'jobs'
  readonly #config: ResolvedJobsConfig | undefined
  readonly #definitions = new Map<string, JobDefinition<unknown>>()
  readonly #tenantOf: (tenantId: string) => Promise<TenantRecord | undefined>
  readonly #run: <T>(tenantId: string, fn: () => Promise<T>) => Promise<T>
  readonly #logger: Logger
  readonly #queues = new Map<string, Queue>()
  readonly #workers = new Map<string, Worker>()
  #connection: Promise<{ redis: Redis; bullmq: typeof import('bullmq') }> | undefined
  #loop: Promise<void> | undefined
  #stopping = false
  #cursor = 0
  #wake: (() => void) | undefined

  constructor(
    config: ResolvedJobsConfig | undefined,
    options: {
      /** The tenant's catalog record (its status), read fresh for every job; `undefined` if there is none. */
      tenantOf: (tenantId: string) => Promise<TenantRecord | undefined>
      /** Runs `fn` inside `withTenant` for the tenant. */
      run: <T>(tenantId: string, fn: () => Promise<T>) => Promise<T>
      logger?: Logger
    },
  ) {
    this.#config = config
    this.#tenantOf = options.tenantOf
    this.#run = options.run
    this.#logger = options.logger ?? SILENT_LOGGER
  }

  /** Whether `services.jobs` is configured: without it every call but `define` fails with `INVALID_CONFIG`. */
  get configured(): boolean {
    return this.#config !== undefined
  }

  /**
   * Defines a job. Define every job in every process (the ones that enqueue and the ones that
   * run them) before `start()`; a name is defined once.
   */
  define<P>(name: string, definition: JobDefinitionInput<P>): DefinedJob<P> {
    if (!/^[A-Za-z0-9_.:-]{1,128}$/.test(name)) throw new TenantryError('INVALID_OPTION', `A job name is 1-128 of A-Z, a-z, 0-9, _ . : -, not ${JSON.stringify(name)}`)
    if (this.#definitions.has(name)) throw new TenantryError('INVALID_OPTION', `A job named ${name} is defined already`)
    const attempts = definition.attempts ?? 3
    const backoffMs = definition.backoffMs ?? 1_000
    if (!Number.isInteger(attempts) || attempts < 1 || attempts > 100) throw new TenantryError('INVALID_OPTION', `attempts must be a whole number from 1 to 100, not ${String(attempts)}`)
    if (!Number.isInteger(backoffMs) || backoffMs < 0) throw new TenantryError('INVALID_OPTION', `backoffMs must be a whole number of milliseconds, not ${String(backoffMs)}`)
    this.#definitions.set(name, { ...definition, attempts, backoffMs } as JobDefinition<unknown>)
    return { name, enqueue: (payload, options) => this.enqueue(name, payload, options) }
  }

  /** Enqueues job `name` for the tenant in context; returns the job id. `NO_TENANT` outside `withTenant`. */
  async enqueue(name: string, payload: unknown, options: { delayMs?: number } = {}): Promise<string> {
    const tenant = scopeTenant('jobs')
    const definition = this.#definitions.get(name)
    if (!definition) throw new TenantryError('NOT_FOUND', `No job named ${JSON.stringify(name)} is defined (tenantry.jobs.define)`)
    const parsed = definition.schema.safeParse(payload)
    if (!parsed.success) {
      const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(payload)'}: ${i.message}`).join('; ')
      throw new TenantryError('VALIDATION_FAILED', `Invalid payload for job ${name}: ${issues}`, { details: { issues: parsed.error.issues } })
    }
    const delay = options.delayMs ?? 0
    if (!Number.isInteger(delay) || delay < 0) throw new TenantryError('INVALID_OPTION', `delayMs must be a whole number of milliseconds, not ${String(delay)}`)
    const queue = await this.#queue(tenant.id)
    const job = await queue.add(name, { tenantId: tenant.id, payload: parsed.data }, {
      jobId: randomUUID(),
      attempts: definition.attempts,
      backoff: { type: 'exponential', delay: definition.backoffMs },
      delay,
      removeOnComplete: true,
    })
    const { redis } = await this.#connect()
    await redis.sadd(this.#activeKey(), tenant.id)
    this.#wake?.()
    return job.id!
  }

  /** Jobs of the tenant in context that are waiting, delayed, running or dead. */
  async counts(): Promise<{ waiting: number; delayed: number; active: number; failed: number }> {
    const tenant = scopeTenant('jobs')
    const counts = await (await this.#queue(tenant.id)).getJobCounts('waiting', 'prioritized', 'delayed', 'active', 'failed')
    return { waiting: (counts.waiting ?? 0) + (counts.prioritized ?? 0), delayed: counts.delayed ?? 0, active: counts.active ?? 0, failed: counts.failed ?? 0 }
  }

  /** The tenant in context's dead letters: jobs out of attempts, newest first. */
  async deadLetters(options: { limit?: number } = {}): Promise<DeadLetter[]> {
    const tenant = scopeTenant('jobs')
    const limit = options.limit ?? 100
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new TenantryError('INVALID_OPTION', `limit must be a whole number from 1 to 1000, not ${String(limit)}`)
    const failed = await (await this.#queue(tenant.id)).getFailed(0, limit - 1)
    return failed.map((job) => ({
      id: job.id!,
      name: job.name,
      payload: (job.data as JobData).payload,
      attempts: job.attemptsMade,
      error: job.failedReason,
      failedAt: new Date(job.finishedOn ?? job.timestamp).toISOString(),
    }))
  }

  /** Puts a dead letter of the tenant in context back in its queue; whether there was one with that id. */
  async retryDeadLetter(id: string): Promise<boolean> {
    const tenant = scopeTenant('jobs')
    const queue = await this.#queue(tenant.id)
    const job = await queue.getJob(id)
    if (!job || (await job.getState()) !== 'failed') return false
    await job.retry('failed')
    const { redis } = await this.#connect()
    await redis.sadd(this.#activeKey(), tenant.id)
    this.#wake?.()
    return true
  }

  /**
   * Removes a dead letter of the tenant in context for good; whether there was one with that id.
   * A job of another tenant, or one not (or no longer) dead, is not touched: `false`.
   */
  async deleteDeadLetter(id: string): Promise<boolean> {
    const tenant = scopeTenant('jobs')
    const queue = await this.#queue(tenant.id)
    const job = await queue.getJob(id)
    if (!job || (await job.getState()) !== 'failed') return false
    await job.remove()
    return true
  }

  /**
   * Runs jobs in this process until `stop()`: one at a time, taking the next from each tenant
   * with jobs in turn. `idleMs`: how long to wait when no tenant has a job that is due.
   */
  start(options: { idleMs?: number } = {}): void {
    if (this.#loop) return
    this.#stopping = false
    const idleMs = options.idleMs ?? 200
    this.#loop = this.#runLoop(idleMs).catch((err: unknown) => this.#logger.error({ err }, 'The job worker stopped on an error'))
  }

  /** Stops taking jobs; waits for the one running to finish. */
  async stop(): Promise<void> {
    this.#stopping = true
    this.#wake?.()
    await this.#loop
    this.#loop = undefined
  }

  /**
   * Takes and runs at most one job of each tenant with jobs, in turn; returns how many ran (or
   * were delayed or dropped). `start()` calls it in a loop; tests call it to step the worker.
   */
  async runRound(): Promise<number> {
    const { redis } = await this.#connect()
    const tenants = (await redis.smembers(this.#activeKey())).sort()
    if (tenants.length === 0) return 0
    // Start each round one tenant further, so no tenant is always first.
    const start = this.#cursor++ % tenants.length
    let handled = 0
    for (let i = 0; i < tenants.length && !this.#stopping; i++) {
      const tenantId = tenants[(start + i) % tenants.length]!
      if (await this.#takeOne(tenantId)) handled++
    }
    return handled
  }

  async purgeTenant(tenantId: string): Promise<{ jobs: number }> {
    if (!this.#config) return { jobs: 0 }
    const { redis } = await this.#connect()
    const queue = await this.#queue(tenantId)
    const counts = await queue.getJobCounts('waiting', 'prioritized', 'delayed', 'active', 'failed', 'completed')
    const jobs = Object.values(counts).reduce((a, b) => a + b, 0)
    await this.#workers.get(tenantId)?.close()
    this.#workers.delete(tenantId)
    await queue.obliterate({ force: true })
    await queue.close()
    this.#queues.delete(tenantId)
    await redis.srem(this.#activeKey(), tenantId)
    return { jobs }
  }

  async close(): Promise<void> {
    await this.stop()
    const connection = this.#connection
    if (!connection) return
    await Promise.allSettled([...this.#workers.values()].map((w) => w.close()))
    await Promise.allSettled([...this.#queues.values()].map((q) => q.close()))
    this.#workers.clear()
    this.#queues.clear()
    this.#connection = undefined
    await (await connection).redis.quit().catch(() => undefined)
  }

  /** The BullMQ queue name of a tenant (its keys are `<prefix>:<name>:…`). */
  queueName(tenantId: string): string {
    return `t-${tenantId}`
  }

  async #runLoop(idleMs: number): Promise<void> {
    while (!this.#stopping) {
      let handled = 0
      try {
        handled = await this.runRound()
      } catch (err) {
        this.#logger.error({ err }, 'A job worker round failed; retrying')
      }
      if (handled === 0 && !this.#stopping) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(done, idleMs)
          function done() {
            clearTimeout(timer)
            resolve()
          }
          this.#wake = done
        })
        this.#wake = undefined
      }
    }
  }

  /** Takes the tenant's next due job and runs, delays or drops it; whether there was one. */
  async #takeOne(tenantId: string): Promise<boolean> {
    const worker = await this.#worker(tenantId)
    const token = randomUUID()
    const job = (await worker.getNextJob(token, { block: false })) as Job<JobData> | undefined
    if (!job) {
      await this.#retireIfIdle(tenantId)
      return false
    }
    const tenant = await this.#tenantOf(tenantId)
    if (!tenant || tenant.purgedAt || tenant.status === 'deleted' || tenant.status === 'deleting') {
      // Dropped: the tenant is gone, so is its work.
      await job.moveToCompleted({ dropped: 'tenant deleted' }, token, false)
      this.#logger.warn({ tenantId, jobId: job.id, job: job.name }, 'Dropped a job of a deleted tenant')
      return true
    }
    if (tenant.status !== 'ready') {
      await job.moveToDelayed(Date.now() + this.#config!.suspendedDelayMs, token)
      return true
    }
    const definition = this.#definitions.get(job.name)
    const lock = setInterval(() => void job.extendLock(token, this.#config!.lockMs).catch(() => undefined), Math.max(1_000, this.#config!.lockMs / 2))
    try {
      if (!definition) throw new TenantryError('NOT_FOUND', `No job named ${JSON.stringify(job.name)} is defined in this process`)
      const payload = definition.schema.parse(job.data.payload)
      const result = await this.#run(tenantId, () => definition.handler(payload, { id: job.id!, name: job.name, attempt: job.attemptsMade + 1, tenantId }))
      clearInterval(lock)
      await job.moveToCompleted(result ?? null, token, false)
    } catch (error) {
      clearInterval(lock)
      const err = error instanceof Error ? error : new Error(String(error))
      await job.moveToFailed(err, token, false)
      this.#logger.warn({ err, tenantId, jobId: job.id, job: job.name, attempt: job.attemptsMade }, 'A job failed')
    }
    return true
  }

  /** Leaves the round-robin when the tenant has nothing waiting or delayed, and lets its worker go. */
  async #retireIfIdle(tenantId: string): Promise<void> {
    const { redis } = await this.#connect()
    const queue = await this.#queue(tenantId)
    const pending = async () => {
      const c = await queue.getJobCounts('waiting', 'prioritized', 'delayed', 'active')
      return Object.values(c).reduce((a, b) => a + b, 0)
    }
    if ((await pending()) > 0) return
    await redis.srem(this.#activeKey(), tenantId)
    // A job enqueued between the count and the removal: back in the round.
    if ((await pending()) > 0) await redis.sadd(this.#activeKey(), tenantId)
    else {
      await this.#workers.get(tenantId)?.close()
      this.#workers.delete(tenantId)
    }
  }

  #activeKey(): string {
    return `${this.#config!.prefix}:tenants-with-jobs`
  }

  #connect(): Promise<{ redis: Redis; bullmq: typeof import('bullmq') }> {
    const config = this.#config
    if (!config) return Promise.reject(new TenantryError('INVALID_CONFIG', 'tenantry.jobs needs services.jobs.url (a Redis URL) in the config'))
    this.#connection ??= Promise.all([import('ioredis'), import('bullmq')]).then(([{ Redis }, bullmq]) => {
      const redis = new Redis(config.url, { maxRetriesPerRequest: null })
      redis.on('error', (err) => this.#logger.warn({ err }, 'The jobs Redis connection failed'))
      return { redis, bullmq }
    })
    return this.#connection
  }

  async #queue(tenantId: string): Promise<Queue> {
    const { redis, bullmq } = await this.#connect()
    let queue = this.#queues.get(tenantId)
    if (!queue) {
      queue = new bullmq.Queue(this.queueName(tenantId), { connection: redis, prefix: this.#config!.prefix })
      this.#queues.set(tenantId, queue)
    }
    return queue
  }

  async #worker(tenantId: string): Promise<Worker> {
    const { redis, bullmq } = await this.#connect()
    let worker = this.#workers.get(tenantId)
    if (!worker) {
      // No processor: this class takes jobs itself (getNextJob), so that it can go round the tenants.
      worker = new bullmq.Worker(this.queueName(tenantId), null, { connection: redis, prefix: this.#config!.prefix, autorun: false, lockDuration: this.#config!.lockMs })
      worker.on('error', (err) => this.#logger.warn({ err, tenantId }, 'A job worker connection failed'))
      this.#workers.set(tenantId, worker)
    }
    return worker
  }
}

/** What `define` takes. */
export interface JobDefinitionInput<P> {
  /** Checks the payload when it is enqueued (and again before it runs). */
  schema: z.ZodType<P>
  /** Runs inside `withTenant` for the job's tenant. Throw to fail the attempt. */
  handler: (payload: P, job: JobContext) => Promise<unknown>
  /** Tries in all, the first included. @default 3 */
  attempts?: number
  /** The first retry waits this long, each next one twice as long. @default 1000 */
  backoffMs?: number
}

interface JobDefinition<P> extends JobDefinitionInput<P> {
  attempts: number
  backoffMs: number
}

/** What a handler learns about its job. */
export interface JobContext {
  id: string
  name: string
  /** 1 for the first try. */
  attempt: number
  tenantId: string
}

/** A defined job, to enqueue with its payload type checked. */
export interface DefinedJob<P> {
  readonly name: string
  enqueue(payload: P, options?: { delayMs?: number }): Promise<string>
}

/** A job of the tenant that ran out of attempts. */
export interface DeadLetter {
  id: string
  name: string
  payload: unknown
  attempts: number
  error: string
  failedAt: string
}

interface JobData {
  tenantId: string
  payload: unknown
}
