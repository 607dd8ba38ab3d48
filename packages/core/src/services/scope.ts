import { currentTenant, type TenantRef } from '../context.js'
import { NoTenantError } from '../errors.js'

/**
 * The one place tenant-scoped services (issue 12: cache, secrets, state; files and jobs plug in
 * the same way) learn whose data they touch: the tenant in context, set by `withTenant`.
 * Outside `withTenant` every service throws `NoTenantError` (`NO_TENANT`), so forgetting the
 * scope fails closed instead of reaching a global namespace.
 *
 * Services name what they store after the tenant's **id**, never its slug: a slug can be
 * renamed, and a purged tenant's slug is freed for a new tenant, which must not inherit the old
 * one's cache entries, secrets or files. The id is opaque, never reused, and of a fixed shape
 * (`t` + 19 base-32 characters, no separator characters), so a name built as
 * `<service prefix><id><separator><anything>` can never reach into another tenant's names.
 */

/** The tenant a service call runs for, or `NoTenantError` naming the service. */
export function scopeTenant(service: string): TenantRef {
  const tenant = currentTenant()
  if (!tenant) throw new NoTenantError(`No tenant in context: tenantry.${service} is only usable inside withTenant()`)
  return tenant
}

/** What a purge of one tenant removed from one service, for the audit log (counts and facts, never values). */
export type PurgeReport = Record<string, unknown>

/**
 * A tenant-scoped service as the lifecycle sees it: what to remove when a tenant is purged
 * (called after the tenant's database is dropped; it must be idempotent, as a purge cut short is
 * asked for again), and what to release when Tenantry closes.
 */
export interface TenantService {
  /** Short and stable: `cache`, `secrets`, `state`; the key of its part of the audit entry. */
  readonly name: string
  /** Removes everything the service holds for `tenantId`; returns what it removed. */
  purgeTenant(tenantId: string): Promise<PurgeReport>
  /** Releases connections and timers. */
  close(): Promise<void>
}

/**
 * The services of one Tenantry instance. A purge runs every service's `purgeTenant` in turn
 * (the first failure stops it, so the purge fails and is retried whole); `close` closes them all.
 */
export class TenantServices {
  readonly #services: TenantService[] = []

  register<S extends TenantService>(service: S): S {
    if (this.#services.some((s) => s.name === service.name)) throw new Error(`A tenant service named ${service.name} is registered already`)
    this.#services.push(service)
    return service
  }

  get names(): string[] {
    return this.#services.map((s) => s.name)
  }

  async purgeTenant(tenantId: string): Promise<Record<string, PurgeReport>> {
    const report: Record<string, PurgeReport> = {}
    for (const service of this.#services) report[service.name] = await service.purgeTenant(tenantId)
    return report
  }

  async close(): Promise<void> {
    const results = await Promise.allSettled(this.#services.map((s) => s.close()))
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected')
    if (failed) throw failed.reason
  }
}
