import { quoteIdentifier } from '../../identifiers.js'
import type { EngineHandle, EngineRole } from '../engine.js'
import type { PostgresContext, PostgresIsolationKind, PostgresTemplate, PostgresTenant } from './isolation-kind.js'
import { openPostgresHandle } from './postgres-handle.js'
import { templateDatabaseName } from './postgres-names.js'
import { grantAppRoleOnSchema, grantReadOnSchema, roleLock } from './postgres-privileges.js'

/**
 * Database isolation: a database `t_<id>` per tenant on the data source's server, created
 * from a pre-migrated template database, each tenant with a small pool of its own.
 */
export function databaseIsolation(context: PostgresContext): PostgresIsolationKind {
  const { connection, appRole, logger } = context
  const app = quoteIdentifier(appRole)

  /** An empty database only the admin and the app role may connect to. */
  async function createDatabase(name: string, template?: string): Promise<void> {
    const database = quoteIdentifier(name)
    await connection.admin.query(`CREATE DATABASE ${database}${template ? ` TEMPLATE ${quoteIdentifier(template)}` : ''}`)
    await connection.admin.query(`REVOKE CONNECT ON DATABASE ${database} FROM PUBLIC`)
    await connection.admin.query(`GRANT CONNECT ON DATABASE ${database} TO ${app}`)
  }

  async function dropDatabase(name: string): Promise<void> {
    // A template database cannot be dropped until it is an ordinary one again.
    const [row] = await connection.query<{ datistemplate: boolean }>('SELECT datistemplate FROM pg_database WHERE datname = $1', [name])
    if (row?.datistemplate) await connection.admin.query(`ALTER DATABASE ${quoteIdentifier(name)} WITH IS_TEMPLATE false`)
    await connection.admin.query(`DROP DATABASE IF EXISTS ${quoteIdentifier(name)} WITH (FORCE)`)
  }

  function openDatabase(name: string, role: EngineRole, max: number): EngineHandle {
    return openPostgresHandle({ pool: connection.pool(name, role, max), ownsPool: true, logger })
  }

  async function exists(name: string): Promise<boolean> {
    return (await connection.query('SELECT 1 FROM pg_database WHERE datname = $1', [name])).length > 0
  }

  return {
    isolation: 'database',

    async create(tenant: PostgresTenant) {
      await createDatabase(tenant.name)
      // Default privileges live in each database: a copy of a template has them already.
      await connection.withClient(tenant.name, (client) => grantAppRoleOnSchema(client, 'public', appRole))
    },

    exists: (tenant: PostgresTenant) => exists(tenant.name),

    open(tenant: PostgresTenant, role: EngineRole) {
      return openDatabase(tenant.name, role, context.tenantPoolSize)
    },

    drop: (tenant: PostgresTenant) => dropDatabase(tenant.name),

    templates: {
      async ensure(key: string, migrate: (handle: EngineHandle) => Promise<void>): Promise<PostgresTemplate> {
        const database = templateDatabaseName(context.dataSourceId, key)
        const [existing] = await connection.query<{ datistemplate: boolean }>('SELECT datistemplate FROM pg_database WHERE datname = $1', [database])
        if (existing?.datistemplate) return { key, database }
        if (existing) await dropDatabase(database) // a build that died half-way
        await createDatabase(database)
        await connection.withClient(database, (client) => grantAppRoleOnSchema(client, 'public', appRole))
        const handle = openDatabase(database, 'admin', 1)
        try {
          await migrate(handle)
        } finally {
          await handle.close()
        }
        await connection.admin.query(`ALTER DATABASE ${quoteIdentifier(database)} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false`)
        return { key, database }
      },
      async createFrom(tenant: PostgresTenant, template: PostgresTemplate) {
        await createDatabase(tenant.name, template.database)
      },
    },

    readOnly: {
      async grant(tenant: PostgresTenant, role: string) {
        await connection.transaction(async (client) => {
          await client.query(`GRANT CONNECT ON DATABASE ${quoteIdentifier(tenant.name)} TO ${quoteIdentifier(role)}`)
          // Temporary tables are writes too, and cost the server: not for a read-only role.
          await client.query(`REVOKE TEMPORARY ON DATABASE ${quoteIdentifier(tenant.name)} FROM PUBLIC`)
          await connection.withClient(tenant.name, (inside) => grantReadOnSchema(inside, 'public', role))
        }, roleLock(role))
        return tenant.name
      },
      async revoke(tenant: PostgresTenant, role: string) {
        // Privileges live per database: drop them where they were granted.
        if (!(await exists(tenant.name))) return
        await connection.withClient(tenant.name, async (client) => {
          await client.query(`DROP OWNED BY ${quoteIdentifier(role)}`)
        })
        await connection.admin.query(`REVOKE ALL ON DATABASE ${quoteIdentifier(tenant.name)} FROM ${quoteIdentifier(role)}`).catch((err: unknown) => {
          // Dropped by someone else meanwhile: the grant went with it, and DROP ROLE says if anything is left.
          logger.warn({ err, tenantId: tenant.id }, 'Revoking a read-only role from a tenant database failed')
        })
      },
    },
  }
}
