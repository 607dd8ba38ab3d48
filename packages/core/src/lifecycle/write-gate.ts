import { AsyncLocalStorage } from 'node:async_hooks'
import type { CompiledQuery, DatabaseConnection, Dialect, Driver, QueryResult, TransactionSettings } from 'kysely'
import { TenantryError } from '../errors.js'

/**
 * Per-tenant write gates of this process, on the in-process handles app code gets
 * (`tenantry.db()`, and the data API on Postgres, which runs on it). Two uses:
 *
 * - a live move pauses a tenant's writes for its last step (`pause`): a write waits, reads go
 *   on; when the move flips the tenant's placement, the writes that waited are answered
 *   `TENANT_MOVING` (retryable: the next call routes to the new placement), and when the move
 *   gives up they go on as if nothing happened;
 * - maintenance mode (`tenantry tenant maintenance --read-only`) refuses writes with
 *   `TENANT_MAINTENANCE` and the operator's message. The router sets it from the catalog on
 *   every resolve.
 *
 * The hot path costs one `Map.size` check while no tenant of the process is gated: that is
 * why the gates are one process-wide registry rather than state on each handle.
 */
interface GateState {
  /** Set while a move holds the tenant's writes. */
  pause?: { released: Promise<'flipped' | 'aborted'>; release(outcome: 'flipped' | 'aborted'): void }
  /** Set while the tenant is in maintenance: the message writes are refused with. */
  maintenance?: string
}

const gates = new Map<string, GateState>()
/** Set inside a move's own writes to the new placement, which must pass the gate it holds. */
const bypass = new AsyncLocalStorage<boolean>()

/** Holds `tenantId`'s writes in this process until the returned `release` is called. */
export function pauseWrites(tenantId: string): { release(outcome: 'flipped' | 'aborted'): void } {
  const state = gates.get(tenantId) ?? {}
  let release!: (outcome: 'flipped' | 'aborted') => void
  const released = new Promise<'flipped' | 'aborted'>((resolve) => (release = resolve))
  const pause = { released, release }
  state.pause = pause
  gates.set(tenantId, state)
  return {
    release(outcome) {
      const current = gates.get(tenantId)
      if (current?.pause === pause) {
        delete current.pause
        if (current.maintenance === undefined) gates.delete(tenantId)
      }
      pause.release(outcome)
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

/** Waits at, or is refused by, the tenant's gate; resolves when the write may run. */
async function admit(tenantId: string, query: CompiledQuery): Promise<void> {
  const state = gates.get(tenantId)
  if (!state || !isWrite(query) || bypass.getStore()) return
  if (state.maintenance !== undefined) {
    throw new TenantryError('TENANT_MAINTENANCE', state.maintenance, { details: { tenantId } })
  }
  if (state.pause) {
    const outcome = await state.pause.released
    if (outcome === 'flipped') {
      throw new TenantryError('TENANT_MOVING', 'The tenant moved while this write waited: retry it (it goes to the new placement)', {
        details: { tenantId, retryable: true },
      })
    }
    return admit(tenantId, query)
  }
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
  return new TenantryError('TENANT_MOVING', 'The tenant is being moved and its old placement takes no more writes: retry in a moment', {
    cause: error,
    details: { tenantId, retryable: true },
  })
}

class GatedConnection implements DatabaseConnection {
  constructor(
    readonly inner: DatabaseConnection,
    readonly tenantId: string,
  ) {}

  async executeQuery<R>(compiledQuery: CompiledQuery): Promise<QueryResult<R>> {
    if (gates.size > 0) await admit(this.tenantId, compiledQuery)
    try {
      return await this.inner.executeQuery<R>(compiledQuery)
    } catch (error) {
      throw translate(error, this.tenantId)
    }
  }

  async *streamQuery<R>(compiledQuery: CompiledQuery, chunkSize?: number): AsyncIterableIterator<QueryResult<R>> {
    if (gates.size > 0) await admit(this.tenantId, compiledQuery)
    yield* this.inner.streamQuery<R>(compiledQuery, chunkSize)
  }
}

const unwrap = (connection: DatabaseConnection) => (connection instanceof GatedConnection ? connection.inner : connection)

class GatedDriver implements Driver {
  constructor(
    readonly inner: Driver,
    readonly tenantId: string,
  ) {}
  init(): Promise<void> {
    return this.inner.init()
  }
  async acquireConnection(): Promise<DatabaseConnection> {
    return new GatedConnection(await this.inner.acquireConnection(), this.tenantId)
  }
  beginTransaction(connection: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    return this.inner.beginTransaction(unwrap(connection), settings)
  }
  commitTransaction(connection: DatabaseConnection): Promise<void> {
    return this.inner.commitTransaction(unwrap(connection))
  }
  rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    return this.inner.rollbackTransaction(unwrap(connection))
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
