import { jsonRequest } from './http.js'

/**
 * The admin API (`/api/admin/…`) for a console or an operator's script: tenants, their quotas,
 * limits and usage, the migration fan-out and data sources. Platform admins may do all of it;
 * a tenant's owners and admins list, read and manage their own tenants. The shapes are the
 * server's answers: `packages/server/src/wire-types.test.ts` fails to compile when a route's
 * schema and these types part ways.
 */

export type Isolation = 'database' | 'schema' | 'row'
export type DataSourceMode = 'shared' | 'dedicated' | 'byod'

/** A tenant as the admin API shows it. */
export interface AdminTenant {
  id: string
  slug: string
  name: string
  /** provisioning, ready, suspended, deleting, deleted or failed. */
  status: string
  statusReason: string | null
  /** The tenant's id in another system (an auth provider's user id, a CRM account id), or null. */
  externalId: string | null
  placement: { isolation: string; dataSourceId: string; locator: string }
  createdAt: string
  updatedAt: string
}

export interface AuditEntry {
  at: string
  tenantId: string | null
  action: string
  actor: string
  details: unknown
}

/** One tenant with its audit log, oldest first. */
export interface AdminTenantDetail extends AdminTenant {
  auditLog: AuditEntry[]
}

export interface CreateTenantInput {
  slug: string
  /** @default the slug */
  name?: string
  isolation?: Isolation
  dataSource?: string
  /** An existing user who becomes the tenant's owner. */
  ownerEmail?: string
}

/** What an erase removed, as counts (no personal data). */
export interface ErasedTenant {
  tenantId: string
  removed: Record<string, unknown>
}

/** A tenant backup as the admin API shows it (its file stays on the server). */
export interface TenantBackup {
  id: string
  tenantId: string
  engine: string
  isolation: Isolation
  dataSource: string
  /** sqlite-backup-api, pg_dump, or rows (row isolation). */
  method: string
  bytes: number
  /** sha256 of the backup file. */
  checksum: string
  /** The tenant's migrations when the backup was taken. */
  migrations: string[]
  createdAt: string
  createdBy: string
}

/** What a restore answers: the tenant holding the restored data (the same one, or the new one of `as`). */
export interface RestoredTenant {
  tenant: AdminTenant
  backup: TenantBackup
  /** Migrations the backup was behind on, applied after the restore. */
  migrated: string[]
}

export interface TenantQuotaValues {
  storageBytes: number | null
  tokens: number | null
  bulkRows: number | null
  fileBytes: number | null
}

export interface TenantQuotas {
  tenantId: string
  slug: string
  /** What applies: the overrides over the defaults (`null`: unlimited). */
  quotas: TenantQuotaValues
  overrides: Partial<TenantQuotaValues>
  defaults: TenantQuotaValues
  usage: { storageBytes: number | null; tokens: number; fileBytes: number }
}

type LimitSource = 'tenant' | 'config' | 'default'
interface Effective<T> {
  value: T
  source: LimitSource
}

export interface TenantLimitOverrides {
  plan?: string
  sqlStatementTimeoutMs?: number
  sqlTransactionTimeoutMs?: number
  sqlMaxStreams?: number
  sqlMaxStatements?: number
  dataApiStatementTimeoutMs?: number
}

export interface TenantLimits {
  tenantId: string
  slug: string
  limits: {
    plan: Effective<string>
    rates: { tenant: number; token: number; windowMs: number }
    sqlStatementTimeoutMs: Effective<number | null>
    sqlTransactionTimeoutMs: Effective<number | null>
    sqlMaxStreams: Effective<number>
    sqlMaxStatements: Effective<number | null>
    dataApiStatementTimeoutMs: Effective<number | null>
  }
  overrides: TenantLimitOverrides
  plans: string[]
}

export interface UsageDay {
  /** YYYY-MM-DD, UTC. */
  day: string
  requests: number
  statements: number
  rowsRead: number
  rowsWritten: number
  execMs: number
  storageBytes: number | null
}

export interface TenantUsage {
  tenantId: string
  slug: string
  storageBytes: number | null
  /** Oldest first. */
  days: UsageDay[]
}

export interface MigrationStatus {
  migrations: Array<{ name: string; appliedTenants: number; pendingTenants: number }>
  tenants: number
  behind: Array<{ tenantId: string; slug: string; status: string; pending: string[] }>
  /** The runner holding the migration lock, if any. */
  lock?: { pid: number; host: string; since: string }
}

export interface TenantMigrationResult {
  tenantId: string
  slug: string
  status: 'success' | 'error' | 'skipped'
  applied: string[]
  error?: string
}

export interface FanOutReport {
  migrations: readonly string[]
  dryRun: boolean
  total: number
  upToDate: number
  results: TenantMigrationResult[]
  succeeded: number
  failed: number
  durationMs: number
}

/** A fan-out run started through the server, as it goes. */
export interface MigrationRun {
  id: string
  startedAt: string
  finishedAt: string | null
  /** Tenants the run migrates (those behind), once it knows. */
  total: number | null
  results: TenantMigrationResult[]
  report: FanOutReport | null
  error: string | null
  running: boolean
  /** Tenants finished so far. */
  done: number
}

/** A data source: facts and counts, never its credentials. */
export interface DataSource {
  id: string
  engine: string
  mode: string
  capacity: number | null
  region: string | null
  createdAt: string
  /** Live tenants placed on it. */
  tenants: number
  /** Where it is (a directory, user@host:port/database): never a password. */
  location: string
  hasCredentials: boolean
  /** Declared in the config file: change it there. */
  declaredInConfig: boolean
}

export type AddDataSourceInput = {
  id: string
  mode?: DataSourceMode
  capacity?: number
  region?: string
} & (
  | { engine: 'sqlite'; directory?: string }
  | { engine: 'postgres'; url: string; isolations?: Array<'schema' | 'database' | 'row'> }
)

export interface DataSourceChange {
  /** `null`: unlimited. */
  capacity?: number | null
  region?: string | null
  mode?: DataSourceMode
}

export interface DataSourceTest {
  id: string
  engine: string
  detail: string
  latencyMs: number
}

export interface AdminClient {
  tenants: {
    list(): Promise<AdminTenant[]>
    get(slug: string): Promise<AdminTenantDetail>
    create(input: CreateTenantInput): Promise<AdminTenant>
    suspend(slug: string): Promise<AdminTenant>
    resume(slug: string): Promise<AdminTenant>
    /** `purge`: remove its data and free its slug (default: kept, the slug stays taken). */
    delete(slug: string, options?: { purge?: boolean }): Promise<AdminTenant>
    erase(slug: string): Promise<ErasedTenant>
    /** Backs up the tenant's database while it keeps serving. */
    backup(slug: string): Promise<TenantBackup>
    /** The tenant's backups, newest first. */
    backups(slug: string): Promise<TenantBackup[]>
    /** Restores a backup in place, or `as` a new tenant (platform admins). */
    restore(slug: string, input: { backup: string; as?: string }): Promise<RestoredTenant>
    quotas(slug: string): Promise<TenantQuotas>
    /** Replaces the tenant's own quotas: an absent one follows the default, `null` is unlimited. */
    setQuotas(slug: string, quotas: Partial<TenantQuotaValues>): Promise<TenantQuotas>
    limits(slug: string): Promise<TenantLimits>
    /** Replaces the tenant's own limits: an absent one follows the server config. */
    setLimits(slug: string, limits: TenantLimitOverrides): Promise<TenantLimits>
    usage(slug: string, options?: { days?: number }): Promise<TenantUsage>
  }
  migrations: {
    status(): Promise<MigrationStatus>
    /** Runs the fan-out; answers when it is done (follow it meanwhile with `progress()`). */
    run(options?: { concurrency?: number }): Promise<FanOutReport>
    /** The current or last run started through this server; `null` before the first. */
    progress(): Promise<MigrationRun | null>
  }
  dataSources: {
    list(): Promise<DataSource[]>
    /** Tested before it is recorded; a Postgres URL is sealed and never answered. */
    add(input: AddDataSourceInput): Promise<DataSource>
    test(id: string): Promise<DataSourceTest>
    update(id: string, change: DataSourceChange): Promise<DataSource>
  }
}

/**
 * The admin API of the server at `baseUrl`, with the session cookie (a console on the same
 * origin, or one listed in `server.cors.origins`).
 *
 * @example
 * const admin = createAdmin({ baseUrl: location.origin })
 * for (const tenant of await admin.tenants.list()) console.log(tenant.slug, tenant.status)
 */
export function createAdmin(options: { baseUrl: string; fetch?: typeof fetch }): AdminClient {
  const base = `${options.baseUrl.replace(/\/+$/, '')}/api/admin`
  // Every POST carries a JSON body, `{}` where it takes no input: the server takes a cookie-borne
  // write only as JSON (a cross-site form cannot send that), so a bodiless POST would be refused.
  const call = <T>(method: string, path: string, body?: unknown) => jsonRequest<T>(`${base}${path}`, { method, body, ...(options.fetch ? { fetch: options.fetch } : {}) })
  const tenant = (slug: string) => `/tenants/${encodeURIComponent(slug)}`
  const source = (id: string) => `/data-sources/${encodeURIComponent(id)}`
  return {
    tenants: {
      list: async () => (await call<{ tenants: AdminTenant[] }>('GET', '/tenants')).tenants,
      get: (slug) => call('GET', tenant(slug)),
      create: (input) => call('POST', '/tenants', input),
      suspend: (slug) => call('POST', `${tenant(slug)}/suspend`, {}),
      resume: (slug) => call('POST', `${tenant(slug)}/resume`, {}),
      delete: (slug, { purge = false } = {}) => call('DELETE', `${tenant(slug)}${purge ? '?purge=true' : ''}`),
      erase: (slug) => call('POST', `${tenant(slug)}/erase`, {}),
      backup: (slug) => call('POST', `${tenant(slug)}/backups`, {}),
      backups: async (slug) => (await call<{ backups: TenantBackup[] }>('GET', `${tenant(slug)}/backups`)).backups,
      restore: (slug, input) => call('POST', `${tenant(slug)}/restore`, input),
      quotas: (slug) => call('GET', `${tenant(slug)}/quotas`),
      setQuotas: (slug, quotas) => call('PUT', `${tenant(slug)}/quotas`, quotas),
      limits: (slug) => call('GET', `${tenant(slug)}/limits`),
      setLimits: (slug, limits) => call('PUT', `${tenant(slug)}/limits`, limits),
      usage: (slug, { days } = {}) => call('GET', `${tenant(slug)}/usage${days !== undefined ? `?days=${days}` : ''}`),
    },
    migrations: {
      status: () => call('GET', '/migrations'),
      run: (runOptions = {}) => call('POST', '/migrations/run', runOptions),
      progress: async () => (await call<{ run: MigrationRun | null }>('GET', '/migrations/run')).run,
    },
    dataSources: {
      list: async () => (await call<{ dataSources: DataSource[] }>('GET', '/data-sources')).dataSources,
      add: (input) => call('POST', '/data-sources', input),
      test: (id) => call('POST', `${source(id)}/test`, {}),
      update: (id, change) => call('PATCH', source(id), change),
    },
  }
}
