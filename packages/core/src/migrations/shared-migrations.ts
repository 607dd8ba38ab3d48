import { Migrator } from 'kysely'
import type { Catalog } from '../catalog/catalog.js'
import type { DataSources } from '../data-sources/data-sources.js'
import type { EngineHandle, SharedTables } from '../engines/engine.js'
import { TenantryError } from '../errors.js'
import { SILENT_LOGGER, type Logger } from '../logger.js'
import { migrateHandle, type TenantMigrationSet } from './migration-set.js'

/** The shared migrations' own records, beside the shared tables (the tenant set's are `tenantry_migration`). */
export const SHARED_MIGRATION_TABLE = 'tenantry_shared_migration'
export const SHARED_MIGRATION_LOCK_TABLE = 'tenantry_shared_migration_lock'

/** What `tenantry migrate --shared-only` (and the shared step of `tenantry migrate`) did. */
export interface SharedMigrationReport {
  dataSource: string
  /** Where the shared tables are, e.g. `schema public of data source pg`. */
  location: string
  migrations: readonly string[]
  /** Migrations this run applied (all of them in one transaction). */
  applied: string[]
  /** The tables tenants may now read, and nothing else of the shared schema. */
  readable: readonly string[]
  durationMs: number
}

/** The shared migrations as the shared schema records them (`tenantry migrate status`). */
export interface SharedMigrationStatus {
  dataSource: string
  location: string
  migrations: Array<{ name: string; appliedAt: string | null }>
  pending: string[]
  readable: readonly string[]
}

export interface SharedMigrationsDeps {
  migrations: TenantMigrationSet
  dataSourceId: string
  readable: readonly string[]
  dataSources: DataSources
  catalog: Catalog
  /** @default SILENT_LOGGER */
  logger?: Logger
}

/**
 * The app's shared (app-level) migrations: run once, not per tenant, in the shared schema of
 * one data source (seed 002's `public` tables: plans, feature flags). Their records live
 * beside them (`tenantry_shared_migration`), committed in the same transaction as the
 * migrations, so there is no second ledger to bring level. After each run the tables the app
 * declares `readable` are granted to tenants' roles, and every other shared table is taken
 * back from them.
 */
export class SharedMigrations {
  readonly #deps: SharedMigrationsDeps

  constructor(deps: SharedMigrationsDeps) {
    this.#deps = deps
  }

  get dataSourceId(): string {
    return this.#deps.dataSourceId
  }

  get names(): readonly string[] {
    return this.#deps.migrations.names
  }

  /**
   * Applies the pending shared migrations in one transaction, then grants `readable`. Throws
   * `MIGRATION_FAILED` (nothing applied) or `INVALID_CONFIG` (a data source without shared
   * tables, a readable table no migration made).
   */
  async migrate(): Promise<SharedMigrationReport> {
    const started = performance.now()
    const { catalog, dataSourceId, readable } = this.#deps
    const shared = await this.#shared()
    const handle = shared.open()
    let applied: string[]
    try {
      const outcome = await migrateHandle(handle, this.#deps.migrations, { logger: this.#deps.logger ?? SILENT_LOGGER, tables: TABLES })
      if (outcome.error !== undefined) {
        const message = outcome.error instanceof Error ? outcome.error.message : String(outcome.error)
        const held = new Set(outcome.executed.map((m) => m.name))
        const pending = this.names.filter((n) => !held.has(n))
        await catalog.audit({ action: 'shared.migrate.failed', details: { dataSource: dataSourceId, pending, error: message } })
        throw new TenantryError('MIGRATION_FAILED', `Shared migrations on ${shared.location} failed and were rolled back (pending: ${pending.join(', ')}): ${message}`, {
          cause: outcome.error,
        })
      }
      applied = outcome.applied
    } finally {
      await handle.close()
    }
    await shared.grantReadable(readable)
    if (applied.length) await catalog.audit({ action: 'shared.migrated', details: { dataSource: dataSourceId, applied, readable } })
    return {
      dataSource: dataSourceId,
      location: shared.location,
      migrations: this.names,
      applied,
      readable,
      durationMs: Math.round(performance.now() - started),
    }
  }

  /** What the shared schema records as applied, and what is pending. Changes nothing. */
  async status(): Promise<SharedMigrationStatus> {
    const shared = await this.#shared()
    const handle = shared.open()
    try {
      const held = new Map((await recorded(handle, this.#deps.migrations)).map((m) => [m.name, m.appliedAt]))
      return {
        dataSource: this.#deps.dataSourceId,
        location: shared.location,
        migrations: this.names.map((name) => ({ name, appliedAt: held.get(name) ?? null })),
        pending: this.names.filter((n) => !held.has(n)),
        readable: this.#deps.readable,
      }
    } finally {
      await handle.close()
    }
  }

  async #shared(): Promise<SharedTables> {
    const engine = await this.#deps.dataSources.engine(this.#deps.dataSourceId)
    if (!engine.sharedTables) {
      throw new TenantryError('INVALID_CONFIG', `migrations.shared: data source ${this.#deps.dataSourceId} (${engine.name}) has no shared tables; name a Postgres data source`)
    }
    return engine.sharedTables
  }
}

const TABLES = { migration: SHARED_MIGRATION_TABLE, lock: SHARED_MIGRATION_LOCK_TABLE }

/** The migrations the shared schema has recorded; none (and nothing created) before the first run. */
async function recorded(handle: EngineHandle, set: TenantMigrationSet): Promise<Array<{ name: string; appliedAt: string }>> {
  const migrations = set.forHandle(handle)
  const migrator = new Migrator({
    db: handle.db,
    // Only read: getMigrations runs nothing and creates no table.
    provider: { getMigrations: async () => migrations },
    migrationTableName: SHARED_MIGRATION_TABLE,
    migrationLockTableName: SHARED_MIGRATION_LOCK_TABLE,
    ...(handle.schema ? { migrationTableSchema: handle.schema } : {}),
  })
  return (await migrator.getMigrations()).filter((m) => m.executedAt).map((m) => ({ name: m.name, appliedAt: m.executedAt!.toISOString() }))
}
