import type { Kysely } from 'kysely'
import { TenantryError } from '../../errors.js'
import { quoteIdentifier, quoteReportedName } from '../../identifiers.js'
import type { EngineHandle, EngineRole } from '../engine.js'
import type { PostgresContext, PostgresIsolationKind, PostgresTemplate, PostgresTenant } from './isolation-kind.js'
import type { PostgresLogin } from './postgres-connection.js'
import { openPostgresHandle } from './postgres-handle.js'
import { tenantRoleRepair } from './tenant-role-repair.js'
import { templateDatabaseName } from './postgres-names.js'
import { ownEverything, revokeOthers } from './schema-adoption.js'
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
 * Database isolation: a database `t_<id>` per tenant on the data source's server, created
 * from a pre-migrated template database, each tenant with a small pool of its own. App code
 * connects as the tenant's own role (`t_<id>_app`), the only role besides the admin that may
 * connect to that database, with rights on nothing else.
 */
export function databaseIsolation(context: PostgresContext): PostgresIsolationKind {
  const { connection, logger } = context
  // Tenants created before they had roles of their own get one when first opened.
  const tenantRoles = tenantRoleRepair(context, (tenant) => exists(tenant.name), async (client, tenant, role) => {
    await client.query(`GRANT CONNECT, TEMPORARY ON DATABASE ${quoteIdentifier(tenant.name)} TO ${quoteIdentifier(role)}`)
    await connection.withClient(tenant.name, async (inside) => {
      await grantAppAccessOnMigratedSchema(inside, 'public', role, context.appPrivileges)
      await revokeAppRoleFromSchema(inside, 'public', context.appRole)
    })
    if ((await client.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [context.appRole])).rowCount) {
      await client.query(`REVOKE ALL ON DATABASE ${quoteIdentifier(tenant.name)} FROM ${quoteIdentifier(context.appRole)}`)
    }
  })

  /** An empty database only the admin and `role` (if any: not for a template) may connect to. */
  async function createDatabase(name: string, options: { template?: string; role?: string } = {}): Promise<void> {
    const database = quoteIdentifier(name)
    await connection.admin.query(`CREATE DATABASE ${database}${options.template ? ` TEMPLATE ${quoteIdentifier(options.template)}` : ''}`)
    await connection.admin.query(`REVOKE CONNECT, TEMPORARY ON DATABASE ${database} FROM PUBLIC`)
    if (options.role) await connection.admin.query(`GRANT CONNECT, TEMPORARY ON DATABASE ${database} TO ${quoteIdentifier(options.role)}`)
  }

  /** The tenant's role, committed before anything is granted to it (a grant inside another database sees committed roles only). */
  async function ensureTenantRole(tenant: PostgresTenant): Promise<string> {
    const login = context.tenantLogin(tenant)
    await connection.transaction((client) => upsertTenantRole(client, context.dataSourceId, login), roleLock(login.name))
    return login.name
  }

  async function dropDatabase(name: string): Promise<void> {
    // A template database cannot be dropped until it is an ordinary one again.
    const [row] = await connection.query<{ datistemplate: boolean }>('SELECT datistemplate FROM pg_database WHERE datname = $1', [name])
    if (row?.datistemplate) await connection.admin.query(`ALTER DATABASE ${quoteIdentifier(name)} WITH IS_TEMPLATE false`)
    await connection.admin.query(`DROP DATABASE IF EXISTS ${quoteIdentifier(name)} WITH (FORCE)`)
  }

  /**
   * The admin's handle brings the tenant role's privileges to `appPrivileges` and protects the
   * migration tables after each migration: only the admin keeps the records. A template names no role.
   */
  function openDatabase(name: string, login: EngineRole | PostgresLogin, max: number, role?: string): EngineHandle {
    return openPostgresHandle({
      pool: connection.pool(name, login, max),
      ownsPool: true,
      ...(login === 'admin' ? { afterEachMigration: (db: Kysely<any>) => syncAppPrivilegesAfterMigration(db, 'public', role, context.appPrivileges) } : {}),
      logger,
    })
  }

  async function exists(name: string): Promise<boolean> {
    return (await connection.query('SELECT 1 FROM pg_database WHERE datname = $1', [name])).length > 0
  }

  return {
    isolation: 'database',

    adoption: {
      /**
       * Copies `existing`, a database on this server, in as the tenant's (`CREATE DATABASE …
       * TEMPLATE`, so the source is never changed), then gives the copy the shape of a provisioned
       * tenant's: the admin owns everything in `public`, every other role's privileges are taken
       * back, and the tenant's role gets `appPrivileges`. Postgres copies a database only while
       * nobody is connected to it: that is refused with what to do.
       */
      async adopt(tenant: PostgresTenant, existing: string) {
        const refused = adoptRefusal(existing, connection.database)
        if (refused) throw new TenantryError('INVALID_OPTION', `Database ${quoteReportedName(existing)} cannot be adopted: ${refused}`)
        if (!(await exists(existing))) throw new TenantryError('INVALID_OPTION', `Database ${quoteReportedName(existing)} does not exist on data source ${context.dataSourceId}`)
        const role = await ensureTenantRole(tenant)
        try {
          await createDatabase(tenant.name, { template: existing, role })
        } catch (error) {
          if ((error as { code?: string }).code !== '55006') throw error
          throw new TenantryError('INVALID_OPTION', `Database ${quoteReportedName(existing)} is in use: Postgres copies a database only while nobody is connected to it; stop its app (or wait for its connections to close) and adopt again`)
        }
        await connection.withClient(tenant.name, async (client) => {
          await client.query('BEGIN')
          await ownEverything(client, 'public')
          await revokeOthers(client, 'public')
          await grantAppAccessOnMigratedSchema(client, 'public', role, context.appPrivileges)
          await revokeAppRoleFromSchema(client, 'public', context.appRole)
          await client.query('COMMIT')
        })
      },
      /** The copy goes, the source never changed: nothing to move back. */
      async release(tenant: PostgresTenant) {
        await dropDatabase(tenant.name)
        const role = context.tenantLogin(tenant).name
        await connection.transaction((client) => dropLoginRole(client, role), roleLock(role))
      },
    },

    async create(tenant: PostgresTenant) {
      const role = await ensureTenantRole(tenant)
      await createDatabase(tenant.name, { role })
      await connection.withClient(tenant.name, (client) => grantAppAccessOnSchema(client, 'public', role, context.appPrivileges))
    },

    exists: (tenant: PostgresTenant) => exists(tenant.name),

    open(tenant: PostgresTenant, role: EngineRole) {
      if (role === 'admin') return openDatabase(tenant.name, 'admin', context.tenantPoolSize, context.tenantLogin(tenant).name)
      const pool = connection.pool(tenant.name, context.tenantLogin(tenant), context.tenantPoolSize)
      return openPostgresHandle({ pool: async () => (await tenantRoles.ensure(tenant), pool), ownsPool: true, gate: tenant.id, preparedStatements: context.preparedStatements, logger })
    },

    async drop(tenant: PostgresTenant) {
      await dropDatabase(tenant.name)
      // Its privileges went with the database: only the role itself is left.
      const role = context.tenantLogin(tenant).name
      await connection.transaction((client) => dropLoginRole(client, role), roleLock(role))
    },

    templates: {
      async ensure(key: string, migrate: (handle: EngineHandle) => Promise<void>): Promise<PostgresTemplate> {
        const database = templateDatabaseName(context.dataSourceId, key)
        const [existing] = await connection.query<{ datistemplate: boolean }>('SELECT datistemplate FROM pg_database WHERE datname = $1', [database])
        if (existing?.datistemplate) return { key, database }
        if (existing) await dropDatabase(database) // a build that died half-way
        // No role but the admin's in a template: each copy grants its own tenant's role.
        await createDatabase(database)
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
        const role = await ensureTenantRole(tenant)
        await createDatabase(tenant.name, { template: template.database, role })
        await connection.withClient(tenant.name, (client) => grantAppAccessOnMigratedSchema(client, 'public', role, context.appPrivileges))
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

/** Databases that are never adopted: Postgres's own, the data source's, Tenantry's tenants and templates. */
function adoptRefusal(database: string, own: string | undefined): string | undefined {
  if (['postgres', 'template0', 'template1'].includes(database)) return 'it is one of Postgres\'s own databases'
  if (database === own) return "it is the data source's own database (adopt one of its schemas instead)"
  if (/^t_t[a-z2-7]{19}$/.test(database)) return "it is a Tenantry tenant's database already"
  if (database.startsWith('tpl_')) return "it is one of Tenantry's templates"
  return undefined
}
