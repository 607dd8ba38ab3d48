import { existsSync } from 'node:fs'
import { dirname, extname, isAbsolute, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createJiti } from 'jiti'
import { TenantryError } from './errors.js'
import { IDENTIFIER_PATTERN } from './identifiers.js'
import type { Isolation } from './engines/engine.js'
import { parseDataSourceConfig, type DataSourceConfig, type DataSourceConfigInput } from './engines/registry.js'
import { KYSELY_ENTRY, type TenantMigration } from './migrations/migration-set.js'
import type { PlacementPolicy } from './provisioning/provisioner.js'
import type { RouterOptions } from './router/router.js'
import { resolveQuotasConfig, type QuotasConfig, type ResolvedQuotasConfig } from './quotas/quotas.js'
import { resolveServicesConfig, type ResolvedServicesConfig, type ServicesConfig } from './services/services-config.js'
import { resolvePointInTimeConfig, type ResolvedPointInTimeConfig } from './lifecycle/point-in-time-config.js'

/**
 * What `tenantry.config.ts` exports (through `defineConfig`). Relative paths are
 * resolved against the directory of the config file.
 */
export interface TenantryConfig {
  /**
   * Where the embedded default keeps its catalog and tenant files.
   * @default process.env.TENANTRY_HOME (relative to the working directory) ?? './.tenantry' (next to the config file)
   */
  home?: string
  /**
   * The catalog: a SQLite file path, or a `postgres://` URL.
   * @default process.env.TENANTRY_CATALOG_URL ?? `${home}/catalog.db`
   */
  catalogUrl?: string
  migrations?: {
    /** The app's tenant migrations: a directory of `.ts`/`.js`/`.sql` files, or migrations in code. */
    tenant?: string | Record<string, TenantMigration>
    /**
     * The app's shared (app-level) migrations: tables outside every tenant, such as seed 002's
     * plans and feature flags, in the `public` schema of a Postgres data source. A directory or
     * migrations in code (as `tenant`), or `{ migrations, dataSource, readable }`. Applied once
     * by `tenantry migrate` (before the tenants) and `tenantry migrate --shared-only`.
     */
    shared?: string | Record<string, TenantMigration> | SharedMigrationsConfig
  }
  /**
   * Where tenants' data lives. Each entry is checked by its engine's schema (see
   * `registerEngine`): an unknown engine or field is an `INVALID_CONFIG` that names it.
   * @default [{ id: 'local', engine: 'sqlite', directory: `${home}/tenants` }]
   */
  dataSources?: DataSourceConfigInput[]
  defaults?: {
    /** @default 'database' */
    isolation?: Isolation
    /** @default the first data source */
    dataSource?: string
    /** How new tenants are placed when no data source is named (see `PlacementPolicy`). @default 'default' */
    placement?: PlacementPolicy
  }
  router?: RouterOptions
  provisioning?: {
    /** @default true */
    useTemplates?: boolean
  }
  /**
   * Default quotas of every tenant (storage, tokens, rows per bulk request) and organizations
   * per user; a tenant's own values override them (`tenantry.quotas.set`, `tenantry tenant quota`).
   * Unknown fields are refused. See `QuotasConfig`.
   */
  quotas?: QuotasConfig
  usage?: {
    /** How often metered usage is written to the catalog (`tenant_usage`). @default 10000 */
    flushIntervalMs?: number
  }
  /** The HTTP server's own settings (collections, auth providers); read by `@tenantry/server`, opaque here. */
  server?: Record<string, unknown>
  /** Tenant-scoped services: the cache's store, state on or off. See `ServicesConfig`. */
  services?: ServicesConfig
  /** Per-tenant backups (`tenantry tenant backup`). */
  backups?: {
    /** Where backup files are written, one directory per tenant id. @default `${home}/backups` */
    directory?: string
    /**
     * Point-in-time restore of SQLite tenants: their WAL is shipped into `<directory>/<tenant id>/wal`
     * every `intervalMs` by the process serving them (`tenantry start`), restorable to any second
     * of the last `retention` (`7d`, `12h`, or ms). Off unless set. See lifecycle/point-in-time.ts.
     */
    pointInTime?: { retention?: string | number; intervalMs?: number; rebaseAfter?: string | number }
  }
}

/** Shared migrations with where they run and what tenants may read. See `TenantryConfig.migrations.shared`. */
export interface SharedMigrationsConfig {
  /** A directory of `.ts`/`.js`/`.sql` files, or migrations in code. */
  migrations: string | Record<string, TenantMigration>
  /**
   * The Postgres data source whose database's `public` schema holds the shared tables.
   * SQLite has no shared database (each tenant is a file of its own) and is refused.
   * @default `defaults.dataSource` if it is Postgres, else the first Postgres data source
   */
  dataSource?: string
  /**
   * Shared tables every schema and row tenant may read (`SELECT`, nothing else) from its own
   * connection, raw SQL included, e.g. `['plans', 'feature_flags']`. Other shared tables stay
   * out of tenants' reach. Database-isolated tenants are in databases of their own and cannot
   * read them. @default []
   */
  readable?: string[]
}

/** `SharedMigrationsConfig` resolved: a data source chosen, paths absolute. */
export interface ResolvedSharedMigrations {
  migrations: string | Record<string, TenantMigration>
  dataSource: string
  readable: string[]
}

/** The config with every default applied and every path absolute. */
export interface ResolvedConfig {
  root: string
  home: string
  catalogUrl: string
  tenantMigrations: string | Record<string, TenantMigration>
  /** Absent when the config declares no shared migrations. */
  sharedMigrations?: ResolvedSharedMigrations
  dataSources: DataSourceConfig[]
  defaults: { isolation: Isolation; dataSource: string; placement: PlacementPolicy }
  router: RouterOptions
  provisioning: { useTemplates: boolean }
  quotas: ResolvedQuotasConfig
  usage: { flushIntervalMs: number }
  server: Record<string, unknown>
  services: ResolvedServicesConfig
  backups: { directory: string; pointInTime?: ResolvedPointInTimeConfig }
}

/** Identity function that types a config file. */
export function defineConfig(config: TenantryConfig): TenantryConfig {
  return config
}

const SELF_ENTRY = fileURLToPath(new URL(`./index${extname(fileURLToPath(import.meta.url))}`, import.meta.url))

export const CONFIG_FILE_NAMES = ['tenantry.config.ts', 'tenantry.config.mts', 'tenantry.config.js', 'tenantry.config.mjs']

/** Applies defaults and environment (`TENANTRY_HOME`, `TENANTRY_CATALOG_URL`) to a config. */
export function resolveConfig(
  config: TenantryConfig = {},
  options: { root?: string; env?: NodeJS.ProcessEnv } = {},
): ResolvedConfig {
  const env = options.env ?? process.env
  const root = resolve(options.root ?? process.cwd())
  const at = (path: string) => (isAbsolute(path) ? path : resolve(root, path))
  const home = config.home ? at(config.home) : env.TENANTRY_HOME ? resolve(env.TENANTRY_HOME) : join(root, '.tenantry')
  const catalogUrl = config.catalogUrl ?? env.TENANTRY_CATALOG_URL ?? join(home, 'catalog.db')

  const dataSources: DataSourceConfig[] = (config.dataSources ?? [{ id: 'local', engine: 'sqlite' as const }]).map((source) =>
    parseDataSourceConfig(source, { home, resolvePath: at }),
  )
  const dataSource = config.defaults?.dataSource ?? dataSources[0]?.id
  if (!dataSource || !dataSources.some((s) => s.id === dataSource)) {
    throw new TenantryError('INVALID_CONFIG', `Default data source ${String(dataSource)} is not declared in dataSources`)
  }
  const tenantMigrations = config.migrations?.tenant ?? {}
  const sharedMigrations = config.migrations?.shared === undefined ? undefined : resolveSharedMigrations(config.migrations.shared, dataSources, dataSource, at)
  return {
    root,
    home,
    catalogUrl: /^[a-z]+:\/\//.test(catalogUrl) ? catalogUrl : at(catalogUrl),
    tenantMigrations: typeof tenantMigrations === 'string' ? at(tenantMigrations) : tenantMigrations,
    ...(sharedMigrations ? { sharedMigrations } : {}),
    dataSources,
    defaults: { isolation: config.defaults?.isolation ?? 'database', dataSource, placement: config.defaults?.placement ?? 'default' },
    router: config.router ?? {},
    provisioning: { useTemplates: config.provisioning?.useTemplates ?? true },
    quotas: resolveQuotasConfig(config.quotas),
    usage: { flushIntervalMs: flushInterval(config.usage?.flushIntervalMs) },
    server: config.server ?? {},
    services: resolveServicesConfig(config.services, { home, resolvePath: at }),
    backups: {
      directory: config.backups?.directory ? at(config.backups.directory) : join(home, 'backups'),
      ...(config.backups?.pointInTime ? { pointInTime: resolvePointInTimeConfig(config.backups.pointInTime) } : {}),
    },
  }
}

const SHARED_KEYS = new Set(['migrations', 'dataSource', 'readable'])

/**
 * Where the shared migrations run, and which of their tables tenants may read. Only Postgres
 * has one database that tenants' connections share: a SQLite data source is refused here.
 */
function resolveSharedMigrations(
  shared: NonNullable<NonNullable<TenantryConfig['migrations']>['shared']>,
  dataSources: readonly DataSourceConfig[],
  defaultDataSource: string,
  at: (path: string) => string,
): ResolvedSharedMigrations {
  const invalid = (message: string) => new TenantryError('INVALID_CONFIG', `migrations.shared: ${message}`)
  if (typeof shared === 'object' && shared !== null && !('migrations' in shared) && ('readable' in shared || 'dataSource' in shared)) {
    throw invalid('{ dataSource, readable } needs migrations: a directory or a record of migrations')
  }
  const options: SharedMigrationsConfig =
    typeof shared === 'string' || (typeof shared === 'object' && shared !== null && !('migrations' in shared))
      ? { migrations: shared as string | Record<string, TenantMigration> }
      : (shared as SharedMigrationsConfig)
  if (typeof options !== 'object' || options === null) throw invalid('must be a directory, migrations in code, or { migrations, dataSource, readable }')
  const unknown = Object.keys(options).find((key) => !SHARED_KEYS.has(key))
  if (unknown) throw invalid(`unknown field ${JSON.stringify(unknown)} (migrations, dataSource, readable)`)
  const { migrations } = options
  if (typeof migrations !== 'string' && (typeof migrations !== 'object' || migrations === null || Array.isArray(migrations))) {
    throw invalid('migrations must be a directory or a record of migrations')
  }
  const postgres = dataSources.filter((s) => s.engine === 'postgres')
  const named = options.dataSource ?? (postgres.find((s) => s.id === defaultDataSource) ?? postgres[0])?.id
  if (named === undefined) {
    throw invalid('shared tables need a Postgres data source, and none is declared: SQLite tenants are files of their own, with no database they share')
  }
  const source = dataSources.find((s) => s.id === named)
  if (!source) throw invalid(`data source ${JSON.stringify(named)} is not declared in dataSources`)
  if (source.engine === 'sqlite') {
    throw invalid(`data source ${named} is SQLite, which has no database tenants share: name a Postgres data source`)
  }
  const readable = options.readable ?? []
  if (!Array.isArray(readable)) throw invalid('readable must be an array of table names')
  for (const table of readable) {
    if (typeof table !== 'string' || !IDENTIFIER_PATTERN.test(table)) throw invalid(`readable: ${JSON.stringify(table)} is not a table name (a-z, 0-9, _; starting with a letter)`)
    if (table.startsWith('tenantry_')) throw invalid(`readable: ${table} is Tenantry's own, not the app's`)
  }
  if (new Set(readable).size !== readable.length) throw invalid('readable names a table twice')
  return { migrations: typeof migrations === 'string' ? at(migrations) : migrations, dataSource: named, readable: [...readable] }
}

function flushInterval(value: unknown): number {
  if (value === undefined) return 10_000
  if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0) {
    throw new TenantryError('INVALID_CONFIG', `usage.flushIntervalMs must be a positive whole number of milliseconds, not ${JSON.stringify(value)}`)
  }
  return value
}

/** Finds `tenantry.config.*` in `from` or its parents. */
export function findConfigFile(from: string = process.cwd()): string | undefined {
  let dir = resolve(from)
  for (;;) {
    for (const name of CONFIG_FILE_NAMES) {
      const candidate = join(dir, name)
      if (existsSync(candidate)) return candidate
    }
    const parent = dirname(dir)
    if (parent === dir) return undefined
    dir = parent
  }
}

/** Loads and resolves a config file (TypeScript included); with no file, the embedded defaults. */
export async function loadConfig(path?: string, env: NodeJS.ProcessEnv = process.env): Promise<ResolvedConfig> {
  const file = path ? resolve(path) : findConfigFile()
  if (!file) return resolveConfig({}, { env })
  if (!existsSync(file)) throw new TenantryError('INVALID_CONFIG', `Config file not found: ${file}`)
  let config: TenantryConfig
  try {
    // The config imports `tenantry` (and `kysely`): it gets this very instance, installed or not.
    const jiti = createJiti(import.meta.url, { moduleCache: false, alias: { tenantry: SELF_ENTRY, kysely: KYSELY_ENTRY } })
    config = await jiti.import<TenantryConfig>(file, { default: true })
  } catch (error) {
    throw new TenantryError('INVALID_CONFIG', `Cannot load ${file}: ${(error as Error).message}`, { cause: error })
  }
  if (!config || typeof config !== 'object') {
    throw new TenantryError('INVALID_CONFIG', `${file} must export a config object (use defineConfig)`)
  }
  return resolveConfig(config, { root: dirname(file), env })
}
