import type { Compilable, Kysely } from 'kysely'
import { withTenant as runWithTenant, currentScope, currentTenant, type TenantRef } from './context.js'
import { NoTenantError, TenantryError } from './errors.js'
import type { BoundedQueryOptions, ReadOnlyCredentials } from './engines/engine.js'
import { Catalog, type TenantRecord } from './catalog/catalog.js'
import { resolveConfig, type ResolvedConfig, type TenantryConfig } from './config.js'
import { DataSources } from './data-sources/data-sources.js'
import { openSecretBox } from './secrets/secret-key.js'
import { MIGRATABLE_STATUSES, runFanOut, type FanOutOptions, type FanOutReport } from './migrations/fan-out.js'
import { TenantMigrationSet, type TenantMigration } from './migrations/migration-set.js'
import { searchDeclarations, searchIndexStep } from './search-index/search-index.js'
import { declaresCollections, ledgerStep } from './ledger/ledger.js'
import { Collections } from './collections/collections.js'
import type { TenantCollection } from './collections/tenant-collection.js'
import {
  Provisioner,
  type CreateTenantOptions,
  type DeleteTenantOptions,
  type ProvisionerOptions,
} from './provisioning/provisioner.js'
import { Router, type RouteState, type TenantDb } from './router/router.js'
import { prepareQuery, type PreparedQuery } from './router/prepared-query.js'
import { TokenStore } from './tokens/token-store.js'
import { SILENT_LOGGER, type Logger } from './logger.js'
import { Quotas } from './quotas/quotas.js'
import { TenantLimits, planNamesOf } from './limits/tenant-limits.js'
import { UsageMeter } from './usage/usage-meter.js'
import type { UsageDay } from './catalog/catalog.js'
import { join } from 'node:path'
import { SecretBox } from './secrets/secret-box.js'
import { SECRET_KEY_FILE } from './secrets/secret-key.js'
import { TenantServices } from './services/scope.js'
import { TenantCache } from './services/cache/tenant-cache.js'
import { TenantSecrets } from './services/secrets/tenant-secrets.js'
import { TenantState } from './services/state/tenant-state.js'
import { stateStep } from './services/state/state-step.js'
import { TenantFiles } from './services/files/tenant-files.js'
import { TenantJobs } from './services/jobs/tenant-jobs.js'
import { TenantLifecycle } from './lifecycle/tenant-lifecycle.js'
import { TenantMove, type MoveStep } from './lifecycle/tenant-move.js'
import { translateMovingError } from './lifecycle/write-gate.js'
import { TenantAdoption } from './lifecycle/tenant-adopt.js'
import { TenantBackups } from './lifecycle/tenant-backups.js'
import { PointInTimeArchive } from './lifecycle/point-in-time.js'
import { SharedMigrations, type SharedMigrationReport, type SharedMigrationStatus } from './migrations/shared-migrations.js'
import { forEachTenant, type ForEachTenantContext, type ForEachTenantOptions, type TenantResult } from './cross-tenant/for-each-tenant.js'
import type { ChangeFeed } from './cluster/change-feed.js'

export interface CreateTenantryOptions {
  /** Bring the catalog's own tables up to date on start. @default true */
  migrateCatalog?: boolean
  /**
   * Where Tenantry reports errors it handles without throwing (a handle that failed to
   * close, a missed lock heartbeat, a token's last-use write), each once with the tenant id.
   * Any pino-compatible logger, e.g. `pino()` or Fastify's `app.log`.
   * @default SILENT_LOGGER
   */
  logger?: Logger
  /** @internal fault injection for provisioning tests */
  beforeProvisioningStep?: ProvisionerOptions['beforeStep']
  /** @internal fault injection for move tests (kill -9 at each step) */
  beforeMoveStep?: (step: MoveStep, tenant: { id: string; slug: string }) => void | Promise<void>
}

/** Options of `tenantry.readOnlyAccess`. */
export interface ReadOnlyAccessOptions {
  /** Remove the tenant's read-only login instead of granting it. @default false */
  revoke?: boolean
  /** Who asked, for the audit log. @default 'system' */
  actor?: string
}

/** Per-migration counts across all live tenants, as `tenantry migrate status` shows them. */
export interface MigrationStatus {
  migrations: Array<{ name: string; appliedTenants: number; pendingTenants: number }>
  tenants: number
  behind: Array<{ tenantId: string; slug: string; status: string; pending: string[] }>
  lock?: { pid: number; host: string; since: string }
}

/**
 * One Tenantry instance per process: the catalog, the router, provisioning and the
 * migration runner, over the data sources the config declares.
 *
 * @example
 * const tenantry = await createTenantry(await loadConfig())
 * await tenantry.withTenant('acme', () => tenantry.db<DB>().selectFrom('jobs').selectAll().execute())
 */
export class Tenantry {
  readonly config: ResolvedConfig
  readonly catalog: Catalog
  readonly dataSources: DataSources
  readonly router: Router
  readonly tenants: Provisioner
  readonly migrations: TenantMigrationSet
  /** The app's shared (app-level) migrations (`migrations.shared`), if the config declares them. */
  readonly sharedMigrations: SharedMigrations | undefined
  /** Integration tokens: create, list, revoke, verify. */
  readonly tokens: TokenStore
  /** The logger passed to `createTenantry` (silent by default), for code built on this instance. */
  readonly logger: Logger
  /** Per-tenant quotas: `get`, `set` (audited), and the checks the server makes. */
  readonly quotas: Quotas
  /**
   * Per-tenant limits (rate-limit plan, SQL-over-HTTP and data API deadlines): `get`, `set`
   * (audited), over the server config's per-slug ones. Read by `@tenantry/server` per request.
   */
  readonly limits: TenantLimits
  /** Per-tenant usage counters, flushed to the catalog periodically and on `close`. */
  readonly usage: UsageMeter
  /** The tenant in context's cache (memory or Redis, `services.cache`). See `TenantCache`. */
  readonly cache: TenantCache
  /** The tenant in context's secrets, sealed with its own data key. See `TenantSecrets`. */
  readonly secrets: TenantSecrets
  /** The tenant in context's durable key-value state, in its database (`services.state`). See `TenantState`. */
  readonly state: TenantState
  /** The tenant in context's files (`services.files`). See `TenantFiles`. */
  readonly files: TenantFiles
  /** Background jobs that carry their tenant, fair across tenants (`services.jobs`, BullMQ). See `TenantJobs`. */
  readonly jobs: TenantJobs
  /** Every tenant-scoped service: purged with a tenant, closed with Tenantry. */
  readonly services: TenantServices
  /**
   * Continuous WAL capture of SQLite tenants for point-in-time restore (`backups.pointInTime`),
   * or undefined when off. The serving process calls `start()` (`tenantry start` does); stopped on `close`.
   */
  readonly pointInTime: PointInTimeArchive | undefined
  /** The collections declared in `server.collections`, as `collection(name)` serves them (and the server's data API). */
  readonly collections: Collections
  /**
   * Changes to the catalog made by any process (Postgres catalog) or by this one (SQLite):
   * `subscribe` to drop a cache of your own when a tenant, token or its settings change. The
   * router, quotas and limits already follow it. See cluster/change-feed.ts.
   */
  readonly changes: ChangeFeed

  constructor(parts: {
    config: ResolvedConfig
    catalog: Catalog
    dataSources: DataSources
    router: Router
    tenants: Provisioner
    migrations: TenantMigrationSet
    /** The loaded `migrations.shared` set, where the config declares one. */
    sharedMigrations?: TenantMigrationSet
    /** @default SILENT_LOGGER */
    logger?: Logger
    /** @default the config's quotas */
    quotas?: Quotas
    /** @default a meter flushing to `catalog` */
    usage?: UsageMeter
    /** The deployment's master key, as `openSecretBox` checked it. @default from `TENANTRY_SECRET_KEY` or the key file, never created */
    secretBox?: SecretBox
  }) {
    this.logger = parts.logger ?? SILENT_LOGGER
    this.config = parts.config
    this.catalog = parts.catalog
    this.dataSources = parts.dataSources
    this.router = parts.router
    this.tenants = parts.tenants
    this.migrations = parts.migrations
    const shared = parts.config.sharedMigrations
    this.sharedMigrations =
      shared && parts.sharedMigrations
        ? new SharedMigrations({ migrations: parts.sharedMigrations, dataSourceId: shared.dataSource, readable: shared.readable, dataSources: parts.dataSources, catalog: parts.catalog, logger: this.logger })
        : undefined
    this.quotas = parts.quotas ?? new Quotas(parts.catalog, parts.config.quotas, (id) => parts.router.invalidate(id))
    this.limits = new TenantLimits(parts.catalog, planNamesOf(parts.config.server))
    this.usage = parts.usage ?? new UsageMeter(parts.catalog, { flushIntervalMs: parts.config.usage.flushIntervalMs, logger: this.logger })
    this.tokens = new TokenStore(parts.catalog, { logger: this.logger, quotas: this.quotas })
    this.changes = parts.catalog.changes
    // Every node drops what another changed: placements (and so handles, write gates and storage limits), quotas, limits.
    this.changes.subscribe((change) => {
      if (change.kind === 'reset') {
        this.router.invalidateAll()
        this.quotas.forget()
        this.limits.forget()
      } else if (change.kind === 'tenant' || change.kind === 'settings') {
        this.router.invalidate(change.tenantId)
        this.quotas.forget(change.tenantId)
        this.limits.forget(change.tenantId)
      }
    })
    const box = parts.secretBox ?? SecretBox.fromEnvironment(join(parts.config.home, SECRET_KEY_FILE), process.env, { create: false })
    this.services = new TenantServices()
    this.cache = this.services.register(new TenantCache(parts.config.services.cache, { logger: this.logger }))
    this.secrets = this.services.register(new TenantSecrets(parts.catalog, () => box))
    this.state = this.services.register(new TenantState(() => this.db(), parts.config.services.state))
    this.files = this.services.register(new TenantFiles(parts.config.services.files, { quotaOf: async (id) => (await this.quotas.of(id)).fileBytes }))
    this.jobs = this.services.register(
      new TenantJobs(parts.config.services.jobs, {
        tenantOf: (id) => this.catalog.findTenantById(id),
        run: (id, fn) => this.withTenant({ id }, fn),
        logger: this.logger,
      }),
    )
    this.tenants.onPurge((tenantId) => backups.purgeTenant(tenantId))
    this.tenants.onPurge((tenantId) => this.services.purgeTenant(tenantId))
    const lifecycle = new TenantLifecycle({ catalog: parts.catalog, dataSources: parts.dataSources, migrations: parts.migrations, provisioner: parts.tenants, files: this.files, logger: this.logger })
    this.tenants.useLifecycle(lifecycle)
    const pointInTime = parts.config.backups.pointInTime
    this.pointInTime = pointInTime
      ? new PointInTimeArchive({ catalog: parts.catalog, dataSources: parts.dataSources, directory: parts.config.backups.directory, config: pointInTime, logger: this.logger })
      : undefined
    const backups = new TenantBackups({
      catalog: parts.catalog,
      dataSources: parts.dataSources,
      migrations: parts.migrations,
      provisioner: parts.tenants,
      lifecycle,
      directory: parts.config.backups.directory,
      logger: this.logger,
      ...(this.pointInTime ? { pointInTime: this.pointInTime } : {}),
    })
    this.tenants.useBackups(backups)
    this.tenants.useAdoption(new TenantAdoption({ catalog: parts.catalog, dataSources: parts.dataSources, migrations: parts.migrations, provisioner: parts.tenants, logger: this.logger }))
    this.collections = new Collections({
      server: parts.config.server,
      bounded: (fn, options) => this.bounded(fn, options),
      db: () => this.db() as unknown as Kysely<any>,
      prepare: (build) => this.prepare(build),
      engineOf: async (tenantId) => {
        const tenant = await this.router.resolve({ id: tenantId })
        return (await this.dataSources.engine(tenant.placement.dataSourceId)).name
      },
      ownStatementTimeoutMs: async (tenantId) => (await this.limits.of(tenantId)).dataApiStatementTimeoutMs,
      logger: this.logger,
    })
  }

  /**
   * A collection declared in `server.collections`, in-process, with the data API's semantics:
   * `create`, `findById`, `get`, `findMany`, `paginate`, `search`, `count`, `update`, `delete`,
   * `bulkCreate`, `bulkDelete`, each validated as the data API validates (`VALIDATION_FAILED`),
   * lists, counts and writes bounded under the tenant's deadline, writes idempotent with
   * `{ idempotencyKey }`. Use it inside `withTenant`; an undeclared name is `NOT_FOUND`.
   *
   * @example
   * await tenantry.withTenant('acme', () => tenantry.collection<Job>('jobs').findMany({ where: { company: 'Acme' } }))
   */
  collection<Row extends Record<string, unknown> = Record<string, unknown>, Create = Partial<Row>>(name: string): TenantCollection<Row, Create> {
    return this.collections.get<Row, Create>(name)
  }

  /**
   * The tenant's daily usage (requests, statements, rows read and written, execution time,
   * storage), oldest first, over the last `days` UTC days (today included), after flushing
   * this process's counts. Throws `TENANT_NOT_FOUND`.
   */
  async usageOf(slug: string, options: { days?: number } = {}): Promise<{ tenantId: string; slug: string; storageBytes: number | null; days: UsageDay[] }> {
    const tenant = await this.catalog.findTenantBySlug(slug)
    if (!tenant) throw new TenantryError('TENANT_NOT_FOUND', `Tenant "${slug}" not found`)
    const days = options.days ?? 30
    if (!Number.isInteger(days) || days < 1 || days > 3660) throw new TenantryError('INVALID_OPTION', `days must be a whole number from 1 to 3660, not ${days}`)
    await this.usage.flush()
    const since = new Date(Date.now() - (days - 1) * 86_400_000).toISOString().slice(0, 10)
    return { tenantId: tenant.id, slug: tenant.slug, storageBytes: (await this.storageBytes(tenant).catch(() => undefined)) ?? null, days: await this.catalog.usage(tenant.id, { since }) }
  }

  /** The tenant's storage in bytes as its engine measures it, or undefined where it is not measured. */
  async storageBytes(tenant: TenantRecord): Promise<number | undefined> {
    const engine = await this.dataSources.engine(tenant.placement.dataSourceId)
    return engine.storage?.size({ tenantId: tenant.id, ...tenant.placement })
  }

  /**
   * Refuses a write with `QUOTA_EXCEEDED` where the tenant's engine does not enforce its storage
   * quota itself (Postgres) and its measured size is at the quota. See `Quotas.assertStorage`.
   */
  async assertStorageQuota(tenantId: string): Promise<void> {
    const tenant = await this.router.resolve({ id: tenantId })
    const engine = await this.dataSources.engine(tenant.placement.dataSourceId)
    await this.quotas.assertStorage(tenant, engine.storage)
  }

  /**
   * Runs `fn` as `tenant` (a slug, `{ id }`, or `{ externalId }`: the id another system gave
   * it, see `createTenant`). The tenant must exist and be `ready`: otherwise `TENANT_NOT_FOUND`
   * or `TENANT_NOT_READY`, and `fn` never runs.
   */
  withTenant<T>(tenant: string | { id: string } | { externalId: string }, fn: () => T | Promise<T>): Promise<T> {
    if (typeof tenant !== 'string' && typeof (tenant as { id?: unknown })?.id !== 'string' && typeof (tenant as { externalId?: unknown })?.externalId !== 'string') {
      return Promise.reject(new TenantryError('TENANT_NOT_FOUND', 'withTenant needs a tenant slug, { id } or { externalId }'))
    }
    // A placement-cache hit enters at once: no extra await on the hot path of every request.
    const cached = this.router.cached(tenant)
    return cached ? enter(cached, fn) : this.router.resolve(tenant).then((record) => enter(record, fn))
  }

  /** The current tenant's database. Throws `NoTenantError` outside `withTenant`. */
  db<DB = any>(): TenantDb<DB> {
    return this.router.db<DB>()
  }

  /**
   * A query built once, run for whichever tenant is current: compiled on each tenant's handle
   * the first time it runs there (with everything the handle adds: row isolation's filter, the
   * schema, the guard) and, on SQLite, kept as a prepared statement on the tenant's connection
   * until the handle closes; on Postgres, a read runs as a named prepared statement, planned
   * once per connection (the data source's `preparedStatements`). Writes pass the tenant's
   * write gate as `db()`'s do. Each parameter is one bound value (not a list for `in`).
   *
   * @example
   * const jobById = tenantry.prepare((db: TenantDb<DB>, p: { id: number }) => db.selectFrom('jobs').selectAll().where('id', '=', p.id))
   * await tenantry.withTenant('acme', () => jobById.executeTakeFirst({ id: 7 }))
   */
  prepare<DB, P, O>(build: (db: TenantDb<DB>, params: P) => Compilable<O>): PreparedQuery<P, O> {
    return prepareQuery(this.router, build as (db: TenantDb, params: P) => Compilable<O>)
  }

  /**
   * Runs `fn` with a Kysely instance on the current tenant's data whose queries can neither
   * hold this process's event loop nor run past a deadline: for queries whose cost a client
   * controls (the server's data API runs its lists, counts and writes here). Throws
   * `NoTenantError` outside `withTenant`. The instance is only valid until `fn` settles.
   *
   * - SQLite: each query runs in the engine's executor processes (as SQL-over-HTTP does), is
   *   stopped at the deadline (`STATEMENT_TIMEOUT`), and a lock another connection holds is
   *   `DATABASE_BUSY` after about a second. `readOnly` opens the file read-only. The price is
   *   an inter-process round trip per query: `tenantry.db()` stays the fast synchronous path.
   * - Postgres: `fn` runs in one transaction with transaction-local `statement_timeout` and
   *   `lock_timeout` (`STATEMENT_TIMEOUT`, `DATABASE_BUSY`).
   * - Engines without `boundedQueries`: `fn` runs on `tenantry.db()`, with no deadline.
   *
   * @example
   * await tenantry.withTenant('acme', () =>
   *   tenantry.bounded((db) => db.selectFrom('jobs').selectAll().limit(50).execute(), { readOnly: true }))
   */
  bounded<T>(fn: (db: Kysely<any>) => Promise<T>, options: BoundedQueryOptions = {}): Promise<T> {
    const scope = currentScope()
    if (!scope) throw new NoTenantError()
    const route = scope.route as RouteState | undefined
    if (!route || route.tenant.id !== scope.tenant.id) {
      throw new TenantryError('TENANT_NOT_READY', `Tenant ${scope.tenant.slug} was not admitted: enter it with tenantry.withTenant()`)
    }
    const { tenant } = route
    // Maintenance mode: what may write is refused here, whichever engine runs it (SQLite's executor is past the write gate).
    if (tenant.maintenance !== null && tenant.maintenance !== undefined && !options.readOnly) {
      return Promise.reject(new TenantryError('TENANT_MAINTENANCE', tenant.maintenance, { details: { tenantId: tenant.id } }))
    }
    return this.dataSources.engine(tenant.placement.dataSourceId).then((engine) => {
      const db = () => this.db() as unknown as Kysely<any>
      if (!engine.boundedQueries) return fn(db())
      const placement = { tenantId: tenant.id, isolation: tenant.placement.isolation, locator: tenant.placement.locator }
      // A write the move's triggers refused (SQLite runs these past the in-process write gate): retryable.
      return engine.boundedQueries.run({ placement, db }, options, fn).catch((error: unknown) => {
        throw translateMovingError(error, tenant.id)
      })
    })
  }

  /** The tenant in context, if any. */
  currentTenant(): TenantRef | undefined {
    return currentTenant()
  }

  createTenant(options: CreateTenantOptions): Promise<TenantRecord> {
    return this.tenants.create(options)
  }

  deleteTenant(slug: string, options?: DeleteTenantOptions): Promise<TenantRecord> {
    return this.tenants.delete(slug, options)
  }

  /**
   * Runs `fn` for every ready tenant (or those `filter` selects), each inside `withTenant` so
   * `tenantry.db()` and the services work, at most `concurrency` (default 4) at once: platform
   * work over all tenants (seed 002's analytics). One result per tenant, in id order:
   * `success` with `fn`'s value, `error` with `{ code, message }`, or `skipped` with the reason
   * (not ready, aborted); one tenant's failure never stops the others. The catalog is read a
   * page at a time.
   *
   * @example
   * const counts = await tenantry.forEachTenant(() => tenantry.db().selectFrom('jobs').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow(), { concurrency: 8 })
   */
  forEachTenant<T>(fn: (tenant: TenantRecord, context: ForEachTenantContext) => Promise<T>, options: ForEachTenantOptions<T> = {}): Promise<Array<TenantResult<T>>> {
    return forEachTenant({ catalog: this.catalog, withTenant: (tenant, run) => this.withTenant(tenant, run) }, fn, options)
  }

  /**
   * Applies the app's shared migrations (`migrations.shared`) once, then grants tenants' roles
   * `SELECT` on the tables the config declares `readable`, and nothing else of the shared schema.
   * `tenantry migrate` runs it before the tenants. Throws `INVALID_CONFIG` when none are declared,
   * `MIGRATION_FAILED` (nothing applied) when one fails.
   */
  migrateShared(): Promise<SharedMigrationReport> {
    if (!this.sharedMigrations) return Promise.reject(new TenantryError('INVALID_CONFIG', 'No shared migrations are configured (migrations.shared)'))
    return this.sharedMigrations.migrate()
  }

  /** The shared migrations applied and pending, or `undefined` when the config declares none. */
  async sharedMigrationStatus(): Promise<SharedMigrationStatus | undefined> {
    return this.sharedMigrations?.status()
  }

  /** Fans the tenant migrations out to every tenant that is behind. See `runFanOut`. */
  migrate(options: FanOutOptions = {}): Promise<FanOutReport> {
    return runFanOut({ catalog: this.catalog, dataSources: this.dataSources, migrations: this.migrations, logger: this.logger }, options)
  }

  async migrationStatus(): Promise<MigrationStatus> {
    const [counts, tenants, behind, lock] = await Promise.all([
      this.catalog.migrationCounts(MIGRATABLE_STATUSES),
      this.catalog.countTenants(MIGRATABLE_STATUSES),
      this.catalog.tenantsBehind(this.migrations.names, { statuses: MIGRATABLE_STATUSES }),
      this.catalog.readLock('tenant-migrations'),
    ])
    return {
      tenants,
      migrations: this.migrations.names.map((name) => {
        const applied = counts.get(name) ?? 0
        return { name, appliedTenants: applied, pendingTenants: Math.max(0, tenants - applied) }
      }),
      behind: behind.map(({ tenant, applied }) => ({
        tenantId: tenant.id,
        slug: tenant.slug,
        status: tenant.status,
        pending: this.migrations.names.filter((n) => !applied.includes(n)),
      })),
      ...(lock ? { lock: { pid: lock.pid, host: lock.host, since: lock.acquiredAt } } : {}),
    }
  }

  /**
   * Read-only access: a database login that reads this tenant and nothing else (on Postgres,
   * a per-tenant role with SELECT only), and its connection URL for `psql`, BI tools or
   * integrations. Calling it again returns the same URL; `{ revoke: true }` removes the login.
   * Refused with `UNSUPPORTED_PLACEMENT` where the tenant's engine offers no read-only access
   * or its isolation cannot confine one (row isolation; SQLite tenants get SQL-over-HTTP with
   * a read-only token instead).
   */
  async readOnlyAccess(slug: string, options: ReadOnlyAccessOptions = {}): Promise<ReadOnlyCredentials | undefined> {
    const tenant = await this.router.resolve(slug)
    const engine = await this.dataSources.engine(tenant.placement.dataSourceId)
    const access = engine.readOnlyAccess
    if (!access?.isolations.includes(tenant.placement.isolation)) {
      const offered = access ? `only for ${access.isolations.join(' and ')} isolation` : 'no read-only access'
      throw new TenantryError(
        'UNSUPPORTED_PLACEMENT',
        `Tenant "${slug}" has ${tenant.placement.isolation} isolation on ${engine.name}, which offers ${offered}; use SQL-over-HTTP with a read-only token`,
      )
    }
    const placement = { tenantId: tenant.id, isolation: tenant.placement.isolation, locator: tenant.placement.locator }
    const result = options.revoke ? (await access.revoke(placement), undefined) : await access.grant(placement)
    await this.catalog.audit({
      tenantId: tenant.id,
      action: options.revoke ? 'read_only_access.revoked' : 'read_only_access.granted',
      actor: options.actor ?? 'system',
    })
    return result
  }

  async close(): Promise<void> {
    // First, while the catalog (and the engines that measure storage) are still open.
    await this.pointInTime?.stop().catch((err: unknown) => this.logger.warn({ err }, 'Stopping the WAL shipper failed'))
    await this.usage.close().catch((err: unknown) => this.logger.warn({ err }, 'Flushing tenant usage on close failed'))
    await this.services.close().catch((err: unknown) => this.logger.warn({ err }, 'Closing the tenant services (cache connection) failed'))
    await this.router.close()
    await this.dataSources.close()
    await this.catalog.close()
  }
}

/** Runs `fn` as the resolved `tenant`, which must be ready. */
function enter<T>(tenant: TenantRecord, fn: () => T | Promise<T>): Promise<T> {
  // A tenant being moved is served from its old placement until the move flips it.
  if (tenant.status !== 'ready' && tenant.status !== 'moving') {
    return Promise.reject(
      new TenantryError('TENANT_NOT_READY', `Tenant "${tenant.slug}" is ${tenant.status}`, { details: { status: tenant.status } }),
    )
  }
  return runWithTenant(tenant, fn, { tenant } satisfies RouteState)
}

/** Opens the catalog (migrating it unless told not to), records the configured data sources, and returns a ready instance. */
export async function createTenantry(
  config: TenantryConfig | ResolvedConfig = {},
  options: CreateTenantryOptions = {},
): Promise<Tenantry> {
  const resolved = isResolved(config) ? config : resolveConfig(config)
  const logger = options.logger ?? SILENT_LOGGER
  // The app's migrations, then what Tenantry derives from `server.collections`: the write
  // ledger of idempotent writes (where collections are declared) and the search indexes.
  const migrations = (
    typeof resolved.tenantMigrations === 'string'
      ? await TenantMigrationSet.fromDirectory(resolved.tenantMigrations)
      : TenantMigrationSet.fromRecord(resolved.tenantMigrations)
  ).withDerived([
    declaresCollections(resolved.server) ? ledgerStep() : undefined,
    resolved.services.state ? stateStep() : undefined, // `tenantry.state`'s table, where the config switches it on
    searchIndexStep(searchDeclarations(resolved.server)),
  ])
  // The app's shared migrations, loaded (and checked) before anything opens.
  const sharedMigrations = resolved.sharedMigrations && (await loadMigrationSet(resolved.sharedMigrations.migrations))
  const catalog = Catalog.open({ url: resolved.catalogUrl, logger })
  let dataSources: DataSources
  let secretBox: SecretBox
  try {
    if (options.migrateCatalog ?? true) await catalog.migrate()
    await catalog.changes.start()
    // Before anything is sealed: a key that cannot open what the catalog holds is refused here.
    secretBox = await openSecretBox(catalog, resolved.home, process.env, logger)
    dataSources = new DataSources(catalog, secretBox, logger)
    await dataSources.sync(resolved.dataSources)
  } catch (error) {
    await catalog.close()
    throw error
  }
  let router: Router | undefined
  const quotas = new Quotas(catalog, resolved.quotas, (id) => router?.invalidate(id))
  const usage = new UsageMeter(catalog, {
    flushIntervalMs: resolved.usage.flushIntervalMs,
    logger,
    measureStorage: async (tenantId) => {
      const tenant = await router!.resolve({ id: tenantId })
      const engine = await dataSources.engine(tenant.placement.dataSourceId)
      return engine.storage?.size({ tenantId, ...tenant.placement })
    },
  })
  router = new Router(catalog, dataSources, resolved.router, logger, {
    storageLimit: async (tenant) => (await quotas.of(tenant.id)).storageBytes,
    meter: usage.statement,
  })
  const tenants = new Provisioner(
    { catalog, dataSources, router, migrations, logger },
    {
      defaultIsolation: resolved.defaults.isolation,
      defaultDataSource: resolved.defaults.dataSource,
      placement: resolved.defaults.placement,
      useTemplates: resolved.provisioning.useTemplates,
      ...(options.beforeProvisioningStep ? { beforeStep: options.beforeProvisioningStep } : {}),
    },
  )
  tenants.useMove(
    new TenantMove({
      catalog,
      dataSources,
      migrations,
      router,
      logger,
      ...(resolved.router.placementTtlMs !== undefined ? { placementTtlMs: resolved.router.placementTtlMs } : {}),
      ...(options.beforeMoveStep ? { beforeStep: options.beforeMoveStep } : {}),
    }),
  )
  return new Tenantry({ config: resolved, catalog, dataSources, router, tenants, migrations, logger, quotas, usage, secretBox, ...(sharedMigrations ? { sharedMigrations } : {}) })
}

function isResolved(config: TenantryConfig | ResolvedConfig): config is ResolvedConfig {
  return 'root' in config && 'tenantMigrations' in config
}

function loadMigrationSet(source: string | Record<string, TenantMigration>): Promise<TenantMigrationSet> | TenantMigrationSet {
  return typeof source === 'string' ? TenantMigrationSet.fromDirectory(source) : TenantMigrationSet.fromRecord(source)
}
