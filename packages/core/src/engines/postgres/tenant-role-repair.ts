import type pg from 'pg'
import type { PostgresContext, PostgresTenant } from './isolation-kind.js'
import { roleLock, upsertTenantRole } from './postgres-privileges.js'

/** Grants a just-made tenant role what its isolation kind gives it, on storage that already holds the tenant's tables. */
export type GrantTenantRole = (client: pg.ClientBase, tenant: PostgresTenant, role: string) => Promise<void>

/**
 * Makes sure a tenant's own role exists before its app handle first connects. Tenants created
 * before tenant roles existed (when every tenant of a data source shared the app role) get
 * theirs here, with `grant`, if their storage `exists`; a role that exists is left alone. Checked once per tenant per
 * process: a role is only dropped with its tenant.
 */
export function tenantRoleRepair(
  context: PostgresContext,
  exists: (tenant: PostgresTenant) => Promise<boolean>,
  grant: GrantTenantRole,
  /** The role's attributes, when not `TENANT_ROLE_ATTRIBUTES` (row tenants' roles inherit from the row group role). */
  attributes?: string,
): { ensure(tenant: PostgresTenant): Promise<void> } {
  const ready = new Set<string>()
  return {
    async ensure(tenant: PostgresTenant) {
      if (ready.has(tenant.id)) return
      const login = context.tenantLogin(tenant)
      const found = await context.connection.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [login.name])
      // No storage, nothing to grant on (a dropped tenant): the connection then fails as it should.
      if (found.length === 0 && (await exists(tenant))) {
        context.logger.info({ tenantId: tenant.id, role: login.name }, 'Creating the login role of a tenant made before tenants had their own')
        // The role is committed before the grants name it: a grant inside a tenant database sees committed roles only.
        await context.connection.transaction((client) => upsertTenantRole(client, context.dataSourceId, login, attributes), roleLock(login.name))
        await context.connection.transaction((client) => grant(client, tenant, login.name), roleLock(login.name))
      }
      ready.add(tenant.id)
    },
  }
}
