import { TenantryError } from '../errors.js'
import { assertValidSlug } from '../identifiers.js'
import type { Catalog, TenantRecord } from '../catalog/catalog.js'
import type { Router } from '../router/router.js'

export interface MaintenanceOptions {
  /** `true`: reads are served, writes refused with `TENANT_MAINTENANCE`; `false` ends maintenance. */
  readOnly: boolean
  /** What refused writes say (to the tenant's users). @default 'This workspace is in maintenance: changes are paused for a moment.' */
  message?: string
  /** Who asked, for the audit log. @default 'system' */
  actor?: string
}

export const DEFAULT_MAINTENANCE_MESSAGE = 'This workspace is in maintenance: changes are paused for a moment.'
const MAX_MESSAGE = 500

/**
 * Maintenance mode (`tenantry tenant maintenance <slug> --read-only|--off`): recorded in the
 * catalog, so every process follows it. This process applies it at once; others when they next
 * resolve the tenant (within the router's placement TTL). Writes through `tenantry.db()` and
 * the data API are refused with `TENANT_MAINTENANCE` and the message (503 over HTTP);
 * SQL-over-HTTP sessions open read-only. Audited.
 */
export async function setMaintenance(catalog: Catalog, router: Router, slug: string, options: MaintenanceOptions): Promise<TenantRecord> {
  assertValidSlug(slug)
  if (typeof options?.readOnly !== 'boolean') throw new TenantryError('INVALID_OPTION', 'maintenance needs { readOnly: true } or { readOnly: false }')
  if (options.message !== undefined && (typeof options.message !== 'string' || options.message.trim() === '' || options.message.length > MAX_MESSAGE)) {
    throw new TenantryError('INVALID_OPTION', `The maintenance message must be text of 1 to ${MAX_MESSAGE} characters`)
  }
  if (!options.readOnly && options.message !== undefined) throw new TenantryError('INVALID_OPTION', 'A message goes with --read-only, not with --off')
  const tenant = await catalog.findTenantBySlug(slug)
  if (!tenant) throw new TenantryError('TENANT_NOT_FOUND', `Tenant "${slug}" not found`)
  const message = options.readOnly ? (options.message?.trim() ?? DEFAULT_MAINTENANCE_MESSAGE) : null
  await catalog.db.updateTable('tenants').set({ maintenance_message: message, updated_at: new Date().toISOString() }).where('id', '=', tenant.id).execute()
  router.invalidate(tenant.id)
  // Resolving again sets this process's write gate from the catalog.
  await router.resolve({ id: tenant.id }).catch(() => undefined)
  await catalog.audit({ tenantId: tenant.id, action: options.readOnly ? 'tenant.maintenance.on' : 'tenant.maintenance.off', actor: options.actor ?? 'system', details: message ? { message } : {} })
  return (await catalog.findTenantById(tenant.id))!
}
