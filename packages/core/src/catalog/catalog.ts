import { hostname } from 'node:os'
import { chmodSync, closeSync, existsSync, mkdirSync, openSync } from 'node:fs'
import { dirname } from 'node:path'
import { randomUUID } from 'node:crypto'
import Database from 'better-sqlite3'
import { Kysely, Migrator, PostgresDialect, sql, type Migration, type MigrationResult, type Selectable } from 'kysely'
import { TransactionalSqliteDialect } from '../engines/sqlite/sqlite-dialect.js'
import pg from 'pg'
import { TenantryError } from '../errors.js'
import { SILENT_LOGGER, type Logger } from '../logger.js'
import { isProcessAlive } from '../processes.js'
import type { EngineName, Isolation } from '../engines/engine.js'
import { catalogMigrations } from './catalog-migrations.js'
import { PostgresChangeFeed, SqliteChangeFeed, type ChangeFeed } from '../cluster/change-feed.js'
import type {
  CatalogDatabase,
  DataSourceMode,
  DataSourcesTable,
  PlacementsTable,
  TenantsTable,
  TenantOperation,
  TenantStatus,
} from './catalog-schema.js'

/** A tenant as the catalog knows it, with its placement. */
export interface TenantRecord {
  id: string
  slug: string
  name: string
  status: TenantStatus
  operation: TenantOperation
  statusReason: string | null
  createdAt: string
  updatedAt: string
  purgedAt: string | null
  /** The tenant's id in another system (an auth provider's user id, a CRM account id), or null. */
  externalId: string | null
  /** Maintenance mode: the message writes are refused with (`TENANT_MAINTENANCE`), or null. */
  maintenance: string | null
  placement: Placement
}

/** Where one tenant lives: isolation + data source + locator. */
export interface Placement {
  isolation: Isolation
  dataSourceId: string
  locator: string
}

export interface DataSourceRecord {
  id: string
  engine: EngineName
  mode: DataSourceMode
  config: Record<string, unknown>
  capacity: number | null
  region: string | null
  /** Sealed credentials (see `SecretBox`), or null. Never logged, never returned by the CLI or API. */
  secret: string | null
  createdAt: string
}

export interface AuditEvent {
  tenantId?: string | null
  action: string
  actor?: string
  details?: Record<string, unknown>
}

/** A lock held through `Catalog.acquireLock`. */
export interface CatalogLock {
  readonly name: string
  readonly holder: string
  /** Keeps the lock from being taken over as abandoned. */
  heartbeat(): Promise<void>
  /** Releases the lock; nothing more once released, here or by the commit of a `transition` given it. */
  release(): Promise<void>
}

export interface LockInfo {
  name: string
  holder: string
  pid: number
  host: string
  acquiredAt: string
  heartbeatAt: string
}

/** What a tenant used: the counters metered per tenant (see usage/usage-meter.ts). */
export interface UsageCounts {
  /** HTTP requests admitted to the tenant. */
  requests: number
  /** SQL statements run on the tenant's data (data API queries, SQL-over-HTTP statements). */
  statements: number
  rowsRead: number
  rowsWritten: number
  /** Time spent running those statements, in milliseconds. */
  execMs: number
}

/** One tenant's usage on one UTC day. */
export interface UsageDay extends UsageCounts {
  /** `YYYY-MM-DD`, UTC. */
  day: string
  /** The tenant's storage as last measured that day, or null if it was not measured. */
  storageBytes: number | null
}

/** Counts to add to a tenant's usage of a day (and, when measured, its storage). */
export interface UsageDelta {
  tenantId: string
  day: string
  counts: UsageCounts
  storageBytes?: number
}

export interface CatalogOptions {
  /**
   * `postgres://…` or `postgresql://…` for a Postgres catalog; anything else is a SQLite file path.
   */
  url: string
  /** A lock whose holder has not beaten its heartbeat for this long is taken over. @default 60000 */
  staleLockMs?: number
  /** Hears of idle catalog connections the server ended (a Postgres catalog). @default SILENT_LOGGER */
  logger?: Logger
}

const now = () => new Date().toISOString()

const TENANT_COLUMNS = [
  'tenants.id',
  'tenants.slug',
  'tenants.name',
  'tenants.status',
  'tenants.operation',
  'tenants.status_reason',
  'tenants.created_at',
  'tenants.updated_at',
  'tenants.purged_at',
  'tenants.external_id',
  'tenants.maintenance_message',
  'placements.isolation',
  'placements.data_source_id',
  'placements.locator',
] as const

export function isPostgresUrl(url: string): boolean {
  return /^postgres(ql)?:\/\//.test(url)
}

/**
 * The control plane: tenants, placements, data sources, the migration ledger, locks and
 * the audit log. It holds no tenant business data.
 */
export class Catalog {
  readonly db: Kysely<CatalogDatabase>
  readonly engine: EngineName
  /** Changes to tenants, placements, tokens and settings, as the catalog's triggers announce them (started by `createTenantry`). */
  readonly changes: ChangeFeed
  readonly #staleLockMs: number
  /** Locks of `acquireLock` already released, by their `release()` or in a `transition`'s commit. */
  readonly #released = new WeakSet<CatalogLock>()

  private constructor(db: Kysely<CatalogDatabase>, engine: EngineName, options: CatalogOptions, changes: (db: Kysely<CatalogDatabase>) => ChangeFeed) {
    this.db = db
    this.engine = engine
    this.changes = changes(db)
    this.#staleLockMs = options.staleLockMs ?? 60_000
  }

  /** Opens (without migrating) the catalog at `options.url`. */
  static open(options: CatalogOptions): Catalog {
    if (isPostgresUrl(options.url)) {
      const pool = new pg.Pool({ connectionString: options.url, max: 10 })
      // An idle connection the server ended (a restart, a terminated backend) is an 'error' event
      // on the pool; unheard, Node would end the process. The pool replaces the connection.
      const logger = options.logger ?? SILENT_LOGGER
      pool.on('error', (err) => logger.warn({ err }, 'An idle catalog connection was ended by the server'))
      return new Catalog(new Kysely({ dialect: new PostgresDialect({ pool }) }), 'postgres', options, (db) => new PostgresChangeFeed(options.url, db, { logger }))
    }
    // Sessions and password hashes live here: the directory and the file are the owner's alone.
    // SQLite gives the -wal and -shm files the database file's mode, so they follow.
    mkdirSync(dirname(options.url), { recursive: true, mode: 0o700 })
    if (options.url !== ':memory:' && !options.url.startsWith('file:')) {
      closeSync(openSync(options.url, 'a', 0o600))
      for (const file of [options.url, `${options.url}-wal`, `${options.url}-shm`]) if (existsSync(file)) chmodSync(file, 0o600)
    }
    const database = new Database(options.url, { timeout: 10_000 })
    database.pragma('journal_mode = WAL')
    database.pragma('synchronous = NORMAL')
    database.pragma('foreign_keys = ON')
    // Immediate: two processes migrating one catalog at once must queue, not fail with SQLITE_BUSY.
    return new Catalog(new Kysely({ dialect: new TransactionalSqliteDialect({ database, immediateTransactions: true }) }), 'sqlite', options, () => new SqliteChangeFeed(database, options.logger ? { logger: options.logger } : {}))
  }

  /** Brings the catalog's own tables up to date. Throws `MIGRATION_FAILED` with the failing step. */
  async migrate(): Promise<MigrationResult[]> {
    const migrations = catalogMigrations(this.engine)
    const migrator = new Migrator({
      db: this.db,
      provider: { getMigrations: async (): Promise<Record<string, Migration>> => migrations },
      migrationTableName: 'catalog_migrations',
      migrationLockTableName: 'catalog_migrations_lock',
    })
    const { error, results = [] } = await migrator.migrateToLatest()
    if (error) {
      const failed = results.find((r) => r.status === 'Error')?.migrationName
      throw new TenantryError('MIGRATION_FAILED', `Catalog migration ${failed ?? ''} failed: ${String(error)}`, {
        cause: error,
      })
    }
    return results
  }

  async close(): Promise<void> {
    await this.changes.close()
    await this.db.destroy()
  }

  // --- data sources -------------------------------------------------------

  /** Records a data source, or updates the facts (and sealed credentials) of the one with the same id. */
  async upsertDataSource(source: Omit<DataSourceRecord, 'createdAt'>): Promise<void> {
    const { id: _id, engine: _engine, created_at: _created, ...changes } = dataSourceRow(source)
    await this.db
      .insertInto('data_sources')
      .values(dataSourceRow(source))
      .onConflict((oc) => oc.column('id').doUpdateSet(changes))
      .execute()
  }

  /** Records a new data source; an existing id is refused with `INVALID_IDENTIFIER`. */
  async insertDataSource(source: Omit<DataSourceRecord, 'createdAt'>): Promise<void> {
    const result = await this.db
      .insertInto('data_sources')
      .values(dataSourceRow(source))
      .onConflict((oc) => oc.column('id').doNothing())
      .executeTakeFirst()
    if (Number(result.numInsertedOrUpdatedRows ?? 0) !== 1) {
      throw new TenantryError('INVALID_IDENTIFIER', `Data source "${source.id}" already exists`)
    }
  }

  /**
   * Changes what placement reads of a data source (capacity, region, mode): an absent field is
   * kept, `null` clears capacity or region. Never its engine, location or credentials, which
   * name where tenants already live. Answers the updated record, or undefined for an unknown id.
   * A source the config declares is recorded again from the config at the next start.
   */
  async updateDataSource(
    id: string,
    changes: { capacity?: number | null; region?: string | null; mode?: DataSourceMode },
  ): Promise<DataSourceRecord | undefined> {
    const set = {
      ...(changes.capacity !== undefined ? { capacity: changes.capacity } : {}),
      ...(changes.region !== undefined ? { region: changes.region } : {}),
      ...(changes.mode !== undefined ? { mode: changes.mode } : {}),
    }
    if (Object.keys(set).length > 0) await this.db.updateTable('data_sources').set(set).where('id', '=', id).execute()
    return this.findDataSource(id)
  }

  /** Live tenants placed on each data source, for placement by load. */
  async placementCounts(): Promise<Map<string, number>> {
    const rows = await this.db
      .selectFrom('placements')
      .innerJoin('tenants', 'tenants.id', 'placements.tenant_id')
      .where('tenants.purged_at', 'is', null)
      .select(['placements.data_source_id', (eb) => eb.fn.countAll<number | string>().as('n')])
      .groupBy('placements.data_source_id')
      .execute()
    return new Map(rows.map((r) => [r.data_source_id, Number(r.n)]))
  }

  async findDataSource(id: string): Promise<DataSourceRecord | undefined> {
    const row = await this.db.selectFrom('data_sources').selectAll().where('id', '=', id).executeTakeFirst()
    return row && toDataSource(row)
  }

  async listDataSources(): Promise<DataSourceRecord[]> {
    const rows = await this.db.selectFrom('data_sources').selectAll().orderBy('id').execute()
    return rows.map(toDataSource)
  }

  // --- tenants ------------------------------------------------------------

  #tenantQuery() {
    return this.db
      .selectFrom('tenants')
      .innerJoin('placements', 'placements.tenant_id', 'tenants.id')
      .select(TENANT_COLUMNS)
  }

  /** The live (not purged) tenant with this slug. */
  async findTenantBySlug(slug: string): Promise<TenantRecord | undefined> {
    const row = await this.#tenantQuery()
      .where('tenants.slug', '=', slug)
      .where('tenants.purged_at', 'is', null)
      .executeTakeFirst()
    return row && toTenant(row)
  }

  /** The live (not purged) tenant carrying this external id. */
  async findTenantByExternalId(externalId: string): Promise<TenantRecord | undefined> {
    const row = await this.#tenantQuery()
      .where('tenants.external_id', '=', externalId)
      .where('tenants.purged_at', 'is', null)
      .executeTakeFirst()
    return row && toTenant(row)
  }

  async findTenantById(id: string): Promise<TenantRecord | undefined> {
    const row = await this.#tenantQuery().where('tenants.id', '=', id).executeTakeFirst()
    return row && toTenant(row)
  }

  /** Tenants, newest last. Purged tenants only with `includePurged`. */
  async listTenants(options: { status?: TenantStatus[]; includePurged?: boolean } = {}): Promise<TenantRecord[]> {
    let query = this.#tenantQuery().orderBy('tenants.created_at').orderBy('tenants.id')
    if (!options.includePurged) query = query.where('tenants.purged_at', 'is', null)
    if (options.status?.length) query = query.where('tenants.status', 'in', options.status)
    return (await query.execute()).map(toTenant)
  }

  /**
   * One page of live tenants in id order, those after `afterId`, narrowed in the query: for
   * walking every tenant in bounded memory (`tenantry.forEachTenant` pages through them).
   */
  async tenantsPage(options: {
    limit: number
    afterId?: string
    statuses?: readonly TenantStatus[]
    dataSourceId?: string
    isolation?: Isolation
    slugs?: readonly string[]
  }): Promise<TenantRecord[]> {
    let query = this.#tenantQuery().where('tenants.purged_at', 'is', null).orderBy('tenants.id').limit(options.limit)
    if (options.afterId !== undefined) query = query.where('tenants.id', '>', options.afterId)
    if (options.statuses) query = query.where('tenants.status', 'in', [...options.statuses])
    if (options.dataSourceId !== undefined) query = query.where('placements.data_source_id', '=', options.dataSourceId)
    if (options.isolation !== undefined) query = query.where('placements.isolation', '=', options.isolation)
    if (options.slugs) query = query.where('tenants.slug', 'in', [...options.slugs])
    return (await query.execute()).map(toTenant)
  }

  /**
   * Inserts a tenant in `provisioning` with its placement, atomically, and `audit` with them
   * when given (one commit for a create's first step). A live tenant with the same slug makes
   * this throw `SLUG_TAKEN`.
   */
  async insertTenant(tenant: { id: string; slug: string; name: string; placement: Placement; externalId?: string }, audit?: AuditEvent): Promise<void> {
    const at = now()
    try {
      await this.db.transaction().execute(async (trx) => {
        await trx
          .insertInto('tenants')
          .values({
            id: tenant.id,
            slug: tenant.slug,
            name: tenant.name,
            status: 'provisioning',
            operation: 'create',
            status_reason: null,
            created_at: at,
            updated_at: at,
            purged_at: null,
            ...(tenant.externalId === undefined ? {} : { external_id: tenant.externalId }),
          })
          .execute()
        await trx
          .insertInto('placements')
          .values({
            tenant_id: tenant.id,
            isolation: tenant.placement.isolation,
            data_source_id: tenant.placement.dataSourceId,
            locator: tenant.placement.locator,
            created_at: at,
          })
          .execute()
        if (audit) await insertAudit(trx, audit)
      })
    } catch (error) {
      if (isUniqueViolation(error) && tenant.externalId !== undefined && /external_id/.test(String((error as Error).message)) && (await this.findTenantByExternalId(tenant.externalId))) {
        throw new TenantryError('EXTERNAL_ID_TAKEN', `Another tenant already carries external id ${JSON.stringify(tenant.externalId)}`, { cause: error })
      }
      if (isUniqueViolation(error)) {
        throw new TenantryError('SLUG_TAKEN', `Tenant slug "${tenant.slug}" is already taken`, { cause: error })
      }
      throw error
    }
  }

  /**
   * Moves a tenant to `to` only if its status is one of `from` (compare-and-set), so two
   * processes cannot both win one transition. Returns whether it moved.
   */
  async transition(
    id: string,
    from: readonly TenantStatus[],
    to: TenantStatus,
    changes: {
      operation?: TenantOperation
      reason?: string | null
      purged?: boolean
      /** Written only with the move it reports, in the same commit. */
      audit?: AuditEvent
      /** Migrations to record in the tenant's ledger with the move, in the same commit (see `recordMigrations`). */
      ledger?: ReadonlyArray<{ name: string; appliedAt: string }>
      /** A lock of `acquireLock` released with the move, in the same commit; held still if the tenant was not moved. */
      release?: CatalogLock
    } = {},
  ): Promise<boolean> {
    const { audit, ledger, release } = changes
    const moved =
      audit || ledger?.length || release
        ? await this.db.transaction().execute(async (trx) => {
            const done = await this.#transition(trx, id, from, to, changes)
            if (done && audit) await insertAudit(trx, audit)
            if (done && ledger) await insertLedger(trx, id, ledger)
            if (done && release) await deleteLock(trx, release)
            return done
          })
        : await this.#transition(this.db, id, from, to, changes)
    if (moved && release) this.#released.add(release)
    // A deleted tenant's settings (its quotas) go with it; its usage history stays, for billing.
    if (moved && to === 'deleted') await this.deleteTenantSettings(id)
    return moved
  }

  async #transition(
    db: Kysely<CatalogDatabase>,
    id: string,
    from: readonly TenantStatus[],
    to: TenantStatus,
    changes: { operation?: TenantOperation; reason?: string | null; purged?: boolean },
  ): Promise<boolean> {
    const at = now()
    const result = await db
      .updateTable('tenants')
      .set({
        status: to,
        updated_at: at,
        status_reason: changes.reason ?? null,
        ...(changes.operation ? { operation: changes.operation } : {}),
        ...(changes.purged ? { purged_at: at } : {}),
      })
      .where('id', '=', id)
      .where('status', 'in', from)
      .executeTakeFirst()
    return Number(result.numUpdatedRows) === 1
  }

  /** Live tenants, optionally only those in `status` and among `tenantIds`. */
  async countTenants(status?: readonly TenantStatus[], tenantIds?: readonly string[]): Promise<number> {
    let query = this.db
      .selectFrom('tenants')
      .select((eb) => eb.fn.countAll<number | string>().as('n'))
      .where('purged_at', 'is', null)
    if (status?.length) query = query.where('status', 'in', [...status])
    if (tenantIds) query = tenantIds.length ? query.where('id', 'in', [...tenantIds]) : query.where(sql.lit(false))
    const row = await query.executeTakeFirstOrThrow()
    return Number(row.n)
  }

  // --- per-tenant settings and usage ------------------------------------------

  /** The tenant's own settings (a JSON object), or undefined when it has none (the defaults apply). */
  async tenantSettings(tenantId: string): Promise<Record<string, unknown> | undefined> {
    const row = await this.db.selectFrom('tenant_settings').select('settings').where('tenant_id', '=', tenantId).executeTakeFirst()
    return row ? (JSON.parse(row.settings) as Record<string, unknown>) : undefined
  }

  /** Replaces the tenant's settings document. */
  async setTenantSettings(tenantId: string, settings: Record<string, unknown>, actor = 'system'): Promise<void> {
    const row = { tenant_id: tenantId, settings: JSON.stringify(settings), updated_at: now(), updated_by: actor }
    await this.db
      .insertInto('tenant_settings')
      .values(row)
      .onConflict((oc) => oc.column('tenant_id').doUpdateSet({ settings: row.settings, updated_at: row.updated_at, updated_by: actor }))
      .execute()
  }

  async deleteTenantSettings(tenantId: string): Promise<void> {
    await this.db.deleteFrom('tenant_settings').where('tenant_id', '=', tenantId).execute()
  }

  /**
   * Adds counts to tenants' daily usage rows, creating them as needed, in one transaction.
   * Additive, so several processes flushing the same tenant and day add up.
   */
  async addUsage(deltas: readonly UsageDelta[]): Promise<void> {
    if (deltas.length === 0) return
    const at = now()
    await this.db.transaction().execute(async (trx) => {
      for (const d of deltas) {
        await trx
          .insertInto('tenant_usage')
          .values({
            tenant_id: d.tenantId,
            day: d.day,
            requests: d.counts.requests,
            statements: d.counts.statements,
            rows_read: d.counts.rowsRead,
            rows_written: d.counts.rowsWritten,
            exec_ms: Math.round(d.counts.execMs),
            storage_bytes: d.storageBytes ?? null,
            updated_at: at,
          })
          .onConflict((oc) =>
            oc.columns(['tenant_id', 'day']).doUpdateSet({
              requests: sql`tenant_usage.requests + excluded.requests`,
              statements: sql`tenant_usage.statements + excluded.statements`,
              rows_read: sql`tenant_usage.rows_read + excluded.rows_read`,
              rows_written: sql`tenant_usage.rows_written + excluded.rows_written`,
              exec_ms: sql`tenant_usage.exec_ms + excluded.exec_ms`,
              storage_bytes: d.storageBytes === undefined ? sql`tenant_usage.storage_bytes` : sql`excluded.storage_bytes`,
              updated_at: at,
            }),
          )
          .execute()
      }
    })
  }

  /** A tenant's daily usage, oldest first, from `since` (a `YYYY-MM-DD` day) on. */
  async usage(tenantId: string, options: { since?: string } = {}): Promise<UsageDay[]> {
    let query = this.db.selectFrom('tenant_usage').selectAll().where('tenant_id', '=', tenantId).orderBy('day')
    if (options.since) query = query.where('day', '>=', options.since)
    return (await query.execute()).map((r) => ({
      day: r.day,
      requests: Number(r.requests),
      statements: Number(r.statements),
      rowsRead: Number(r.rows_read),
      rowsWritten: Number(r.rows_written),
      execMs: Number(r.exec_ms),
      storageBytes: r.storage_bytes === null ? null : Number(r.storage_bytes),
    }))
  }

  // --- the migration ledger -----------------------------------------------

  /**
   * One query: the tenants in `statuses` whose ledger lacks any of `migrations`, each
   * with the names it has. Tenants with nothing to apply never leave the database.
   */
  async tenantsBehind(
    migrations: readonly string[],
    options: { statuses: readonly TenantStatus[]; tenantIds?: readonly string[] },
  ): Promise<Array<{ tenant: TenantRecord; applied: string[] }>> {
    if (migrations.length === 0) return []
    let query = this.#tenantQuery()
      .leftJoin('tenant_migrations as l', (join) =>
        join.onRef('l.tenant_id', '=', 'tenants.id').on('l.migration', 'in', [...migrations]),
      )
      .select((eb) => [
        eb.fn.count<number | string>('l.migration').as('applied_count'),
        sql<string | null>`${this.#aggregateNames()}`.as('applied_names'),
      ])
      .where('tenants.status', 'in', [...options.statuses])
      .where('tenants.purged_at', 'is', null)
      .groupBy(TENANT_COLUMNS)
      .having((eb) => eb.fn.count('l.migration'), '<', migrations.length)
      .orderBy('tenants.created_at')
      .orderBy('tenants.id')
    if (options.tenantIds) query = query.where('tenants.id', 'in', [...options.tenantIds])
    const rows = await query.execute()
    return rows.map((row) => ({
      tenant: toTenant(row),
      applied: row.applied_names ? row.applied_names.split(',') : [],
    }))
  }

  #aggregateNames() {
    return this.engine === 'postgres' ? sql`string_agg(l.migration, ',')` : sql`group_concat(l.migration, ',')`
  }

  /** Records applied migrations for a tenant; rows already present are left alone, so a re-run converges. */
  async recordMigrations(tenantId: string, migrations: ReadonlyArray<{ name: string; appliedAt: string }>) {
    await insertLedger(this.db, tenantId, migrations)
  }

  async ledger(tenantId: string): Promise<Array<{ migration: string; appliedAt: string }>> {
    const rows = await this.db
      .selectFrom('tenant_migrations')
      .select(['migration', 'applied_at'])
      .where('tenant_id', '=', tenantId)
      .orderBy('migration')
      .execute()
    return rows.map((r) => ({ migration: r.migration, appliedAt: r.applied_at }))
  }

  /** How many live tenants (in `statuses`, when given) have applied each migration. */
  async migrationCounts(statuses?: readonly TenantStatus[]): Promise<Map<string, number>> {
    let query = this.db
      .selectFrom('tenant_migrations')
      .innerJoin('tenants', 'tenants.id', 'tenant_migrations.tenant_id')
      .where('tenants.purged_at', 'is', null)
    if (statuses?.length) query = query.where('tenants.status', 'in', [...statuses])
    const rows = await query
      .select(['tenant_migrations.migration', (eb) => eb.fn.countAll<number | string>().as('n')])
      .groupBy('tenant_migrations.migration')
      .execute()
    return new Map(rows.map((r) => [r.migration, Number(r.n)]))
  }

  async clearLedger(tenantId: string): Promise<void> {
    await this.db.deleteFrom('tenant_migrations').where('tenant_id', '=', tenantId).execute()
  }

  // --- locks --------------------------------------------------------------

  /**
   * Takes the named lock, or throws `MIGRATION_LOCKED` naming its live holder. A lock whose
   * holder died (its pid is gone on this host, or its heartbeat is stale) is taken over.
   */
  async acquireLock(name: string): Promise<CatalogLock> {
    const holder = randomUUID()
    const host = hostname()
    const at = now()
    const row = { name, holder, pid: process.pid, host, acquired_at: at, heartbeat_at: at }
    const inserted = await this.db
      .insertInto('locks')
      .values(row)
      .onConflict((oc) => oc.column('name').doNothing())
      .executeTakeFirst()
    if (Number(inserted.numInsertedOrUpdatedRows ?? 0) !== 1) {
      const current = await this.db.selectFrom('locks').selectAll().where('name', '=', name).executeTakeFirst()
      if (current && !this.#isAbandoned(current)) {
        throw new TenantryError(
          'MIGRATION_LOCKED',
          `Another migration runner is active (pid ${current.pid} on ${current.host}, since ${current.acquired_at}); wait for it to finish`,
          { details: { lock: name, pid: current.pid, host: current.host } },
        )
      }
      const taken = await this.db
        .updateTable('locks')
        .set(row)
        .where('name', '=', name)
        .where('holder', '=', current?.holder ?? '')
        .executeTakeFirst()
      if (Number(taken.numUpdatedRows) !== 1) {
        throw new TenantryError('MIGRATION_LOCKED', 'Another migration runner took the lock at the same moment')
      }
      await this.audit({ action: 'lock.taken_over', details: { lock: name, from: current?.holder, pid: current?.pid } })
    }
    const lock: CatalogLock = {
      name,
      holder,
      heartbeat: async () => {
        await this.db
          .updateTable('locks')
          .set({ heartbeat_at: now() })
          .where('name', '=', name)
          .where('holder', '=', holder)
          .execute()
      },
      release: async () => {
        if (this.#released.has(lock)) return
        await deleteLock(this.db, lock)
        this.#released.add(lock)
      },
    }
    return lock
  }

  async readLock(name: string): Promise<LockInfo | undefined> {
    const row = await this.db.selectFrom('locks').selectAll().where('name', '=', name).executeTakeFirst()
    return (
      row && {
        name: row.name,
        holder: row.holder,
        pid: Number(row.pid),
        host: row.host,
        acquiredAt: row.acquired_at,
        heartbeatAt: row.heartbeat_at,
      }
    )
  }

  /**
   * The lock's holder if it is alive (`acquireLock` would refuse), else `undefined`: no lock, or
   * one whose holder died (its pid is gone on this host, or its heartbeat is stale). Read-only.
   */
  async liveLock(name: string): Promise<LockInfo | undefined> {
    const row = await this.db.selectFrom('locks').selectAll().where('name', '=', name).executeTakeFirst()
    if (!row || this.#isAbandoned(row)) return undefined
    return (await this.readLock(name))!
  }

  #isAbandoned(lock: { pid: number; host: string; heartbeat_at: string }): boolean {
    if (lock.host === hostname() && !isProcessAlive(Number(lock.pid))) return true
    return Date.now() - Date.parse(lock.heartbeat_at) > this.#staleLockMs
  }

  // --- audit log ----------------------------------------------------------

  async audit(event: AuditEvent): Promise<void> {
    await insertAudit(this.db, event)
  }

  async auditLog(tenantId?: string): Promise<Array<{ at: string; tenantId: string | null; action: string; actor: string; details: unknown }>> {
    let query = this.db.selectFrom('audit_log').selectAll().orderBy('id')
    if (tenantId) query = query.where('tenant_id', '=', tenantId)
    return (await query.execute()).map((r) => ({
      at: r.at,
      tenantId: r.tenant_id,
      action: r.action,
      actor: r.actor,
      details: r.details ? JSON.parse(r.details) : null,
    }))
  }
}

/** A tenant row joined with its placement, as every tenant query selects it. */
type TenantRow = Selectable<TenantsTable> & Pick<Selectable<PlacementsTable>, 'isolation' | 'data_source_id' | 'locator'>

function toTenant(row: TenantRow): TenantRecord {
  return {
    id: row.id,
    slug: row.slug,
    name: row.name,
    status: row.status,
    operation: row.operation,
    statusReason: row.status_reason,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    purgedAt: row.purged_at,
    externalId: row.external_id ?? null,
    maintenance: row.maintenance_message ?? null,
    placement: { isolation: row.isolation, dataSourceId: row.data_source_id, locator: row.locator },
  }
}

function dataSourceRow(source: Omit<DataSourceRecord, 'createdAt'>): Selectable<DataSourcesTable> {
  return {
    id: source.id,
    engine: source.engine,
    mode: source.mode,
    config: JSON.stringify(source.config),
    capacity: source.capacity,
    region: source.region,
    secret: source.secret,
    created_at: now(),
  }
}

function toDataSource(row: Selectable<DataSourcesTable>): DataSourceRecord {
  return {
    id: row.id,
    engine: row.engine,
    mode: row.mode,
    config: JSON.parse(row.config) as Record<string, unknown>,
    capacity: row.capacity === null ? null : Number(row.capacity),
    region: row.region,
    secret: row.secret,
    createdAt: row.created_at,
  }
}

function isUniqueViolation(error: unknown): boolean {
  const code = (error as { code?: string } | null)?.code
  return code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || code === '23505'
}

function deleteLock(db: Kysely<CatalogDatabase>, lock: CatalogLock): Promise<unknown> {
  return db.deleteFrom('locks').where('name', '=', lock.name).where('holder', '=', lock.holder).execute()
}

/** Records migrations in a tenant's ledger; one already there is left as it is. */
async function insertLedger(db: Kysely<CatalogDatabase>, tenantId: string, migrations: ReadonlyArray<{ name: string; appliedAt: string }>): Promise<void> {
  if (migrations.length === 0) return
  await db
    .insertInto('tenant_migrations')
    .values(migrations.map((m) => ({ tenant_id: tenantId, migration: m.name, applied_at: m.appliedAt })))
    .onConflict((oc) => oc.columns(['tenant_id', 'migration']).doNothing())
    .execute()
}

async function insertAudit(db: Kysely<CatalogDatabase>, event: AuditEvent): Promise<void> {
  await db
    .insertInto('audit_log')
    .values({
      at: now(),
      tenant_id: event.tenantId ?? null,
      action: event.action,
      actor: event.actor ?? 'system',
      details: event.details ? JSON.stringify(event.details) : null,
    })
    .execute()
}
