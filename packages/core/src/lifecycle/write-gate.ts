import { AsyncLocalStorage } from 'node:async_hooks'
import type {
  CompiledQuery,
  DatabaseConnection,
  Dialect,
  Driver,
  KyselyPlugin,
  PluginTransformQueryArgs,
  PluginTransformResultArgs,
  QueryId,
  QueryResult,
  RootOperationNode,
  TransactionSettings,
  UnknownRow,
} from 'kysely'
import { TenantryError } from '../errors.js'

/**
 * Per-tenant write gates of this process, on the in-process handles app code gets
 * (`tenantry.db()`, and the data API on Postgres, which runs on it). Two uses:
 *
 * - a live move pauses a tenant's writes for its last step (`pause`): a write waits, reads go
 *   on; when the move flips the tenant's placement, a write that waited on its own (outside a
 *   transaction) runs on the new placement, recompiled there from its query tree, so its caller
 *   sees a pause and never an error; a write that waited inside a transaction (which read the
 *   old placement) is answered `TENANT_MOVING` (retryable: the next call routes to the new
 *   placement). When the move gives up, the writes go on as if nothing happened;
 * - maintenance mode (`tenantry tenant maintenance --read-only`) refuses writes with
 *   `TENANT_MAINTENANCE` and the operator's message. The router sets it from the catalog on
 *   every resolve.
 *
 * The hot path costs one `Map.size` check while no tenant of the process is gated: that is
 * why the gates are one process-wide registry rather than state on each handle.
 */
/** Runs a write that waited at the gate on the tenant's new placement (the query tree, compiled there). */
export type Redirect = (query: CompiledQuery) => Promise<QueryResult<unknown>>

/** A move's hold on a tenant's writes in this process. */
export interface WriteGate {
  /**
   * Opens the gate. `flipped` with a `redirect`: from now until `close`, writes outside a
   * transaction on a handle opened before the flip (those that waited, and those of a call that
   * resolved the old placement) run through it, on the new placement; inside a transaction, or
   * without a redirect, they run on the old placement, which refuses them (`TENANT_MOVING`).
   */
  /**
   * Resolves once the writes of this process that passed the gate before it closed have settled
   * (or after `timeoutMs`): the move freezes the old placement only then, so a write that was on
   * its way to the database when the pause began (waiting for a pooled connection, or on the
   * wire) commits there and is captured, instead of meeting the freeze as a `TENANT_MOVING` error.
   */
  settled(timeoutMs: number): Promise<void>
  release(outcome: 'flipped' | 'aborted', redirect?: Redirect): void
  /** Ends the redirect and resolves once every write sent through it has settled (its handle may close then). */
  close(): Promise<void>
}

/** A tenant that flipped: handles older than `epoch` send their writes through `run`. */
interface Flipped {
  epoch: number
  run(query: CompiledQuery): Promise<QueryResult<unknown>>
}

/**
 * Each query's tree as the app built it, before the handle's own plugins (a schema, a tenant
 * filter) rewrote it for the old placement: what a redirect compiles for the new one.
 */
const appQueries = new WeakMap<QueryId, RootOperationNode>()

/**
 * The first plugin of a gated handle whose Kysely has plugins of its own (Postgres: the
 * schema, the tenant's row filter): it remembers each query's tree before they run.
 */
export class AppQueryPlugin implements KyselyPlugin {
  transformQuery(args: PluginTransformQueryArgs): RootOperationNode {
    appQueries.set(args.queryId, args.node)
    return args.node
  }
  transformResult(args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
    return Promise.resolve(args.result)
  }
}

/** The tree of a query as the app built it (see `AppQueryPlugin`), else as it was compiled. */
export function appQueryOf(query: CompiledQuery): RootOperationNode {
  return appQueries.get(query.queryId) ?? query.query
}

/** Bumped at every flip; each gated driver remembers the value it was created at. */
let epoch = 0
const flipped = new Map<string, Flipped>()

interface GateState {
  /** Set while a move holds the tenant's writes. */
  pause?: { released: Promise<void> }
  /** Set while the tenant is in maintenance: the message writes are refused with. */
  maintenance?: string
}

const gates = new Map<string, GateState>()

/** Per tenant: writes of this process running on its current placement, and who waits for none to be left. */
const running = new Map<string, { count: number; idle: Array<() => void> }>()

/** Counts a write as running on `tenantId`'s placement; returns its end. */
function startWrite(tenantId: string): () => void {
  let entry = running.get(tenantId)
  if (!entry) running.set(tenantId, (entry = { count: 0, idle: [] }))
  entry.count++
  return () => {
    if (--entry.count > 0) return
    running.delete(tenantId)
    for (const wake of entry.idle) wake()
  }
}

function writesSettled(tenantId: string, timeoutMs: number): Promise<void> {
  const entry = running.get(tenantId)
  if (!entry) return Promise.resolve()
  return new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, timeoutMs)
    timer.unref()
    entry.idle.push(() => {
      clearTimeout(timer)
      resolve()
    })
  })
}
/** Set inside a move's own writes to the new placement, which must pass the gate it holds. */
const bypass = new AsyncLocalStorage<boolean>()

/** Holds `tenantId`'s writes in this process until the returned `release` is called. */
export function pauseWrites(tenantId: string): WriteGate {
  const state = gates.get(tenantId) ?? {}
  let resolve!: () => void
  const pause = { released: new Promise<void>((r) => (resolve = r)) }
  state.pause = pause
  gates.set(tenantId, state)
  const inflight = new Set<Promise<unknown>>()
  let entry: Flipped | undefined
  return {
    settled: (timeoutMs) => writesSettled(tenantId, timeoutMs),
    release(outcome, redirect) {
      if (outcome === 'flipped' && redirect) {
        entry = {
          epoch: ++epoch,
          run(query) {
            // Past the gates: the new placement's handle is the move's own, opened before the flip.
            const running = bypassWriteGate(() => redirect(query))
            const settled = running.catch(() => undefined).finally(() => inflight.delete(settled))
            inflight.add(settled)
            return running
          },
        }
        flipped.set(tenantId, entry)
      }
      const current = gates.get(tenantId)
      if (current?.pause === pause) {
        delete current.pause
        if (current.maintenance === undefined) gates.delete(tenantId)
      }
      resolve()
    },
    async close() {
      // Writes that waited resume a few microtasks after the release: let them reach the redirect first.
      await new Promise((r) => setImmediate(r))
      if (entry && flipped.get(tenantId) === entry) flipped.delete(tenantId)
      while (inflight.size > 0) await Promise.all([...inflight])
    },
  }
}

/** Sets (a message) or lifts (`undefined`) maintenance mode for `tenantId` in this process. */
export function setMaintenance(tenantId: string, message: string | undefined): void {
  const state = gates.get(tenantId)
  if (message === undefined) {
    if (!state) return
    delete state.maintenance
    if (!state.pause) gates.delete(tenantId)
    return
  }
  gates.set(tenantId, { ...state, maintenance: message })
}

/** Whether any tenant of this process is gated now: fast paths that skip the gate must not run while one is. */
export function writeGatesSet(): boolean {
  return gates.size > 0 || flipped.size > 0
}

/** Runs `fn` past the gates: a move's own writes to the tenant's new placement. @internal */
export function bypassWriteGate<T>(fn: () => Promise<T>): Promise<T> {
  return bypass.run(true, fn)
}

/** Writes: DML nodes, and raw SQL whose first word writes (or a `WITH` that holds a write). */
const RAW_WRITE = /^\s*(insert|update|delete|replace|merge|upsert|truncate|copy)\b/i
const RAW_WITH_WRITE = /^\s*with\b[\s\S]*\b(insert|update|delete)\b/i
function isWrite(query: CompiledQuery): boolean {
  const kind = query.query.kind
  if (kind === 'SelectQueryNode') return false
  if (kind === 'InsertQueryNode' || kind === 'UpdateQueryNode' || kind === 'DeleteQueryNode' || kind === 'MergeQueryNode') return true
  if (kind === 'RawNode') return RAW_WRITE.test(query.sql) || RAW_WITH_WRITE.test(query.sql)
  return false
}

/**
 * Waits at, or is refused by, the tenant's gate. Resolves when the write may run here, or to
 * where it runs instead: the new placement, when the tenant moved while the write waited.
 */
async function admit(tenantId: string, query: CompiledQuery, inTransaction: boolean, openedAt: number): Promise<(() => Promise<QueryResult<unknown>>) | undefined> {
  if (!isWrite(query) || bypass.getStore()) return undefined
  const state = gates.get(tenantId)
  if (state?.maintenance !== undefined) {
    throw new TenantryError('TENANT_MAINTENANCE', state.maintenance, { details: { tenantId } })
  }
  if (state?.pause) {
    await state.pause.released
    return admit(tenantId, query, inTransaction, openedAt)
  }
  const flip = flipped.get(tenantId)
  // A handle of the old placement: a write on its own goes on where the tenant now is. One inside
  // a transaction cannot (its reads came from here): the old placement refuses it, retryable.
  if (flip && openedAt < flip.epoch && !inTransaction) return () => flip.run(query)
  return undefined
}

/**
 * A write the source's move triggers refused (another process's, SQLite's executor, or a handle
 * older than the flip), as the retryable `TENANT_MOVING`; any other error as it is.
 */
export function translateMovingError(error: unknown, tenantId: string): unknown {
  return translate(error, tenantId)
}

function translate(error: unknown, tenantId: string): unknown {
  const text = error instanceof Error ? error.message : ''
  if (!text.includes('TENANT_MOVING')) return error
  // TRUNCATE during a move (Postgres): refused by its own trigger, with its own reason.
  const truncate = /TRUNCATE is refused[^\n]*/.exec(text)?.[0]
  return new TenantryError('TENANT_MOVING', truncate ?? 'The tenant is being moved and its old placement takes no more writes: retry in a moment', {
    cause: error,
    details: { tenantId, retryable: true },
  })
}

class GatedConnection implements DatabaseConnection {
  /** Between the driver's begin and its commit or rollback. */
  inTransaction = false

  constructor(
    readonly inner: DatabaseConnection,
    readonly tenantId: string,
    /** The flip epoch its driver was created at. */
    readonly openedAt: number,
  ) {}

  async executeQuery<R>(compiledQuery: CompiledQuery): Promise<QueryResult<R>> {
    const elsewhere = gates.size > 0 || flipped.size > 0 ? await admit(this.tenantId, compiledQuery, this.inTransaction, this.openedAt) : undefined
    // A write on its way to this placement: a move's pause waits for it before freezing (see `settled`).
    const end = elsewhere === undefined && isWrite(compiledQuery) && !bypass.getStore() ? startWrite(this.tenantId) : undefined
    try {
      return elsewhere ? ((await elsewhere()) as QueryResult<R>) : await this.inner.executeQuery<R>(compiledQuery)
    } catch (error) {
      throw translate(error, this.tenantId)
    } finally {
      end?.()
    }
  }

  async *streamQuery<R>(compiledQuery: CompiledQuery, chunkSize?: number): AsyncIterableIterator<QueryResult<R>> {
    // A streamed write that waited while the tenant moved is refused (as inside a transaction): streams are for reads.
    if (gates.size > 0 || flipped.size > 0) await admit(this.tenantId, compiledQuery, true, this.openedAt)
    yield* this.inner.streamQuery<R>(compiledQuery, chunkSize)
  }
}

const unwrap = (connection: DatabaseConnection) => (connection instanceof GatedConnection ? connection.inner : connection)

class GatedDriver implements Driver {
  /** Handles opened before a flip of their tenant send writes to its new placement (see `admit`). */
  readonly openedAt = epoch
  constructor(
    readonly inner: Driver,
    readonly tenantId: string,
  ) {}
  init(): Promise<void> {
    return this.inner.init()
  }
  async acquireConnection(): Promise<DatabaseConnection> {
    return new GatedConnection(await this.inner.acquireConnection(), this.tenantId, this.openedAt)
  }
  async beginTransaction(connection: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    await this.inner.beginTransaction(unwrap(connection), settings)
    if (connection instanceof GatedConnection) connection.inTransaction = true
  }
  async commitTransaction(connection: DatabaseConnection): Promise<void> {
    if (connection instanceof GatedConnection) connection.inTransaction = false
    await this.inner.commitTransaction(unwrap(connection))
  }
  async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    if (connection instanceof GatedConnection) connection.inTransaction = false
    await this.inner.rollbackTransaction(unwrap(connection))
  }
  releaseConnection(connection: DatabaseConnection): Promise<void> {
    return this.inner.releaseConnection(unwrap(connection))
  }
  destroy(): Promise<void> {
    return this.inner.destroy()
  }
}

/**
 * `dialect` with `tenantId`'s write gate on every connection: what engines open app handles
 * with. Savepoints are left to Kysely's defaults through the connection (they are not writes).
 */
export function gatedDialect(dialect: Dialect, tenantId: string): Dialect {
  return {
    createAdapter: () => dialect.createAdapter(),
    createDriver: () => {
      const inner = dialect.createDriver()
      const driver = new GatedDriver(inner, tenantId)
      // Savepoints, where the driver has them, on the inner connection.
      for (const method of ['savepoint', 'rollbackToSavepoint', 'releaseSavepoint'] as const) {
        const fn = inner[method]
        if (fn) (driver as unknown as Record<string, unknown>)[method] = (connection: DatabaseConnection, ...rest: unknown[]) => (fn as (...a: unknown[]) => Promise<void>).call(inner, unwrap(connection), ...rest)
      }
      return driver
    },
    createIntrospector: (db) => dialect.createIntrospector(db),
    createQueryCompiler: () => dialect.createQueryCompiler(),
  }
}
