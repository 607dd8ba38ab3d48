import { join } from 'node:path'
import { TenantryError, isTenantryError } from '../errors.js'
import type { Catalog, TenantRecord } from '../catalog/catalog.js'
import type { DataSources } from '../data-sources/data-sources.js'
import { SqliteEngine } from '../engines/sqlite/sqlite-engine.js'
import { listChains, pruneChains, restoreChain, WalShipper, type ShipResult } from '../engines/sqlite/wal-archive.js'
import { SILENT_LOGGER, type Logger } from '../logger.js'
import type { ResolvedPointInTimeConfig } from './point-in-time-config.js'

/** The process shipping WAL holds this catalog lock: two shippers of one tenant would each start chains over. */
const SHIPPER_LOCK = 'wal-archive'
const HEARTBEAT_MS = 5000

/** The times a tenant can be restored to: `from`..`to`, possibly with gaps between chains. */
export interface RestorableWindow {
  from: string
  to: string
  /** Each continuous stretch (a chain of the archive), oldest first. */
  ranges: Array<{ from: string; to: string }>
}

/**
 * Point-in-time restore of SQLite tenants (issue #13): continuous WAL capture into
 * `<backups directory>/<tenant id>/wal` (see engines/sqlite/wal-archive.ts), and the image of a
 * tenant's database at a given second, which `TenantBackups.restore({ at })` restores through
 * its usual path (in place or as a new tenant).
 *
 * `start()` is called by the process that serves the tenants (`tenantry start`); one process
 * ships at a time (a catalog lock). Every SQLite tenant that is ready or suspended is shipped.
 * Tests drive `tick()` themselves with an injected clock.
 */
export class PointInTimeArchive {
  readonly config: ResolvedPointInTimeConfig
  readonly #catalog: Catalog
  readonly #dataSources: DataSources
  readonly #directory: string
  readonly #now: () => number
  readonly #logger: Logger
  readonly #shippers = new Map<string, WalShipper>()
  #timer: NodeJS.Timeout | undefined
  #ticking: Promise<unknown> | undefined
  #lock: { heartbeat(): Promise<void>; release(): Promise<void> } | undefined
  #lastHeartbeat = 0

  constructor(deps: { catalog: Catalog; dataSources: DataSources; directory: string; config: ResolvedPointInTimeConfig; now?: () => number; logger?: Logger }) {
    this.config = deps.config
    this.#catalog = deps.catalog
    this.#dataSources = deps.dataSources
    this.#directory = deps.directory
    this.#now = deps.now ?? Date.now
    this.#logger = deps.logger ?? SILENT_LOGGER
  }

  /** Ships every `intervalMs` until `stop()`. */
  start(): void {
    if (this.#timer) return
    this.#timer = setInterval(() => {
      if (this.#ticking) return // a slow tick: the next one starts once it is done
      this.#ticking = this.tick()
        .catch((err: unknown) => this.#logger.warn({ err }, 'Shipping SQLite WAL for point-in-time restore failed; retrying on the next tick'))
        .finally(() => {
          this.#ticking = undefined
        })
    }, this.config.intervalMs)
    this.#timer.unref()
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer)
    this.#timer = undefined
    await this.#ticking
    for (const shipper of this.#shippers.values()) shipper.close()
    this.#shippers.clear()
    await this.#lock?.release().catch(() => undefined)
    this.#lock = undefined
  }

  /**
   * One round: each SQLite tenant's new commits shipped, stamped when its write lock was taken
   * (tests pass their own `stamp`), and chains past the retention pruned. Returns what each tenant's shipper did.
   */
  async tick(stamp?: number): Promise<Map<string, ShipResult>> {
    const results = new Map<string, ShipResult>()
    if (!(await this.#holdLock())) return results
    const tenants = await this.#catalog.listTenants({ status: ['ready', 'suspended'] })
    const live = new Set<string>()
    for (const tenant of tenants) {
      const engine = await this.#sqliteEngine(tenant)
      if (!engine) continue
      live.add(tenant.id)
      try {
        const path = engine.pathOf({ tenantId: tenant.id, ...tenant.placement })
        let shipper = this.#shippers.get(tenant.id)
        // A tenant moved to another SQLite data source: its new file starts a new chain.
        if (shipper && shipper.path !== path) {
          shipper.close()
          shipper = undefined
        }
        if (!shipper) {
          shipper = new WalShipper({ path, archive: this.archiveOf(tenant.id), now: this.#now, rebaseAfterMs: this.config.rebaseAfterMs })
          this.#shippers.set(tenant.id, shipper)
        }
        results.set(tenant.id, shipper.ship(stamp))
        pruneChains(this.archiveOf(tenant.id), (stamp ?? this.#now()) - this.config.retentionMs)
      } catch (err) {
        this.#logger.warn({ err, tenantId: tenant.id }, 'Shipping a tenant’s WAL failed; its next tick starts a new chain')
        this.#shippers.get(tenant.id)?.close()
        this.#shippers.delete(tenant.id)
      }
    }
    // Tenants deleted, moved off SQLite or being restored elsewhere: their connections go.
    for (const [id, shipper] of this.#shippers) {
      if (live.has(id)) continue
      shipper.close()
      this.#shippers.delete(id)
    }
    return results
  }

  /** Where a tenant's chains are. */
  archiveOf(tenantId: string): string {
    return join(this.#directory, tenantId, 'wal')
  }

  /** The times the tenant can be restored to, or undefined when nothing was shipped for it. */
  window(tenant: TenantRecord): RestorableWindow | undefined {
    const chains = listChains(this.archiveOf(tenant.id))
    if (chains.length === 0) return undefined
    const ranges = chains.map((c) => ({ from: iso(c.from), to: iso(c.to) }))
    return { from: ranges[0]!.from, to: ranges.at(-1)!.to, ranges }
  }

  /**
   * Writes the tenant's database as it was at `at` to the new file `destination`. Refused
   * (`INVALID_OPTION`, nothing written) for a time no chain covers.
   */
  async image(tenant: TenantRecord, at: Date, destination: string): Promise<{ commits: number }> {
    if ((await this.#sqliteEngine(tenant)) === undefined) throw new TenantryError('INVALID_OPTION', `Point-in-time restore covers SQLite tenants; "${tenant.slug}" is on ${tenant.placement.dataSourceId}`)
    const time = at.getTime()
    const chains = listChains(this.archiveOf(tenant.id))
    const chain = [...chains].reverse().find((c) => c.from <= time && time <= c.to)
    if (!chain) {
      const window = this.window(tenant)
      const where = window ? `it can be restored to ${window.ranges.map((r) => `${r.from} – ${r.to}`).join(', ')}` : 'no WAL was archived for it yet'
      throw new TenantryError('INVALID_OPTION', `Tenant "${tenant.slug}" cannot be restored to ${at.toISOString()}: ${where}`, { details: { at: at.toISOString(), ...(window ? { window } : {}) } })
    }
    return restoreChain(chain, time, destination)
  }

  async #sqliteEngine(tenant: TenantRecord): Promise<SqliteEngine | undefined> {
    const engine = await this.#dataSources.engine(tenant.placement.dataSourceId)
    if (!(engine instanceof SqliteEngine)) return undefined
    engine.manageCheckpoints()
    return engine
  }

  /** True while this process is the one shipping (taken on the first tick, kept alive by heartbeats). */
  async #holdLock(): Promise<boolean> {
    if (this.#lock) {
      if (this.#now() - this.#lastHeartbeat >= HEARTBEAT_MS) {
        this.#lastHeartbeat = this.#now()
        await this.#lock.heartbeat()
      }
      return true
    }
    try {
      this.#lock = await this.#catalog.acquireLock(SHIPPER_LOCK)
      this.#lastHeartbeat = this.#now()
      return true
    } catch (error) {
      if (isTenantryError(error, 'MIGRATION_LOCKED')) return false // another process ships
      throw error
    }
  }
}

function iso(ms: number): string {
  return new Date(ms).toISOString()
}
