import { TenantryError, isTenantryError } from '../errors.js'
import { assertValidIdentifier, assertValidSlug, newTenantId } from '../identifiers.js'
import { assertExternalId } from '../lifecycle/external-id.js'
import type { AdoptSource, AdoptTenantOptions, AdoptTenantResult, SplitTenantsOptions, SplitTenantsResult, TenantAdoption } from '../lifecycle/tenant-adopt.js'
import type { Catalog, CatalogLock, TenantRecord } from '../catalog/catalog.js'
import type { TenantOperation, TenantStatus } from '../catalog/catalog-schema.js'
import type { DataSources } from '../data-sources/data-sources.js'
import type { DatabaseEngine, EnginePlacement, EngineTemplate, Isolation } from '../engines/engine.js'
import { SILENT_LOGGER, type Logger } from '../logger.js'
import { migrateHandle, type HandleMigrationOutcome, type TenantMigrationSet } from '../migrations/migration-set.js'
import type { Router } from '../router/router.js'
import type {
  EraseHook,
  EraseTenantOptions,
  EraseTenantResult,
  ExportTenantOptions,
  ExportTenantResult,
  ImportTenantOptions,
  ImportTenantResult,
  TenantLifecycle,
} from '../lifecycle/tenant-lifecycle.js'
import type { MoveTenantOptions, MoveTenantResult, TenantMove } from '../lifecycle/tenant-move.js'
import { setMaintenance as setTenantMaintenance, type MaintenanceOptions } from '../lifecycle/tenant-maintenance.js'
import type { BackupTenantOptions, RestoreTenantOptions, RestoreTenantResult, TenantBackup, TenantBackups } from '../lifecycle/tenant-backups.js'
import type { RestorableWindow } from '../lifecycle/point-in-time.js'

/** The steps of a create, in order. A failpoint can stop the process before any of them. */
export const PROVISIONING_STEPS = ['record', 'create-database', 'migrate', 'activate'] as const
export type ProvisioningStep = (typeof PROVISIONING_STEPS)[number]

export interface CreateTenantOptions {
  slug: string
  /** @default the slug */
  name?: string
  /** @default the configured default isolation */
  isolation?: Isolation
  /** @default the configured default data source */
  dataSource?: string
  /** Who asked, for the audit log. @default 'system' */
  actor?: string
  /**
   * The tenant's id in another system (an auth provider's user id, a CRM account id), unique
   * among tenants not purged (`EXTERNAL_ID_TAKEN`); find the tenant by it with
   * `withTenant({ externalId })`. Finishing an interrupted create keeps the one it started with.
   */
  externalId?: string
}

export interface DeleteTenantOptions {
  /** Remove the tenant's data for good and free its slug. Without it the data stays and the slug stays taken. */
  purge?: boolean
  actor?: string
}

/**
 * What an import (`tenantry.tenants.import`) asks of a create: migrate only up to the export's
 * level, and fill the tenant before it is activated. A failure in `beforeActivate` fails the
 * create as any step does (its storage is dropped). @internal
 */
export interface CreateHooks {
  /** The last app migration to apply; templates (which hold the latest) are not used then. */
  migrateTo?: string
  /** Runs after the migrate step, before the tenant becomes `ready`. */
  beforeActivate?: (tenant: { id: string; slug: string }, placement: EnginePlacement, engine: DatabaseEngine) => Promise<void>
  /**
   * Makes the tenant's storage instead of an empty create or a template copy (an adopt brings
   * an existing database in). It must leave Kysely's migration records of what the storage
   * already holds, so that the migrate step applies only the rest.
   */
  createStorage?: (placement: EnginePlacement, engine: DatabaseEngine) => Promise<void>
  /**
   * Undoes `createStorage` when a later step fails, instead of dropping the storage (an adopt
   * that moved a schema in place moves it back: the data was never Tenantry's to drop).
   */
  undoStorage?: (placement: EnginePlacement, engine: DatabaseEngine) => Promise<void>
}

/** Removes what a tenant has outside its storage when it is purged; returns what it removed (never values). */
export type PurgeHook = (tenantId: string) => Promise<Record<string, unknown>>

/** How new tenants are placed when no data source is named. */
export type PlacementPolicy = 'default' | 'least-loaded'

export interface ProvisionerOptions {
  defaultIsolation: Isolation
  defaultDataSource: string
  /**
   * `default`: the default data source. `least-loaded`: among `shared` data sources that
   * offer the isolation and have room, the one holding the fewest tenants that answers a
   * connection test (a server that is down is passed over).
   * @default 'default'
   */
  placement?: PlacementPolicy
  /**
   * Create tenants from a pre-migrated template where the engine can clone one.
   * `false` replays every migration instead (the fallback, and the benchmark's baseline).
   * @default true
   */
  useTemplates?: boolean
  /**
   * Called before each step; throwing from it fails the step as a real error would. For fault tests.
   * @internal
   */
  beforeStep?: (step: ProvisioningStep, tenant: { id: string; slug: string }) => void | Promise<void>
}

/** How often a running create refreshes its lock; well under the catalog's stale-lock age (60 s by default). */
const CREATE_LOCK_HEARTBEAT_MS = 15_000
/** How long least-loaded placement waits for a data source's connection test before passing it over. */
const PLACEMENT_PROBE_MS = 2_000

/** What a create will do (`Provisioner.plan`): a new tenant, or finish the create of tenant `resumes`. */
export interface CreatePlan {
  slug: string
  name: string
  isolation: Isolation
  dataSource: string
  resumes?: string
}

/** The lock a create of `slug` holds from start to end: one create per slug at a time. */
export function createLockName(slug: string): string {
  return `tenant-create:${slug}`
}

/** Tenants whose lifecycle operation can be resumed by asking for it again. */
const RESUMABLE_CREATE: readonly TenantStatus[] = ['provisioning', 'failed']

/** Creates, suspends, resumes and deletes tenants. Every step is undoable; see docs/architecture.md, Provisioning. */
export class Provisioner {
  readonly #catalog: Catalog
  readonly #dataSources: DataSources
  readonly #router: Router
  readonly #migrations: TenantMigrationSet
  readonly #options: ProvisionerOptions
  readonly #logger: Logger
  readonly #templates = new Map<string, Promise<EngineTemplate | undefined>>()
  /** What the migrator found in the first tenant copied from each template: nothing to apply, these executed. */
  readonly #templateLedgers = new WeakMap<EngineTemplate, HandleMigrationOutcome['executed']>()
  /** Called by a purge after the tenant's storage is dropped (tenant-scoped services: cache, secrets…). */
  readonly #purgeHooks: PurgeHook[] = []
  /** Called by an erase after the purge (the server's organization and memberships). */
  readonly #eraseHooks: EraseHook[] = []
  /** Export, import and erase need the tenant services: `Tenantry` hands them over. */
  #lifecycle: TenantLifecycle | undefined
  #adoption: TenantAdoption | undefined
  #backups: TenantBackups | undefined
  #move: TenantMove | undefined

  /** `deps.logger` hears of cleanup that failed after a failed create. @default SILENT_LOGGER */
  constructor(
    deps: { catalog: Catalog; dataSources: DataSources; router: Router; migrations: TenantMigrationSet; logger?: Logger },
    options: ProvisionerOptions,
  ) {
    this.#catalog = deps.catalog
    this.#logger = deps.logger ?? SILENT_LOGGER
    this.#dataSources = deps.dataSources
    this.#router = deps.router
    this.#migrations = deps.migrations
    this.#options = options
  }

  /**
   * Validates everything a create needs without changing anything, and returns the
   * placement it would use. Throws the same errors `create` would.
   */
  async plan(options: CreateTenantOptions): Promise<CreatePlan> {
    assertValidSlug(options.slug)
    if (options.externalId !== undefined) {
      assertExternalId(options.externalId)
      const holder = await this.#catalog.findTenantByExternalId(options.externalId)
      if (holder && holder.slug !== options.slug) {
        throw new TenantryError('EXTERNAL_ID_TAKEN', `Tenant "${holder.slug}" already carries external id ${JSON.stringify(options.externalId)}`, { details: { tenantId: holder.id } })
      }
    }
    const existing = await this.#catalog.findTenantBySlug(options.slug)
    if (existing) {
      if (!(existing.operation === 'create' && RESUMABLE_CREATE.includes(existing.status))) {
        throw new TenantryError('SLUG_TAKEN', `Tenant slug "${options.slug}" is already taken (status ${existing.status})`)
      }
      // Finishing a create keeps the placement it started with.
      const { isolation, dataSourceId } = existing.placement
      return { slug: options.slug, name: existing.name, isolation, dataSource: dataSourceId, resumes: existing.id }
    }
    const isolation = options.isolation ?? this.#options.defaultIsolation
    const dataSource = await this.#place(isolation, options.dataSource)
    return { slug: options.slug, name: options.name ?? options.slug, isolation, dataSource }
  }

  /**
   * The data source for a new tenant: the one asked for, else by the placement policy. A
   * source must offer the isolation and have room (tenants < capacity). Two creates at the
   * same moment may take a source one tenant past its capacity.
   */
  async #place(isolation: Isolation, requested: string | undefined): Promise<string> {
    const policy = this.#options.placement ?? 'default'
    if (requested !== undefined || policy === 'default') {
      const id = requested ?? this.#options.defaultDataSource
      assertValidIdentifier('data source id', id)
      const engine = await this.#dataSources.engine(id)
      if (!engine.isolations.includes(isolation)) {
        throw new TenantryError(
          'UNSUPPORTED_PLACEMENT',
          `Data source "${id}" (${engine.name}) offers ${engine.isolations.join(', ')} isolation, not ${isolation}`,
        )
      }
      const source = (await this.#catalog.findDataSource(id))!
      // Counting scans every placement: only a source with a capacity needs it.
      if (source.capacity === null) return id
      const placed = (await this.#catalog.placementCounts()).get(id) ?? 0
      if (placed >= source.capacity) {
        throw new TenantryError('UNSUPPORTED_PLACEMENT', `Data source "${id}" is full (${placed} of ${source.capacity} tenants)`)
      }
      return id
    }
    const [sources, counts] = await Promise.all([this.#catalog.listDataSources(), this.#catalog.placementCounts()])
    const candidates: { id: string; placed: number }[] = []
    for (const source of sources) {
      const placed = counts.get(source.id) ?? 0
      if (source.mode !== 'shared' || (source.capacity !== null && placed >= source.capacity)) continue
      if (!(await this.#dataSources.engine(source.id)).isolations.includes(isolation)) continue
      candidates.push({ id: source.id, placed })
    }
    if (!candidates.length) {
      throw new TenantryError('UNSUPPORTED_PLACEMENT', `No shared data source offers ${isolation} isolation with room for another tenant`)
    }
    // Least loaded first; a source that does not answer (a server down) is passed over for the next.
    candidates.sort((a, b) => a.placed - b.placed)
    for (const { id } of candidates) {
      const reason = await this.#unreachable(id)
      if (reason === undefined) return id
      // The reason (a host, a port, a driver's message) goes to the operator's log, not to whoever asked for the tenant.
      this.#logger.warn({ dataSource: id, reason }, 'Placement passed over a data source that does not answer')
    }
    throw new TenantryError('DATA_SOURCE_UNAVAILABLE', `No shared data source that offers ${isolation} isolation with room answers (${candidates.map((c) => c.id).join(', ')}); the log says why`)
  }

  /** Why data source `id` cannot take a tenant now (its connection test failed or took too long), or undefined. */
  async #unreachable(id: string): Promise<string | undefined> {
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<string>((resolve) => {
      timer = setTimeout(() => resolve(`no answer within ${PLACEMENT_PROBE_MS} ms`), PLACEMENT_PROBE_MS)
    })
    try {
      return await Promise.race([this.#dataSources.test(id).then(() => undefined), timeout])
    } catch (error) {
      return error instanceof Error ? error.message : String(error)
    } finally {
      clearTimeout(timer)
    }
  }

  /**
   * Creates a tenant and returns it `ready`. Asking again for a slug whose create failed
   * or was cut short (a crash) finishes that create. On error the tenant's storage is
   * removed and the tenant is left `failed` with the reason; it never serves traffic.
   * While one call creates a slug, another for the same slug is refused with `SLUG_TAKEN`.
   */
  async create(options: CreateTenantOptions, hooks: CreateHooks = {}): Promise<TenantRecord> {
    assertValidSlug(options.slug)
    // One create per slug at a time: a retry racing a running create would drop the storage it is building or has just activated.
    const lock = await this.#catalog.acquireLock(createLockName(options.slug)).catch((error: unknown) => {
      if (!isTenantryError(error, 'MIGRATION_LOCKED')) throw error
      const holder = error.details?.pid ? ` (pid ${String(error.details.pid)} on ${String(error.details.host)})` : ''
      throw new TenantryError('SLUG_TAKEN', `Tenant slug "${options.slug}" is being created by another call${holder}; try again once it finishes`, {
        cause: error,
        details: error.details,
      })
    })
    // The lock is the create's lease: kept fresh while it runs, so that another host's repair
    // (`repairHalfMade`) never takes a long create for a dead one.
    const heartbeat = setInterval(() => {
      lock.heartbeat().catch((err: unknown) => this.#logger.warn({ err, slug: options.slug }, 'Refreshing the create lock failed'))
    }, CREATE_LOCK_HEARTBEAT_MS)
    heartbeat.unref()
    try {
      return await this.#create(options, hooks, lock)
    } finally {
      clearInterval(heartbeat)
      await lock.release()
    }
  }

  /** `lock`: the create's lock, released in the commit that activates the tenant (one commit fewer). */
  async #create(options: CreateTenantOptions, hooks: CreateHooks, lock: CatalogLock): Promise<TenantRecord> {
    const plan = await this.plan(options)
    const actor = options.actor ?? 'system'
    const engine = await this.#dataSources.engine(plan.dataSource)
    const id = plan.resumes ?? newTenantId()
    const ref = { id, slug: plan.slug }
    const placement: EnginePlacement = {
      tenantId: id,
      isolation: plan.isolation,
      locator: engine.locatorFor(id, plan.isolation),
    }

    await this.#step('record', ref)
    const started = { tenantId: id, action: plan.resumes ? 'tenant.create.resumed' : 'tenant.create.started', actor, details: { slug: plan.slug, ...placement } }
    if (plan.resumes) {
      await this.#catalog.transition(id, RESUMABLE_CREATE, 'provisioning', { operation: 'create', audit: started })
    } else {
      await this.#catalog.insertTenant(
        {
          id,
          slug: plan.slug,
          name: plan.name,
          placement: { isolation: plan.isolation, dataSourceId: plan.dataSource, locator: placement.locator },
          ...(options.externalId === undefined ? {} : { externalId: options.externalId }),
        },
        started,
      )
    }

    try {
      await this.#step('create-database', ref)
      // Nothing of a tenant in `provisioning` has ever served traffic: start its storage afresh.
      // A new id has no storage or ledger yet.
      if (plan.resumes) {
        // A Postgres adopt cut short holds a schema that was never Tenantry's: moved back, not dropped.
        const resumed = await this.#catalog.findTenantById(id)
        if (resumed) await this.releaseInterruptedAdopt(resumed)
        await engine.drop(placement)
        await this.#catalog.clearLedger(id)
      }
      const template = hooks.migrateTo === undefined && !hooks.createStorage ? await this.#template(engine, plan.dataSource, plan.isolation) : undefined
      if (hooks.createStorage) await hooks.createStorage(placement, engine)
      else if (template) await engine.createFromTemplate!(placement, template)
      else await engine.create(placement)

      await this.#step('migrate', ref)
      // Every copy of a sealed template holds what the first copy held: migrate that one, and
      // record the same ledger for the rest without opening them.
      const known = template && this.#templateLedgers.get(template)
      // Recorded with the activation, in its commit, unless a hook runs before it (it may read the ledger).
      const ledgerOnActivation = known && !hooks.beforeActivate ? known : undefined
      if (known) {
        if (!ledgerOnActivation) await this.#catalog.recordMigrations(id, known)
      } else {
        const handle = engine.open(placement, 'admin')
        try {
          const outcome = await migrateHandle(handle, this.#migrations, {
            tenantId: id,
            logger: this.#logger,
            ...(hooks.migrateTo === undefined ? {} : { upTo: hooks.migrateTo }),
          })
          if (outcome.error !== undefined) throw outcome.error
          await this.#catalog.recordMigrations(id, outcome.executed)
          if (template && outcome.applied.length === 0) this.#templateLedgers.set(template, outcome.executed)
        } finally {
          await handle.close()
        }
      }

      await hooks.beforeActivate?.(ref, placement, engine)

      await this.#step('activate', ref)
      const succeeded = { tenantId: id, action: 'tenant.create.succeeded', actor }
      const activation = { audit: succeeded, release: lock, ...(ledgerOnActivation ? { ledger: ledgerOnActivation } : {}) }
      if (!(await this.#catalog.transition(id, ['provisioning'], 'ready', activation))) {
        throw new TenantryError('INVALID_TRANSITION', `Tenant ${plan.slug} left provisioning while being created`)
      }
    } catch (error) {
      await this.#undoCreate(id, placement, engine, error, hooks.undoStorage)
      throw new TenantryError('PROVISIONING_FAILED', `Creating tenant "${plan.slug}" failed: ${message(error)}`, {
        cause: error,
        details: { tenantId: id },
      })
    }
    this.#router.invalidate(id)
    return (await this.#catalog.findTenantById(id))!
  }

  /**
   * Adds what a purge removes besides the tenant's storage: `hook(tenantId)` runs after the
   * storage is dropped, must be idempotent (a purge cut short is asked for again), and returns
   * what it removed, for the audit entry `tenant.services.purged`. A hook that throws fails the purge.
   */
  onPurge(hook: PurgeHook): void {
    this.#purgeHooks.push(hook)
  }

  /**
   * Adds what an erase ends besides what Tenantry holds: `hook(tenant)` runs after the purge,
   * must be idempotent, and returns counts (no personal data) for the `tenant.erased` entry.
   * A hook that throws fails the erase, which can be asked for again. Returns its removal.
   */
  onErase(hook: EraseHook): () => void {
    this.#eraseHooks.push(hook)
    return () => {
      const at = this.#eraseHooks.indexOf(hook)
      if (at >= 0) this.#eraseHooks.splice(at, 1)
    }
  }

  /** @internal `Tenantry` hands over adopt and split, which build on create and import. */
  useAdoption(adoption: TenantAdoption): void {
    this.#adoption = adoption
  }

  /** Registers an existing database (a SQLite file, a Postgres schema) as tenant `slug` (see `TenantAdoption.adopt`). */
  adopt(slug: string, source: AdoptSource, options: AdoptTenantOptions = {}): Promise<AdoptTenantResult> {
    return this.#requireAdoption().adopt(slug, source, options)
  }

  /** Turns one shared SQLite database into a tenant per value of a column (see `TenantAdoption.split`). */
  split(options: SplitTenantsOptions): Promise<SplitTenantsResult> {
    return this.#requireAdoption().split(options)
  }

  /** Moves back the schema of a Postgres adopt a crash cut short, before its create is rolled back (see `TenantAdoption.releaseInterrupted`). */
  async releaseInterruptedAdopt(tenant: TenantRecord): Promise<boolean> {
    return (await this.#adoption?.releaseInterrupted(tenant)) ?? false
  }

  #requireAdoption(): TenantAdoption {
    if (!this.#adoption) throw new TenantryError('INVALID_CONFIG', 'Adopt and split need a Tenantry instance (createTenantry), not a bare Provisioner')
    return this.#adoption
  }

  /** @internal `Tenantry` hands over the lifecycle operations that need its services. */
  useLifecycle(lifecycle: TenantLifecycle): void {
    this.#lifecycle = lifecycle
  }

  /** Writes the tenant to a portable, versioned file (see `TenantLifecycle.export`). */
  export(slug: string, options: ExportTenantOptions): Promise<ExportTenantResult> {
    return this.#requireLifecycle().export(slug, options)
  }

  /** Creates tenant `slug` from an export file, on any engine (see `TenantLifecycle.import`). */
  import(slug: string, options: ImportTenantOptions): Promise<ImportTenantResult> {
    return this.#requireLifecycle().import(slug, options)
  }

  /** Erases the tenant for good, keeping one audit entry without personal data (see `TenantLifecycle.erase`). */
  erase(slug: string, options: EraseTenantOptions = {}): Promise<EraseTenantResult> {
    return this.#requireLifecycle().erase(slug, options, [...this.#eraseHooks])
  }

  /** @internal `Tenantry` hands over backup and restore, which need the lifecycle's codec. */
  useBackups(backups: TenantBackups): void {
    this.#backups = backups
  }

  /** Takes a backup of the tenant while it keeps serving (see `TenantBackups.backup`). */
  backup(slug: string, options: BackupTenantOptions = {}): Promise<TenantBackup> {
    return this.#requireBackups().backup(slug, options)
  }

  /** The tenant's backups, newest first. */
  backups(slug: string): Promise<TenantBackup[]> {
    return this.#requireBackups().backups(slug)
  }

  /** The times the tenant can be restored to with `restore(slug, { at })` (point-in-time restore), or undefined. */
  restorableWindow(slug: string): Promise<RestorableWindow | undefined> {
    return this.#requireBackups().restorableWindow(slug)
  }

  /** Restores one of the tenant's backups, in place or `as` a new tenant (see `TenantBackups.restore`). */
  restore(slug: string, options: RestoreTenantOptions): Promise<RestoreTenantResult> {
    return this.#requireBackups().restore(slug, options)
  }

  /** @internal `Tenantry` hands over live moves, which need the router and the migration set. */
  useMove(move: TenantMove): void {
    this.#move = move
  }

  /**
   * Moves the tenant, live, to another data source or isolation: reads served from the old
   * placement throughout, writes paused for the last changes only (see `TenantMove`).
   */
  move(slug: string, options: MoveTenantOptions): Promise<MoveTenantResult> {
    if (!this.#move) throw new TenantryError('INVALID_CONFIG', 'Moves need a Tenantry instance (createTenantry), not a bare Provisioner')
    return this.#move.move(slug, options)
  }

  /** Maintenance mode on (`readOnly: true`, reads served, writes refused with the message) or off. */
  maintenance(slug: string, options: MaintenanceOptions): Promise<TenantRecord> {
    return setTenantMaintenance(this.#catalog, this.#router, slug, options)
  }

  #requireBackups(): TenantBackups {
    if (!this.#backups) throw new TenantryError('INVALID_CONFIG', 'Backup and restore need a Tenantry instance (createTenantry), not a bare Provisioner')
    return this.#backups
  }

  #requireLifecycle(): TenantLifecycle {
    if (!this.#lifecycle) throw new TenantryError('INVALID_CONFIG', 'Export, import and erase need a Tenantry instance (createTenantry), not a bare Provisioner')
    return this.#lifecycle
  }

  /** `ready` → `suspended`: the tenant's data is kept and no longer served. */
  suspend(slug: string, actor = 'system'): Promise<TenantRecord> {
    return this.#simpleTransition(slug, 'suspend', ['ready'], 'suspended', actor)
  }

  /** `suspended` → `ready`. */
  resume(slug: string, actor = 'system'): Promise<TenantRecord> {
    return this.#simpleTransition(slug, 'resume', ['suspended'], 'ready', actor)
  }

  /**
   * `→ deleting → deleted`. Without `purge` the data stays (and the slug stays taken);
   * with it the storage is removed and the slug is freed. A delete cut short resumes
   * when asked again. Works on failed and half-created tenants too: that is how they are cleaned.
   */
  async delete(slug: string, options: DeleteTenantOptions = {}): Promise<TenantRecord> {
    const actor = options.actor ?? 'system'
    const tenant = await this.#require(slug)
    if (tenant.status === 'deleted' && !options.purge) return tenant
    const operation: TenantOperation = options.purge ? 'purge' : 'delete'
    const from: TenantStatus[] = ['ready', 'suspended', 'provisioning', 'failed', 'deleting', 'deleted']
    if (!(await this.#catalog.transition(tenant.id, from, 'deleting', { operation }))) {
      throw new TenantryError('INVALID_TRANSITION', `Tenant "${slug}" cannot be deleted while ${tenant.status}`)
    }
    await this.#catalog.audit({ tenantId: tenant.id, action: `tenant.${operation}.started`, actor })
    this.#router.invalidate(tenant.id)
    try {
      if (options.purge) {
        const engine = await this.#dataSources.engine(tenant.placement.dataSourceId)
        await engine.drop({ tenantId: tenant.id, ...tenant.placement })
        await this.#catalog.clearLedger(tenant.id)
        // What the tenant has outside its database (cache entries, secrets and their key…), and the audit log says what went.
        // One entry for all of it: each hook's counts under their own names, side by side.
        const removed: Record<string, unknown> = {}
        for (const hook of this.#purgeHooks) Object.assign(removed, await hook(tenant.id))
        await this.#catalog.audit({ tenantId: tenant.id, action: 'tenant.services.purged', actor, details: removed })
      }
      await this.#catalog.transition(tenant.id, ['deleting'], 'deleted', { purged: options.purge ?? false })
    } catch (error) {
      await this.#catalog.transition(tenant.id, ['deleting'], 'failed', { reason: message(error) })
      await this.#catalog.audit({ tenantId: tenant.id, action: `tenant.${operation}.failed`, actor, details: { error: message(error) } })
      throw new TenantryError('PROVISIONING_FAILED', `Deleting tenant "${slug}" failed: ${message(error)}`, { cause: error })
    }
    await this.#catalog.audit({ tenantId: tenant.id, action: `tenant.${operation}.succeeded`, actor })
    return (await this.#catalog.findTenantById(tenant.id))!
  }

  async #simpleTransition(
    slug: string,
    operation: TenantOperation,
    from: TenantStatus[],
    to: TenantStatus,
    actor: string,
  ): Promise<TenantRecord> {
    const tenant = await this.#require(slug)
    if (!(await this.#catalog.transition(tenant.id, from, to, { operation }))) {
      throw new TenantryError(
        'INVALID_TRANSITION',
        `Cannot ${operation} tenant "${slug}": it is ${tenant.status}, and ${operation} needs ${from.join(' or ')}`,
      )
    }
    this.#router.invalidate(tenant.id)
    await this.#catalog.audit({ tenantId: tenant.id, action: `tenant.${operation}`, actor })
    return (await this.#catalog.findTenantById(tenant.id))!
  }

  async #require(slug: string): Promise<TenantRecord> {
    assertValidSlug(slug)
    const tenant = await this.#catalog.findTenantBySlug(slug)
    if (!tenant) throw new TenantryError('TENANT_NOT_FOUND', `Tenant "${slug}" not found`)
    return tenant
  }

  async #undoCreate(id: string, placement: EnginePlacement, engine: DatabaseEngine, cause: unknown, undoStorage?: CreateHooks['undoStorage']): Promise<void> {
    const errors: unknown[] = []
    // Storage left behind is found by `tenantry doctor` and removed by `delete --purge`;
    // the reason recorded below says so, and the log says it now.
    const removal = (what: string) => (err: unknown) => {
      errors.push(err)
      this.#logger.warn({ err, tenantId: id }, `Removing the ${what} of a failed create failed`)
    }
    await (undoStorage ? undoStorage(placement, engine) : engine.drop(placement)).catch(removal('storage'))
    await this.#catalog.clearLedger(id).catch(removal('ledger'))
    const reason = message(cause) + (errors.length ? ` (cleanup also failed: ${errors.map(message).join('; ')})` : '')
    // The caller gets the create's own error; these two only record it, so they must not replace it.
    await this.#catalog
      .transition(id, ['provisioning'], 'failed', { reason })
      .catch((err: unknown) => this.#logger.warn({ err, tenantId: id, reason }, 'Recording a failed create failed; the tenant stays in provisioning until it is created again or purged'))
    await this.#catalog
      .audit({ tenantId: id, action: 'tenant.create.failed', details: { error: reason } })
      .catch((err: unknown) => this.#logger.warn({ err, tenantId: id, reason }, 'Auditing a failed create failed'))
  }

  /**
   * The engine's template for the current migration set, built once per process, data source
   * and isolation; `undefined` where templates are off or the engine cannot clone.
   */
  #template(engine: DatabaseEngine, dataSource: string, isolation: Isolation): Promise<EngineTemplate | undefined> {
    if (this.#options.useTemplates === false || !engine.ensureTemplate || !engine.createFromTemplate) {
      return Promise.resolve(undefined)
    }
    const key = `${dataSource}:${isolation}:${this.#migrations.key}`
    let template = this.#templates.get(key)
    if (!template) {
      template = engine.ensureTemplate(this.#migrations.key, isolation, async (handle) => {
        const outcome = await migrateHandle(handle, this.#migrations, { logger: this.#logger })
        if (outcome.error !== undefined) throw outcome.error
      })
      template.catch(() => this.#templates.delete(key))
      this.#templates.set(key, template)
    }
    return template
  }

  async #step(step: ProvisioningStep, tenant: { id: string; slug: string }): Promise<void> {
    await this.#options.beforeStep?.(step, tenant)
  }
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}
