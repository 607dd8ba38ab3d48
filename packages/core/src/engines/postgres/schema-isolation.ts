import { quoteIdentifier } from '../../identifiers.js'
import type { EngineRole } from '../engine.js'
import type { PostgresContext, PostgresIsolationKind, PostgresTenant } from './isolation-kind.js'
import { openPostgresHandle } from './postgres-handle.js'
import { grantAppRoleOnSchema, grantReadOnSchema, roleLock } from './postgres-privileges.js'

/** Schema isolation: a schema `t_<id>` per tenant in the data source's database, on its shared pools. */
export function schemaIsolation(context: PostgresContext): PostgresIsolationKind {
  const { connection, appRole, logger } = context
  return {
    isolation: 'schema',

    async create(tenant: PostgresTenant) {
      await connection.transaction(async (client) => {
        await client.query(`CREATE SCHEMA ${quoteIdentifier(tenant.name)}`)
        await grantAppRoleOnSchema(client, tenant.name, appRole)
      })
    },

    async exists(tenant: PostgresTenant) {
      return (await connection.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [tenant.name])).length > 0
    },

    open(tenant: PostgresTenant, role: EngineRole) {
      const pool = role === 'admin' ? connection.admin : connection.app
      return openPostgresHandle({ pool, ownsPool: false, schema: tenant.name, logger })
    },

    async drop(tenant: PostgresTenant) {
      await connection.admin.query(`DROP SCHEMA IF EXISTS ${quoteIdentifier(tenant.name)} CASCADE`)
    },

    readOnly: {
      async grant(tenant: PostgresTenant, role: string) {
        await connection.transaction(async (client) => {
          await client.query(`ALTER ROLE ${quoteIdentifier(role)} SET search_path = ${quoteIdentifier(tenant.name)}`)
          await grantReadOnSchema(client, tenant.name, role)
        }, roleLock(role))
        return undefined
      },
      async revoke(_tenant: PostgresTenant, role: string) {
        await connection.admin.query(`DROP OWNED BY ${quoteIdentifier(role)}`)
      },
    },
  }
}
