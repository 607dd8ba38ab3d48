import type { Kysely } from 'kysely'
import { currentScope, type TenantScope } from '../context.js'
import { NoTenantError, TenantryError } from '../errors.js'
import type { Catalog, TenantRecord } from '../catalog/catalog.js'
import type { DataSources } from '../data-sources/data-sources.js'
import type { DatabaseEngine, EngineHandle, StatementSink } from '../engines/engine.js'
import { UsagePlugin } from '../usage/usage-meter.js'
import { SILENT_LOGGER, type Logger } from '../logger.js'
import { TenantGuardPlugin } from './tenant-guard-plugin.js'
import { setMaintenance } from '../lifecycle/write-gate.js'

/** The handle app code uses: a Kysely instance confined to one tenant (raw SQL via `sql`, transactions via `transaction()`). */
export type TenantDb<DB = any> = Kysely<DB>

export interface RouterOptions {
  /**
   * How long a resolved placement is trusted before the catalog is asked again. A tenant
   * that is not `ready` is trusted for at most one second, so one that becomes ready in
   * another process serves here soon after.
   * @default 30000
   */
  placementTtlMs?: number
  /**
   * Open tenant handles kept at most. Least recently used idle handles are closed past it;
   * a handle in use by a running `withTenant` call is never closed, so the budget can be
   * exceeded briefly while more tenants than this are busy at once.
   * @default 256
   */
  maxOpenHandles?: number
}

/** What the router asks of quotas and usage metering (wired by `createTenantry`). */
export interface RouterHooks {
  /** The tenant's storage quota in bytes (null: none), handed to its engine on every resolve. */
  storageLimit?(tenant: TenantRecord): Promise<number | null>
  /** Where the statements of tenant handles, and of engines' own connections, are counted. */
  meter?: StatementSink
}

export interface RouterStats {
  placementHits: number
  placementMisses: number
  handleHits: number
  /** Handles opened: every handle miss opens one. */
  opens: number
  evictions: number
  openHandles: number
  cachedPlacements: number
}

/** How a tenant is named: its slug, its id, or its external id (`createTenant({ externalId })`). */
export type TenantKey = string | { id: string } | { externalId: string }

/** The longest a placement of a tenant that is not `ready` is cached. */
const NOT_READY_TTL_MS = 1000

interface PlacementEntry {
  tenant: TenantRecord
  expiresAt: number
}

export interface HandleEntry {
  readonly tenantId: string
  readonly handle: EngineHandle
  readonly db: TenantDb
  pins: number
  retired: boolean
  /** `tenantry.prepare` queries compiled for this handle, dropped when it closes. */
  readonly prepared: Map<object, unknown>
}

/** What a `withTenant` call carries for the router: the placement it was admitted with, then its handle. */
export interface RouteState {
  readonly tenant: TenantRecord
  entry?: HandleEntry
}

/**
 * Turns a tenant into a ready `TenantDb`: caches placements (TTL + explicit invalidation)
 * and keeps an LRU of open handles under a budget.
 */
export class Router {
  readonly #catalog: Catalog
  readonly #dataSources: DataSources
  /** Engines of resolved placements, so that `db()` can open a handle synchronously. */
  readonly #engines = new Map<string, DatabaseEngine>()
  readonly #ttl: number
  readonly #budget: number
  readonly #bySlug = new Map<string, PlacementEntry>()
  readonly #byId = new Map<string, PlacementEntry>()
  /** Tenants resolved by external id (`{ externalId }`), cached like slugs. */
  readonly #byExternalId = new Map<string, PlacementEntry>()
  /** Insertion order is recency order: a hit moves the entry to the end. */
  readonly #handles = new Map<string, HandleEntry>()
  /** The entry last moved to the end of `#handles` (the most recently leased), while it is there. */
  #newest: HandleEntry | undefined
  readonly #closing = new Set<Promise<void>>()
  readonly #logger: Logger
  readonly #hooks: RouterHooks
  #closed = false
  /** Bumped by every invalidation: a resolve that read the catalog before one does not cache what it read. */
  #generation = 0
  readonly #stats = { placementHits: 0, placementMisses: 0, handleHits: 0, opens: 0, evictions: 0 }

  /** `logger` hears of handles that failed to close: nobody waits on those closes to throw to. */
  constructor(catalog: Catalog, dataSources: DataSources, options: RouterOptions = {}, logger: Logger = SILENT_LOGGER, hooks: RouterHooks = {}) {
    this.#hooks = hooks
    this.#catalog = catalog
    this.#dataSources = dataSources
    this.#logger = logger
    this.#ttl = options.placementTtlMs ?? 30_000
    this.#budget = Math.max(1, options.maxOpenHandles ?? 256)
  }

  /** The tenant's record if the placement cache holds a fresh one; counts a hit. Synchronous: the hot path. */
  cached(tenant: TenantKey): TenantRecord | undefined {
    const entry = typeof tenant === 'string' ? this.#bySlug.get(tenant) : 'id' in tenant ? this.#byId.get(tenant.id) : this.#byExternalId.get(tenant.externalId)
    if (!entry || entry.expiresAt <= Date.now()) return undefined
    this.#stats.placementHits++
    return entry.tenant
  }

  /**
   * The catalog record of a tenant named by slug (a string) or by `{ id }`, from the
   * placement cache when fresh. Throws `TENANT_NOT_FOUND`.
   */
  async resolve(tenant: TenantKey): Promise<TenantRecord> {
    const cached = this.cached(tenant)
    if (cached) return cached
    if (typeof tenant !== 'string' && !('id' in tenant)) return this.#resolveExternal(tenant.externalId)
    const byId = typeof tenant !== 'string'
    const key = byId ? tenant.id : tenant
    this.#stats.placementMisses++
    const generation = this.#generation
    const record = byId ? await this.#catalog.findTenantById(key) : await this.#catalog.findTenantBySlug(key)
    if (!record || record.purgedAt) {
      throw new TenantryError('TENANT_NOT_FOUND', `Tenant ${byId ? key : `"${key}"`} not found`)
    }
    let engine = this.#engines.get(record.placement.dataSourceId)
    if (!engine) {
      engine = await this.#dataSources.engine(record.placement.dataSourceId)
      if (this.#hooks.meter) engine.meterWith?.(this.#hooks.meter)
      this.#engines.set(record.placement.dataSourceId, engine)
    }
    // Every resolve refreshes the quota the engine enforces: a change made elsewhere applies within the TTL.
    if (engine.storage && this.#hooks.storageLimit && record.status === 'ready') {
      engine.storage.setLimit(record.id, await this.#hooks.storageLimit(record))
    }
    // Maintenance mode as the catalog says now: this process's write gate follows it (within the TTL elsewhere).
    setMaintenance(record.id, record.maintenance ?? undefined)
    // A tenant that is not ready is about to change (a create finishing, a resume): trust that briefly.
    const ttl = record.status === 'ready' ? this.#ttl : Math.min(this.#ttl, NOT_READY_TTL_MS)
    const entry = { tenant: record, expiresAt: Date.now() + ttl }
    if (generation !== this.#generation) return record
    this.#byId.set(record.id, entry)
    this.#bySlug.set(record.slug, entry)
    return record
  }

  /** `resolve({ externalId })`: the catalog finds the tenant's id, then it resolves (and caches) as by id. */
  async #resolveExternal(externalId: string): Promise<TenantRecord> {
    this.#stats.placementMisses++
    const found = typeof externalId === 'string' ? await this.#catalog.findTenantByExternalId(externalId) : undefined
    if (!found) throw new TenantryError('TENANT_NOT_FOUND', `No tenant carries external id ${JSON.stringify(String(externalId)).slice(0, 80)}`)
    const record = await this.resolve({ id: found.id })
    const entry = this.#byId.get(record.id)
    if (entry) this.#byExternalId.set(externalId, entry)
    return record
  }

  /**
   * The current tenant's `TenantDb`. Throws `NoTenantError` outside `withTenant`. The handle
   * stays open at least until the `withTenant` call that took it settles.
   */
  db<DB = any>(): TenantDb<DB> {
    return this.current().db as TenantDb<DB>
  }

  /** @internal The current tenant's handle entry, leased as `db()` leases it (`tenantry.prepare` runs on it). */
  current(): HandleEntry {
    const scope = currentScope()
    if (!scope) throw new NoTenantError()
    const route = scope.route as RouteState | undefined
    if (route?.entry) return route.entry
    if (!route || route.tenant.id !== scope.tenant.id) {
      throw new TenantryError('TENANT_NOT_READY', `Tenant ${scope.tenant.slug} was not admitted: enter it with tenantry.withTenant()`)
    }
    if (this.#closed) throw new TenantryError('CLOSED', 'Tenantry is closed: no new tenant handles are opened')
    route.entry = this.#lease(route.tenant, scope)
    return route.entry
  }

  /** Where the statements of tenant handles are counted (the prepared path meters itself). @internal */
  get meter(): StatementSink | undefined {
    return this.#hooks.meter
  }

  /** Drops the cached placement and closes the tenant's handle once no call uses it. */
  invalidate(tenantId: string): void {
    this.#generation++
    const placement = this.#byId.get(tenantId)
    if (placement) {
      this.#byId.delete(tenantId)
      if (this.#bySlug.get(placement.tenant.slug) === placement) this.#bySlug.delete(placement.tenant.slug)
      const externalId = placement.tenant.externalId
      if (externalId !== null && this.#byExternalId.get(externalId) === placement) this.#byExternalId.delete(externalId)
    }
    const entry = this.#handles.get(tenantId)
    if (entry) this.#retire(entry)
  }

  /** `invalidate` for every tenant: changes may have been missed (the change feed reconnected). */
  invalidateAll(): void {
    this.#generation++
    this.#byId.clear()
    this.#bySlug.clear()
    this.#byExternalId.clear()
    for (const entry of [...this.#handles.values()]) this.#retire(entry)
  }

  stats(): RouterStats {
    return { ...this.#stats, openHandles: this.#handles.size, cachedPlacements: this.#byId.size }
  }

  /**
   * Refuses new handles, closes idle ones, and waits for handles still held by running
   * calls to be released (those calls finish normally).
   */
  async close(): Promise<void> {
    this.#closed = true
    for (const entry of [...this.#handles.values()]) this.#retire(entry)
    this.#byId.clear()
    this.#bySlug.clear()
    this.#byExternalId.clear()
    while (this.#closing.size > 0) await Promise.all([...this.#closing])
  }

  #lease(tenant: TenantRecord, scope: TenantScope): HandleEntry {
    let entry = this.#handles.get(tenant.id)
    let opened = false
    if (entry) {
      this.#stats.handleHits++
      // Recency: a hit moves to the end (Map keeps insertion order), unless it is there already.
      if (entry !== this.#newest) {
        this.#handles.delete(tenant.id)
        this.#handles.set(tenant.id, entry)
        this.#newest = entry
      }
    } else {
      const engine = this.#engines.get(tenant.placement.dataSourceId)
      if (!engine) throw new TenantryError('DATA_SOURCE_NOT_FOUND', `Data source ${tenant.placement.dataSourceId} is not open`)
      const handle = engine.open({ tenantId: tenant.id, ...tenant.placement })
      entry = {
        tenantId: tenant.id,
        handle,
        db: this.#hooks.meter
          ? handle.db.withPlugin(new TenantGuardPlugin(tenant.id)).withPlugin(new UsagePlugin(tenant.id, this.#hooks.meter))
          : handle.db.withPlugin(new TenantGuardPlugin(tenant.id)),
        pins: 0,
        retired: false,
        prepared: new Map(),
      }
      this.#stats.opens++
      this.#handles.set(tenant.id, entry)
      this.#newest = entry
      opened = true
    }
    const leased = entry
    leased.pins++
    scope.leases.push(() => this.#release(leased))
    // Only after pinning: the handle just opened must not be the one evicted.
    if (opened) this.#evictIdle()
    return leased
  }

  #release(entry: HandleEntry): void {
    entry.pins--
    if (entry.pins > 0) return
    if (entry.retired) this.#close(entry)
    else if (this.#handles.size > this.#budget) this.#evictIdle()
  }

  /** Closes least recently used idle handles until the budget holds (or only busy ones remain). */
  #evictIdle(): void {
    if (this.#handles.size <= this.#budget) return
    for (const entry of this.#handles.values()) {
      if (this.#handles.size <= this.#budget) break
      if (entry.pins > 0) continue
      this.#stats.evictions++
      this.#retire(entry)
    }
  }

  #retire(entry: HandleEntry): void {
    if (this.#handles.get(entry.tenantId) === entry) this.#handles.delete(entry.tenantId)
    if (this.#newest === entry) this.#newest = undefined
    entry.retired = true
    if (entry.pins === 0) this.#close(entry)
  }

  #close(entry: HandleEntry): void {
    entry.prepared.clear()
    // An eviction or a release closes in the background: no caller is left to throw to.
    const closing = entry.handle
      .close()
      .catch((err: unknown) => this.#logger.warn({ err, tenantId: entry.tenantId }, 'Closing a tenant database handle failed'))
      .finally(() => this.#closing.delete(closing))
    this.#closing.add(closing)
  }
}
