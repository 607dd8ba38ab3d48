import type { KyselyPlugin, PluginTransformQueryArgs, PluginTransformResultArgs, QueryResult, RootOperationNode, UnknownRow } from 'kysely'
import type { Catalog, UsageCounts, UsageDelta } from '../catalog/catalog.js'
import type { StatementSink } from '../engines/engine.js'
import { SILENT_LOGGER, type Logger } from '../logger.js'

export interface UsageMeterOptions {
  /** How often counts are added to the catalog's `tenant_usage`. @default 10000 */
  flushIntervalMs?: number
  /** Measures a tenant's storage in bytes when its usage is flushed; undefined when it cannot. */
  measureStorage?: (tenantId: string) => Promise<number | undefined>
  /** @default SILENT_LOGGER */
  logger?: Logger
}

const ZERO: UsageCounts = { requests: 0, statements: 0, rowsRead: 0, rowsWritten: 0, execMs: 0 }

let day = ''
let dayEndsAt = 0
/** Today, UTC, as `YYYY-MM-DD`: usage rows are per tenant per day. Recomputed once a day, not per call (the hot path). */
function today(): string {
  const now = Date.now()
  if (now >= dayEndsAt) {
    day = new Date(now).toISOString().slice(0, 10)
    dayEndsAt = (Math.floor(now / 86_400_000) + 1) * 86_400_000
  }
  return day
}

/**
 * Usage per tenant: requests, statements, rows read and written, execution time, storage.
 * Counting is a few additions in memory on the hot path; counts are added to the catalog
 * (`tenant_usage`, per tenant per UTC day) every `flushIntervalMs` and on close, so a process
 * that dies loses at most that interval's counts. Several processes add up.
 */
export class UsageMeter {
  readonly #catalog: Catalog
  readonly #intervalMs: number
  readonly #measure: UsageMeterOptions['measureStorage']
  readonly #logger: Logger
  /** Not yet flushed, by UTC day, then by tenant id. */
  #pending = new Map<string, Map<string, UsageCounts>>()
  /** Today's part of `#pending` (found once a day, not once per statement), and its day. */
  #today: Map<string, UsageCounts> | undefined
  #todayIs = ''
  /** Since this process started, for `/metrics`. */
  readonly #totals = new Map<string, UsageCounts>()
  readonly #storage = new Map<string, number>()
  #timer: NodeJS.Timeout | undefined
  #flushing: Promise<void> = Promise.resolve()
  #closed = false

  constructor(catalog: Catalog, options: UsageMeterOptions = {}) {
    this.#catalog = catalog
    this.#intervalMs = options.flushIntervalMs ?? 10_000
    this.#measure = options.measureStorage
    this.#logger = options.logger ?? SILENT_LOGGER
  }

  /** Adds to a tenant's counts. */
  record(tenantId: string, delta: Partial<UsageCounts>): void {
    add(this.#pendingToday(), tenantId, delta)
    add(this.#totals, tenantId, delta)
  }

  /**
   * Counts one statement (what engines and the router's plugin call). It runs once per
   * statement, so it adds in place: no key string, no delta object (a few hundred ns less on a
   * prepared point read of ~6 µs).
   */
  readonly statement: StatementSink = (tenantId, usage) => {
    countStatement(countsOf(this.#pendingToday(), tenantId), usage)
    countStatement(countsOf(this.#totals, tenantId), usage)
  }

  /** Today's pending counts by tenant; starts the flush timer with the first count. */
  #pendingToday(): Map<string, UsageCounts> {
    const day = today()
    if (day !== this.#todayIs || !this.#today) {
      this.#todayIs = day
      this.#today = this.#pendingOn(day)
    }
    if (!this.#timer && !this.#closed) {
      this.#timer = setInterval(() => void this.flush(), this.#intervalMs)
      this.#timer.unref()
    }
    return this.#today
  }

  /** The pending counts of `day` by tenant, created empty. */
  #pendingOn(day: string): Map<string, UsageCounts> {
    let byTenant = this.#pending.get(day)
    if (!byTenant) this.#pending.set(day, (byTenant = new Map()))
    return byTenant
  }

  /** Counts since this process started, by tenant id. */
  totals(): ReadonlyMap<string, Readonly<UsageCounts>> {
    return this.#totals
  }

  /** Storage last measured (at a flush), by tenant id. */
  storage(): ReadonlyMap<string, number> {
    return this.#storage
  }

  /** Adds what was counted to the catalog now. Counts that fail to be written are kept for the next flush. */
  flush(): Promise<void> {
    this.#flushing = this.#flushing.then(() => this.#flush())
    return this.#flushing
  }

  /** Stops the timer and flushes once more. */
  async close(): Promise<void> {
    this.#closed = true
    clearInterval(this.#timer)
    this.#timer = undefined
    await this.flush()
  }

  async #flush(): Promise<void> {
    if (this.#pending.size === 0) return
    const pending = this.#pending
    this.#pending = new Map()
    this.#today = undefined
    const deltas: UsageDelta[] = []
    for (const [day, byTenant] of pending) {
      for (const [tenantId, counts] of byTenant) {
        const storageBytes = await this.#measure?.(tenantId).catch(() => undefined)
        if (storageBytes !== undefined) this.#storage.set(tenantId, storageBytes)
        deltas.push({ tenantId, day, counts, ...(storageBytes !== undefined ? { storageBytes } : {}) })
      }
    }
    try {
      await this.#catalog.addUsage(deltas)
    } catch (err) {
      // One at a time: a catalog that is down fails them all (kept for the next flush); a row the
      // catalog refuses alone (a tenant id it does not know) must not hold back everyone else's.
      const failed: UsageDelta[] = []
      for (const delta of deltas) await this.#catalog.addUsage([delta]).catch(() => failed.push(delta))
      if (failed.length === deltas.length) {
        for (const delta of deltas) add(this.#pendingOn(delta.day), delta.tenantId, delta.counts)
        this.#logger.warn({ err }, 'Writing tenant usage to the catalog failed; it is kept for the next flush')
      } else if (failed.length) {
        this.#logger.warn({ err, tenantIds: failed.map((d) => d.tenantId) }, 'The catalog refused the usage of some tenants; it was dropped')
      }
    }
  }
}

/** The counts kept under `key`, created at zero. */
function countsOf(map: Map<string, UsageCounts>, key: string): UsageCounts {
  let found = map.get(key)
  if (!found) map.set(key, (found = { ...ZERO }))
  return found
}

function countStatement(counts: UsageCounts, usage: Parameters<StatementSink>[1]): void {
  counts.statements++
  counts.rowsRead += usage.rowsRead
  counts.rowsWritten += usage.rowsWritten
  counts.execMs += usage.ms
}

function add(map: Map<string, UsageCounts>, key: string, delta: Partial<UsageCounts>): void {
  const counts = countsOf(map, key)
  counts.requests += delta.requests ?? 0
  counts.statements += delta.statements ?? 0
  counts.rowsRead += delta.rowsRead ?? 0
  counts.rowsWritten += delta.rowsWritten ?? 0
  counts.execMs += delta.execMs ?? 0
}

const WRITES = new Set(['InsertQueryNode', 'UpdateQueryNode', 'DeleteQueryNode', 'MergeQueryNode'])

/**
 * Meters the queries of one tenant's handle (the router adds it to every handle it opens):
 * one statement each, rows read (rows a read returned) or written (rows a write changed),
 * and the time from compiling to the result.
 */
export class UsagePlugin implements KyselyPlugin {
  readonly #started = new WeakMap<object, { at: number; writes: boolean }>()

  constructor(
    private readonly tenantId: string,
    private readonly sink: StatementSink,
  ) {}

  transformQuery(args: PluginTransformQueryArgs): RootOperationNode {
    this.#started.set(args.queryId, { at: performance.now(), writes: WRITES.has(args.node.kind) })
    return args.node
  }

  async transformResult(args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
    const started = this.#started.get(args.queryId)
    if (started) {
      const { result } = args
      const rowsWritten = started.writes ? Number(result.numAffectedRows ?? result.rows.length) : 0
      this.sink(this.tenantId, { rowsRead: started.writes ? 0 : result.rows.length, rowsWritten, ms: performance.now() - started.at })
    }
    return args.result
  }
}
