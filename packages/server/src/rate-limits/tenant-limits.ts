import type { Tenantry, TenantLimitOverrides } from 'tenantry'
import type { PlanConfig, ServerConfig, SqlOverHttpConfig } from '../server-config.js'

/**
 * Where a tenant's limit comes from, highest first: the tenant's own settings in the catalog
 * (`tenantry.limits.set`, `tenantry tenant limits`, `PUT /api/admin/tenants/:slug/limits`), the
 * server config by slug (`server.limits.tenants`, `server.sqlOverHttp.tenants`,
 * `server.dataApi.tenants`), else the default (the `default` plan; the SQL-over-HTTP stream
 * limits; the data source's `rawSql` / `bounded` deadlines, shown as `null`).
 */
export type LimitSource = 'tenant' | 'config' | 'default'

export interface EffectiveLimit<T> {
  value: T
  source: LimitSource
}

/** What applies to one tenant, and where each value comes from. */
export interface EffectiveTenantLimits {
  plan: EffectiveLimit<string>
  /** The plan's request counts per `server.limits.window`. */
  rates: PlanConfig & { windowMs: number }
  /** `null`: the data source's own default applies. */
  sqlStatementTimeoutMs: EffectiveLimit<number | null>
  sqlTransactionTimeoutMs: EffectiveLimit<number | null>
  sqlMaxStreams: EffectiveLimit<number>
  sqlMaxStatements: EffectiveLimit<number | null>
  dataApiStatementTimeoutMs: EffectiveLimit<number | null>
}

/** `server.sqlOverHttp.maxStreamsPerTenant`'s default, as the SQL-over-HTTP routes compute it. */
export function defaultMaxStreamsPerTenant(config: ServerConfig): number {
  return config.sqlOverHttp.maxStreamsPerTenant ?? Math.max(1, Math.floor((config.sqlOverHttp.maxStreams ?? 128) / 4))
}

function pick<T>(own: T | undefined, configured: T | undefined, fallback: T): EffectiveLimit<T> {
  if (own !== undefined) return { value: own, source: 'tenant' }
  if (configured !== undefined) return { value: configured, source: 'config' }
  return { value: fallback, source: 'default' }
}

type SqlTenantConfig = SqlOverHttpConfig['tenants'][string]

/** SQL-over-HTTP's per-tenant settings as `server.sqlOverHttp.tenants.<slug>` writes them, with the tenant's own over them. */
export function sqlLimitsOver(configured: SqlTenantConfig | undefined, own: TenantLimitOverrides): SqlTenantConfig {
  const out: SqlTenantConfig = { ...configured }
  if (own.sqlStatementTimeoutMs !== undefined) out.statementTimeoutMs = own.sqlStatementTimeoutMs
  if (own.sqlTransactionTimeoutMs !== undefined) out.transactionTimeoutMs = own.sqlTransactionTimeoutMs
  if (own.sqlMaxStreams !== undefined) out.maxStreams = own.sqlMaxStreams
  if (own.sqlMaxStatements !== undefined) out.maxStatements = own.sqlMaxStatements
  return out
}

/** The tenant's own limits over the config's by slug over the defaults (see `LimitSource`). */
export function effectiveLimits(config: ServerConfig, slug: string, own: TenantLimitOverrides): EffectiveTenantLimits {
  const sql = config.sqlOverHttp.tenants[slug]
  // The stored plan was checked against `server.limits.plans` when set (and is dropped when the plan no longer exists).
  const plan = pick<string>(own.plan !== undefined && config.limits.plans[own.plan] ? own.plan : undefined, config.limits.tenants[slug], 'default')
  return {
    plan,
    rates: { ...config.limits.plans[plan.value]!, windowMs: config.limits.window },
    sqlStatementTimeoutMs: pick<number | null>(own.sqlStatementTimeoutMs, sql?.statementTimeoutMs, null),
    sqlTransactionTimeoutMs: pick<number | null>(own.sqlTransactionTimeoutMs, sql?.transactionTimeoutMs, null),
    sqlMaxStreams: pick<number>(own.sqlMaxStreams, sql?.maxStreams, defaultMaxStreamsPerTenant(config)),
    sqlMaxStatements: pick<number | null>(own.sqlMaxStatements, sql?.maxStatements, null),
    dataApiStatementTimeoutMs: pick<number | null>(own.dataApiStatementTimeoutMs, config.dataApi.tenants[slug]?.statementTimeoutMs, null),
  }
}

/** What `limitsOf` computed, by config and by the tenant's own limits (the object `tenantry.limits.of` caches). */
const computed = new WeakMap<ServerConfig, WeakMap<TenantLimitOverrides, { slug: string; limits: EffectiveTenantLimits }>>()

/**
 * The limits that apply to a tenant now: its own (cached a few seconds by `tenantry.limits.of`)
 * over the config's. Asked several times per request (rates, deadlines): computed once for as
 * long as the tenant's own limits stay cached, and again for a new slug.
 */
export async function limitsOf(tenantry: Tenantry, config: ServerConfig, tenant: { id: string; slug: string }): Promise<EffectiveTenantLimits> {
  const own = await tenantry.limits.of(tenant.id)
  let byOwn = computed.get(config)
  if (!byOwn) computed.set(config, (byOwn = new WeakMap()))
  const known = byOwn.get(own)
  if (known?.slug === tenant.slug) return known.limits
  const limits = effectiveLimits(config, tenant.slug, own)
  byOwn.set(own, { slug: tenant.slug, limits })
  return limits
}
