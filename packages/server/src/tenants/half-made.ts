import { randomBytes } from 'node:crypto'
import { DEFAULT_REPAIR_GRACE_MS, repairHalfMade, type DoctorCheck, type HalfMadeOptions, type RepairAction, type Tenantry } from 'tenantry'
import { createTenantryAuth } from '../auth/better-auth.js'
import { Organizations } from './organizations.js'

/**
 * Half-made state across the catalog and Better Auth's organization tables, for
 * `tenantry doctor [--fix]` and the server's start: the core's checks and repairs of tenants
 * and staging files (`checkHalfMade`, `repairHalfMade`), then the organizations'
 * (`Organizations.halfMade`). Tenants first: an organization whose tenant create is rolled back
 * is then one with no tenant, and is removed in the same run.
 */

/** Runs `fn` with the organizations of a process that serves no HTTP (the CLI); `undefined` when the catalog has no organization tables yet. */
async function withOrganizations<T>(tenantry: Tenantry, fn: (organizations: Organizations) => Promise<T>): Promise<T | undefined> {
  const tables = await tenantry.catalog.db.introspection.getTables()
  // Better Auth's tables are in the catalog's default schema (a tenant's schema may hold a table of that name too).
  if (!tables.some((t) => t.name === 'organization' && (!t.schema || t.schema === 'public'))) return undefined
  // Only Better Auth's adapters are used here: nothing is signed, so the secret is a throwaway
  // (and no auth-secret file is created by a doctor run).
  const auth = createTenantryAuth({
    tenantry,
    baseURL: 'http://127.0.0.1',
    env: { ...process.env, BETTER_AUTH_SECRET: randomBytes(32).toString('base64url') },
    signInLimit: false,
    log: () => {},
  })
  return fn(new Organizations(auth, tenantry))
}

/** `tenantry doctor`'s checks of interrupted lifecycle operations, organizations included. Read-only. */
export async function checkOrganizationsHalfMade(tenantry: Tenantry, options: HalfMadeOptions = {}): Promise<DoctorCheck[]> {
  const found = await withOrganizations(tenantry, (organizations) => organizations.halfMade(options.graceMs ?? DEFAULT_REPAIR_GRACE_MS))
  if (found === undefined) return []
  const broken = found.filter((org) => org.repair !== 'wait')
  const waiting = found.filter((org) => org.repair === 'wait')
  const waits = waiting.length ? `; waiting on their tenant's create or delete: ${waiting.map((org) => org.slug).join(', ')}` : ''
  return [
    {
      name: 'organizations: without a tenant',
      status: broken.length ? 'fail' : 'ok',
      detail: broken.length
        ? `${broken.map((org) => `${org.slug} (${org.problem})`).join(', ')}; tenantry doctor --fix (or a server start) links or removes them${waits}`
        : `none${waits}`,
    },
  ]
}

/**
 * Repairs half-made tenants, staging files and organizations (see `repairHalfMade` and
 * `Organizations.halfMade`). `organizations`: the server's own, else one is built for the call.
 */
export async function repairAllHalfMade(tenantry: Tenantry, options: HalfMadeOptions & { organizations?: Organizations } = {}): Promise<RepairAction[]> {
  const graceMs = options.graceMs ?? DEFAULT_REPAIR_GRACE_MS
  const actions = await repairHalfMade(tenantry, options)
  const orgs = options.organizations
    ? await options.organizations.repairHalfMade(graceMs)
    : await withOrganizations(tenantry, (organizations) => organizations.repairHalfMade(graceMs))
  return [...actions, ...(orgs ?? [])]
}

