import { quoteIdentifier } from '../../identifiers.js'
import type { EngineRole } from '../engine.js'
import type { PostgresContext, PostgresIsolationKind, PostgresTenant } from './isolation-kind.js'
import { openPostgresHandle } from './postgres-handle.js'
import { tenantRoleRepair } from './tenant-role-repair.js'
import { grantSharedReads } from './shared-tables.js'
import { adoptSchema, releaseSchema } from './schema-adoption.js'
import {
  dropLoginRole,
  grantAppAccessOnMigratedSchema,
  grantAppAccessOnSchema,
  grantReadOnSchema,
  revokeAppRoleFromSchema,
  roleLock,
  syncAppPrivilegesAfterMigration,
  upsertTenantRole,
} from './postgres-privileges.js'

/**
 * Schema isolation: a schema `t_<id>` per tenant in the data source's database. App code
 * connects as the tenant's own role (`t_<id>_app`), which has USAGE on that schema alone, so
 * raw SQL naming another tenant's schema is refused by Postgres itself. That costs a small
 * pool per open tenant handle (bounded by the router's LRU); the admin keeps one shared pool.
 */
export function schemaIsolation(context: PostgresContext): PostgresIsolationKind {
  const { connection, logger } = context
  // Tenants created before they had roles of their own get one when first opened.
  const tenantRoles = tenantRoleRepair(context, (tenant) => kind.exists(tenant), async (client, tenant, role) => {
    await grantAppAccessOnMigratedSchema(client, tenant.name, role, context.appPrivileges)
    await revokeAppRoleFromSchema(client, tenant.name, context.appRole)
    await grantSharedReads(client, context, role)
  })
  const kind: PostgresIsolationKind = {
    isolation: 'schema',
    adoption: {
      adopt: (tenant, existing) => adoptSchema(context, tenant, existing),
      release: (tenant, existing, created) => releaseSchema(context, tenant, existing, created),
    },

    async create(tenant: PostgresTenant) {
      const login = context.tenantLogin(tenant)
      // The role is committed before the schema grants name it; a retried create finds both in step.
      await connection.transaction((client) => upsertTenantRole(client, context.dataSourceId, login), roleLock(login.name))
      await connection.transaction(async (client) => {
        await client.query(`CREATE SCHEMA ${quoteIdentifier(tenant.name)}`)
        await grantAppAccessOnSchema(client, tenant.name, login.name, context.appPrivileges)
        // The shared tables the app declared readable (`migrations.shared.readable`).
        await grantSharedReads(client, context, login.name)
      })
    },

    async exists(tenant: PostgresTenant) {
      return (await connection.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [tenant.name])).length > 0
    },

    open(tenant: PostgresTenant, role: EngineRole) {
      if (role === 'admin') {
        return openPostgresHandle({
          pool: connection.admin,
          ownsPool: false,
          schema: tenant.name,
          afterEachMigration: (db) => syncAppPrivilegesAfterMigration(db, tenant.name, context.tenantLogin(tenant).name, context.appPrivileges),
          logger,
        })
      }
      const pool = connection.pool(undefined, context.tenantLogin(tenant), context.tenantPoolSize)
      return openPostgresHandle({ pool: async () => (await tenantRoles.ensure(tenant), pool), ownsPool: true, schema: tenant.name, gate: tenant.id, preparedStatements: context.preparedStatements, logger })
    },

    async drop(tenant: PostgresTenant) {
      await connection.admin.query(`DROP SCHEMA IF EXISTS ${quoteIdentifier(tenant.name)} CASCADE`)
      const role = context.tenantLogin(tenant).name
      await connection.transaction((client) => dropLoginRole(client, role), roleLock(role))
    },

    readOnly: {
      async grant(tenant: PostgresTenant, role: string) {
        await connection.transaction(async (client) => {
          await client.query(`ALTER ROLE ${quoteIdentifier(role)} SET search_path = ${quoteIdentifier(tenant.name)}`)
          await grantReadOnSchema(client, tenant.name, role)
          await grantSharedReads(client, context, role)
        }, roleLock(role))
        return undefined
      },
      async revoke(_tenant: PostgresTenant, role: string) {
        await connection.admin.query(`DROP OWNED BY ${quoteIdentifier(role)}`)
      },
    },
  }
  return kind
}
