import { existsSync } from 'node:fs'
import { dirname, extname, isAbsolute, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createJiti } from 'jiti'
import { TenantryError } from './errors.js'
import type { Isolation } from './engines/engine.js'
import { parseDataSourceConfig, type DataSourceConfig, type DataSourceConfigInput } from './engines/registry.js'
import { KYSELY_ENTRY, type TenantMigration } from './migrations/migration-set.js'
import type { PlacementPolicy } from './provisioning/provisioner.js'
import type { RouterOptions } from './router/router.js'
import { resolveQuotasConfig, type QuotasConfig, type ResolvedQuotasConfig } from './quotas/quotas.js'
import { resolveServicesConfig, type ResolvedServicesConfig, type ServicesConfig } from './services/services-config.js'

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
}

/** The config with every default applied and every path absolute. */
export interface ResolvedConfig {
  root: string
  home: string
  catalogUrl: string
  tenantMigrations: string | Record<string, TenantMigration>
  dataSources: DataSourceConfig[]
  defaults: { isolation: Isolation; dataSource: string; placement: PlacementPolicy }
  router: RouterOptions
  provisioning: { useTemplates: boolean }
  quotas: ResolvedQuotasConfig
  usage: { flushIntervalMs: number }
  server: Record<string, unknown>
  services: ResolvedServicesConfig
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
  return {
    root,
    home,
    catalogUrl: /^[a-z]+:\/\//.test(catalogUrl) ? catalogUrl : at(catalogUrl),
    tenantMigrations: typeof tenantMigrations === 'string' ? at(tenantMigrations) : tenantMigrations,
    dataSources,
    defaults: { isolation: config.defaults?.isolation ?? 'database', dataSource, placement: config.defaults?.placement ?? 'default' },
    router: config.router ?? {},
    provisioning: { useTemplates: config.provisioning?.useTemplates ?? true },
    quotas: resolveQuotasConfig(config.quotas),
    usage: { flushIntervalMs: flushInterval(config.usage?.flushIntervalMs) },
    server: config.server ?? {},
    services: resolveServicesConfig(config.services, { home, resolvePath: at }),
  }
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
