import { z } from 'zod'
import type { Catalog, TenantRecord } from '../catalog/catalog.js'
import { TenantryError } from '../errors.js'

/**
 * A tenant's own limits, over the server config's per-slug ones (`server.limits.tenants`,
 * `server.sqlOverHttp.tenants`, `server.dataApi.tenants`), which are over the defaults. An
 * absent field follows the config. Kept in the catalog's `tenant_settings` (`limits`), next to
 * the tenant's quotas, so that they change at run time without a restart.
 */
export interface TenantLimitOverrides {
  /** The rate-limit plan (a name in `server.limits.plans`). */
  plan?: string
  /** SQL-over-HTTP: deadline of one statement, in milliseconds. */
  sqlStatementTimeoutMs?: number
  /** SQL-over-HTTP: deadline of a transaction from its `BEGIN`, in milliseconds. */
  sqlTransactionTimeoutMs?: number
  /** SQL-over-HTTP: open streams at most for this tenant. */
  sqlMaxStreams?: number
  /** SQL-over-HTTP: statements this tenant may run at once. */
  sqlMaxStatements?: number
  /** Data API: deadline of one statement, in milliseconds. */
  dataApiStatementTimeoutMs?: number
}

export type TenantLimitName = keyof TenantLimitOverrides
export const TENANT_LIMIT_NAMES: readonly TenantLimitName[] = [
  'plan',
  'sqlStatementTimeoutMs',
  'sqlTransactionTimeoutMs',
  'sqlMaxStreams',
  'sqlMaxStatements',
  'dataApiStatementTimeoutMs',
]

/**
 * Changes to a tenant's limits: a value, or `null` (follow the config again). A number may also
 * be `'default'`, as with quotas; a plan named `default` is the plan of that name.
 */
export type TenantLimitChanges = { plan?: string | null } & { [K in Exclude<TenantLimitName, 'plan'>]?: number | null | 'default' }

/** A tenant's own limits as stored. */
export interface TenantLimitsView {
  tenantId: string
  slug: string
  overrides: TenantLimitOverrides
}

export interface SetTenantLimitsOptions {
  /** Who asked, for the audit log. @default 'system' */
  actor?: string
  /** Limits absent from `changes` follow the config again (a PUT), instead of staying as they are. @default false */
  replace?: boolean
}

/** Longest deadline a tenant may be given: an hour. */
const MAX_TIMEOUT_MS = 3_600_000
const positive = z.number().int().positive()
const overridesSchema = z.strictObject({
  plan: z.string().optional(),
  sqlStatementTimeoutMs: positive.max(MAX_TIMEOUT_MS).optional(),
  sqlTransactionTimeoutMs: positive.max(MAX_TIMEOUT_MS).optional(),
  sqlMaxStreams: positive.max(10_000).optional(),
  sqlMaxStatements: positive.max(10_000).optional(),
  dataApiStatementTimeoutMs: positive.max(MAX_TIMEOUT_MS).optional(),
})

/** How long a tenant's limits are trusted in memory: a change made by another process applies within this. */
const CACHE_MS = 5_000

/**
 * The plans the config's `server.limits.plans` names, and `default`, which always exists. The
 * server section is opaque to this package; only the names are read, so that an unknown plan
 * is refused where it is set, not found out by the server later.
 */
export function planNamesOf(server: Record<string, unknown> | undefined): string[] {
  const limits = server?.limits
  const plans = limits && typeof limits === 'object' ? (limits as Record<string, unknown>).plans : undefined
  const named = plans && typeof plans === 'object' ? Object.keys(plans) : []
  return ['default', ...named.filter((name) => name !== 'default')]
}

/**
 * Per-tenant limits (rate-limit plan, SQL-over-HTTP and data API deadlines and concurrency):
 * read, changed (audited), and looked up by the server on each request (cached for a few
 * seconds). A change made here applies at once in this process (`onChange` drops cached
 * handles); other processes hear of it on the catalog's change feed (`forget`), as with quotas.
 */
export class TenantLimits {
  /** The rate-limit plans a tenant may be put on. */
  readonly plans: readonly string[]
  readonly #catalog: Catalog
  readonly #onChange: (tenantId: string) => void
  readonly #cache = new Map<string, { overrides: TenantLimitOverrides; expiresAt: number }>()

  constructor(catalog: Catalog, plans: readonly string[], onChange: (tenantId: string) => void = () => {}) {
    this.#catalog = catalog
    this.plans = Object.freeze([...plans])
    this.#onChange = onChange
  }

  /** The own limits of the live tenant `slug`. Throws `TENANT_NOT_FOUND`. */
  async get(slug: string): Promise<TenantLimitsView> {
    const tenant = await this.#tenant(slug)
    return { tenantId: tenant.id, slug: tenant.slug, overrides: await this.#read(tenant.id) }
  }

  /**
   * Changes the limits of the live tenant `slug`, e.g. `set('acme', { plan: 'pro', sqlStatementTimeoutMs: null })`
   * (`null`: follow the config again).
   * Throws `TENANT_NOT_FOUND`, or `INVALID_OPTION` naming a bad value or an unknown plan.
   */
  async set(slug: string, changes: TenantLimitChanges, options: SetTenantLimitsOptions = {}): Promise<TenantLimitsView> {
    const tenant = await this.#tenant(slug)
    for (const [name, value] of Object.entries(changes ?? {})) {
      if (!TENANT_LIMIT_NAMES.includes(name as TenantLimitName)) {
        throw new TenantryError('INVALID_OPTION', `Unknown limit ${JSON.stringify(name)}: use ${TENANT_LIMIT_NAMES.join(', ')}`)
      }
      if (value === null || value === undefined) continue
      if (name === 'plan') {
        if (typeof value !== 'string' || !this.plans.includes(value)) {
          throw new TenantryError('INVALID_OPTION', `Unknown plan ${JSON.stringify(value)}: use ${this.plans.join(', ')} (server.limits.plans)`)
        }
      } else if (value !== 'default' && !(Number.isSafeInteger(value) && (value as number) > 0 && (value as number) <= (name.endsWith('Ms') ? MAX_TIMEOUT_MS : 10_000))) {
        const most = name.endsWith('Ms') ? `${MAX_TIMEOUT_MS} (an hour)` : '10000'
        throw new TenantryError('INVALID_OPTION', `Limit ${name} must be a whole number from 1 to ${most}, or null (follow the config), not ${JSON.stringify(value)}`)
      }
    }
    const settings = (await this.#catalog.tenantSettings(tenant.id)) ?? {}
    const overrides: Record<string, unknown> = options.replace ? {} : { ...parseOverrides(settings.limits) }
    for (const name of TENANT_LIMIT_NAMES) {
      const value = changes[name]
      if (value === undefined) continue
      if (value === null || (value === 'default' && name !== 'plan')) delete overrides[name]
      else overrides[name] = value
    }
    await this.#catalog.setTenantSettings(tenant.id, { ...settings, limits: overrides }, options.actor)
    await this.#catalog.audit({ tenantId: tenant.id, action: 'limits.set', actor: options.actor ?? 'system', details: { limits: overrides } })
    this.#cache.delete(tenant.id)
    this.#onChange(tenant.id)
    return { tenantId: tenant.id, slug: tenant.slug, overrides: overrides as TenantLimitOverrides }
  }

  /** Drops the tenant's cached limits (every tenant's without an id): the catalog changed elsewhere. */
  forget(tenantId?: string): void {
    if (tenantId === undefined) this.#cache.clear()
    else this.#cache.delete(tenantId)
  }

  /** The own limits of the tenant with this id (cached for a few seconds): what the server looks up per request. */
  async of(tenantId: string): Promise<TenantLimitOverrides> {
    const cached = this.#cache.get(tenantId)
    if (cached && cached.expiresAt > Date.now()) return cached.overrides
    const overrides = await this.#read(tenantId)
    this.#cache.set(tenantId, { overrides, expiresAt: Date.now() + CACHE_MS })
    return overrides
  }

  async #read(tenantId: string): Promise<TenantLimitOverrides> {
    const overrides = parseOverrides((await this.#catalog.tenantSettings(tenantId))?.limits)
    // A plan since removed from the config counts as none: the tenant falls back to the config's.
    if (overrides.plan !== undefined && !this.plans.includes(overrides.plan)) delete overrides.plan
    return overrides
  }

  async #tenant(slug: string): Promise<TenantRecord> {
    const tenant = typeof slug === 'string' ? await this.#catalog.findTenantBySlug(slug) : undefined
    if (!tenant || tenant.status === 'deleted' || tenant.status === 'deleting') {
      throw new TenantryError('TENANT_NOT_FOUND', `Tenant "${String(slug)}" not found`)
    }
    return tenant
  }
}

/** The stored overrides; a document that does not parse (written by a newer version?) counts as none. */
function parseOverrides(value: unknown): TenantLimitOverrides {
  const parsed = overridesSchema.safeParse(value ?? {})
  if (!parsed.success) return {}
  const out: Record<string, unknown> = {}
  for (const name of TENANT_LIMIT_NAMES) if (parsed.data[name] !== undefined) out[name] = parsed.data[name]
  return out as TenantLimitOverrides
}
