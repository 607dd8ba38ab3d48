import type { TenantRecord } from '../catalog/catalog.js'
import type { TenantStatus } from '../catalog/catalog-schema.js'
import type { DoctorTenant } from '../engines/engine.js'
import { isTenantryError } from '../errors.js'
import { createLockName } from '../provisioning/provisioner.js'
import type { Tenantry } from '../tenantry.js'
import type { DoctorCheck } from './doctor.js'

/**
 * Half-made state: what a process killed in the middle of a lifecycle operation leaves (a
 * tenant stuck in `provisioning` or `deleting`, a staging file), found by `tenantry doctor`
 * and repaired by `tenantry doctor --fix` and at server start.
 *
 * The rule for a create cut short is always the same: roll it back. Nothing of a tenant in
 * `provisioning` has ever served traffic, so dropping its storage and purging its record loses
 * nothing, and frees its slug for a new create. (Finishing it would need to know which steps
 * completed; a new create does that work anyway.) A delete cut short is finished, as asking
 * for it again would.
 *
 * An operation that is still running elsewhere is never touched: a create holds its slug's
 * lock (`tenant-create:<slug>`, refreshed every 15 s) for its whole run, and a tenant counts
 * as stuck only when that lock is free or its holder is dead, and its record has not changed
 * for `graceMs`. A delete holds no lock: the grace period alone protects it, and repeating
 * a delete's steps is harmless (dropping storage that is gone is a no-op).
 */

/** How long a tenant must sit in `provisioning`/`deleting`, untouched, before it counts as stuck. */
export const DEFAULT_REPAIR_GRACE_MS = 5 * 60_000

export interface HalfMadeOptions {
  /** @default DEFAULT_REPAIR_GRACE_MS */
  graceMs?: number
  /** Recorded as the actor of the repairs in the audit log. @default 'system:repair' */
  actor?: string
}

/** One thing `repairHalfMade` did. */
export interface RepairAction {
  /** e.g. `tenant acme`, `file /…/tenants/t_….db.creating` */
  target: string
  /** What was done, in a few words. */
  action: string
}

const HALF_MADE: readonly TenantStatus[] = ['provisioning', 'deleting']

/** Tenants whose create or delete was cut short (see the module comment), and those still within their grace period. */
export async function findStuckTenants(tenantry: Tenantry, options: HalfMadeOptions = {}): Promise<{ stuck: TenantRecord[]; running: TenantRecord[] }> {
  const graceMs = options.graceMs ?? DEFAULT_REPAIR_GRACE_MS
  const stuck: TenantRecord[] = []
  const running: TenantRecord[] = []
  for (const tenant of await tenantry.catalog.listTenants({ status: [...HALF_MADE] })) {
    const quiet = Date.now() - Date.parse(tenant.updatedAt) >= graceMs
    const locked = tenant.status === 'provisioning' && (await tenantry.catalog.liveLock(createLockName(tenant.slug))) !== undefined
    ;(quiet && !locked ? stuck : running).push(tenant)
  }
  return { stuck, running }
}

/** `tenantry doctor`'s check of lifecycle operations cut short. Read-only. */
export async function checkHalfMade(tenantry: Tenantry, options: HalfMadeOptions = {}): Promise<DoctorCheck[]> {
  const { stuck, running } = await findStuckTenants(tenantry, options)
  const list = (tenants: TenantRecord[]) => tenants.map((t) => `${t.slug} (${t.status} since ${t.updatedAt})`).join(', ')
  return [
    {
      name: 'lifecycle: interrupted operations',
      status: stuck.length ? 'fail' : 'ok',
      detail: stuck.length
        ? `cut short, nothing running: ${list(stuck)}; tenantry doctor --fix (or a server start) rolls creates back and finishes deletes`
        : running.length
          ? `none stuck; running: ${list(running)}`
          : 'none',
    },
  ]
}

/**
 * Repairs what `checkHalfMade` and the engines' staging checks find: rolls back creates cut
 * short (storage dropped, tenant purged, slug free), finishes deletes cut short, and removes
 * leftover staging files. Returns what it did; safe to run at any time, from any process.
 */
export async function repairHalfMade(tenantry: Tenantry, options: HalfMadeOptions = {}): Promise<RepairAction[]> {
  const actor = options.actor ?? 'system:repair'
  const actions: RepairAction[] = []
  const { stuck } = await findStuckTenants(tenantry, options)
  for (const tenant of stuck) {
    if (tenant.status === 'deleting') {
      await tenantry.tenants.delete(tenant.slug, { purge: tenant.operation === 'purge', actor })
      actions.push({ target: `tenant ${tenant.slug}`, action: tenant.operation === 'purge' ? 'finished its purge' : 'finished its delete' })
      continue
    }
    // Holding the create's lock, no create of this slug can start or still be running.
    const lock = await tenantry.catalog.acquireLock(createLockName(tenant.slug)).catch((error: unknown) => {
      if (isTenantryError(error, 'MIGRATION_LOCKED')) return undefined // a create started since: it is no longer stuck
      throw error
    })
    if (!lock) continue
    try {
      const now = await tenantry.catalog.findTenantById(tenant.id)
      if (now?.status !== 'provisioning' || now.updatedAt !== tenant.updatedAt) continue
      // A Postgres adopt cut short: its schema goes back to its old name, not into the purge.
      if (await tenantry.tenants.releaseInterruptedAdopt(now)) actions.push({ target: `tenant ${tenant.slug}`, action: 'moved its adopted schema back' })
      await tenantry.tenants.delete(tenant.slug, { purge: true, actor })
      actions.push({ target: `tenant ${tenant.slug}`, action: 'rolled back its create: storage dropped, slug free' })
    } finally {
      await lock.release()
    }
  }

  const tenants = await tenantry.catalog.listTenants({ includePurged: true })
  const creating = new Set(tenants.filter((t) => t.status === 'provisioning').map((t) => t.id))
  for (const source of await tenantry.catalog.listDataSources()) {
    const engine = await tenantry.dataSources.engine(source.id)
    if (!engine.removeLeftovers) continue
    const own = doctorTenants(tenants.filter((t) => t.placement.dataSourceId === source.id))
    for (const removed of await engine.removeLeftovers({ tenants: own, creating })) {
      actions.push({ target: `file ${removed}`, action: 'removed: staging file of an interrupted create' })
    }
  }
  for (const action of actions) tenantry.logger.info({ ...action }, 'Repaired half-made state')
  return actions
}

/** Tenants whose storage must exist: serving, paused, or deleted with their data kept. */
const STORED_STATUSES: readonly TenantStatus[] = ['ready', 'suspended', 'moving', 'deleted']

/** The catalog's tenants as an engine's doctor sees them. */
export function doctorTenants(tenants: readonly TenantRecord[]): DoctorTenant[] {
  return tenants.map((t) => ({
    id: t.id,
    slug: t.slug,
    placement: { tenantId: t.id, isolation: t.placement.isolation, locator: t.placement.locator },
    stored: !t.purgedAt && STORED_STATUSES.includes(t.status),
    purged: !!t.purgedAt,
  }))
}
