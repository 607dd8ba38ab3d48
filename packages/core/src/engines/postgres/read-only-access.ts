import { TenantryError } from '../../errors.js'
import { quoteIdentifier } from '../../identifiers.js'
import type { EnginePlacement, Isolation, ReadOnlyAccess, ReadOnlyCredentials } from '../engine.js'
import type { PostgresContext, PostgresIsolationKind, PostgresTenant } from './isolation-kind.js'
import { readOnlyRoleName } from './postgres-names.js'
import { READ_ONLY_ROLE_ATTRIBUTES, roleLock, upsertLoginRole } from './postgres-privileges.js'

export interface PostgresReadOnlyAccessOptions {
  context: PostgresContext
  /** The engine's check of a placement: the kind of its isolation and the tenant. */
  resolve(placement: EnginePlacement): { kind: PostgresIsolationKind; tenant: PostgresTenant }
  /** The offered isolations whose kind can confine a read-only role. */
  isolations: readonly Isolation[]
  /** A stable secret for a purpose (the role's password), so that granting again returns the same URL. */
  deriveSecret(purpose: string): string
}

/**
 * Seed 003's limited user: a login role per tenant with `SELECT` on the tenant's tables (now
 * and after later migrations) and nothing else: no write, no DDL, no other schema or database.
 * Its URL works with `psql` or a BI tool. Each isolation kind grants what its boundary needs;
 * row isolation offers none yet: its policies key on each tenant's app role, and a read-only
 * role would need policies of its own.
 */
export function postgresReadOnlyAccess(options: PostgresReadOnlyAccessOptions): ReadOnlyAccess {
  const { context, resolve, isolations } = options
  const { connection } = context

  function readOnlyKind(placement: EnginePlacement) {
    const { kind, tenant } = resolve(placement)
    if (!kind.readOnly) {
      throw new TenantryError(
        'UNSUPPORTED_PLACEMENT',
        `Read-only access is offered for ${isolations.join(' and ') || 'no'} isolation on this data source, not ${kind.isolation}: its policies key on the tenant's app role alone`,
      )
    }
    return { grants: kind.readOnly, tenant }
  }

  return {
    isolations,

    async grant(placement: EnginePlacement): Promise<ReadOnlyCredentials> {
      const { grants, tenant } = readOnlyKind(placement)
      const role = readOnlyRoleName(tenant.id)
      const password = options.deriveSecret(`postgres-readonly:${tenant.id}`)
      // The role is committed before the kind grants on it: a grant inside another database only sees committed roles.
      await connection.transaction(async (client) => {
        await upsertLoginRole(client, role, READ_ONLY_ROLE_ATTRIBUTES, password)
        // Seatbelt, not the boundary (the user can unset it): the boundary is having SELECT only.
        await client.query(`ALTER ROLE ${quoteIdentifier(role)} SET default_transaction_read_only = on`)
      }, roleLock(role))
      const database = await grants.grant(tenant, role)
      return { role, url: connection.url({ login: { name: role, password }, ...(database ? { database } : {}) }) }
    },

    async revoke(placement: EnginePlacement): Promise<void> {
      const { kind, tenant } = resolve(placement)
      const role = readOnlyRoleName(tenant.id)
      if ((await connection.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [role])).length === 0) return
      await kind.readOnly?.revoke(tenant, role)
      await connection.admin.query(`DROP ROLE ${quoteIdentifier(role)}`)
    },
  }
}
