import type { Kysely } from 'kysely'
import type pg from 'pg'
import { quoteIdentifier, quoteLiteral, quoteReportedName } from '../../identifiers.js'
import { TenantryError } from '../../errors.js'
import type { EngineRole } from '../engine.js'
import type { PostgresContext, PostgresIsolationKind, PostgresTenant } from './isolation-kind.js'
import { openPostgresHandle } from './postgres-handle.js'
import { rewriteRowStatement } from './row-foreign-keys.js'
import { ROW_SCHEMA, rowGroupRoleComment, rowGroupRoleName, TENANT_SETTING } from './postgres-names.js'
import {
  dropLoginRole,
  grantAppAccessOnMigratedSchema,
  revokeAppRoleFromSchema,
  ROW_GROUP_ROLE_ATTRIBUTES,
  ROW_TENANT_ROLE_ATTRIBUTES,
  roleLock,
  syncAppPrivilegesAfterMigration,
  upsertLoginRole,
  upsertTenantRole,
} from './postgres-privileges.js'
import { tenantRoleRepair } from './tenant-role-repair.js'
import { grantSharedReads } from './shared-tables.js'
import { ensureRowTenantFunction, keyOnRole, tenantizeRowSchema, type RunQuery } from './tenantize-row-schema.js'

/**
 * Row isolation: every tenant's rows in the shared tables of schema `tenant_rows`, keyed by
 * `tenant_id` and confined by RLS (see `tenantizeRowSchema`) and by the query layer
 * (`TenantRowsPlugin`). A tenant has no storage of its own: creating one makes sure the shared
 * schema exists, and dropping one deletes its rows.
 *
 * Each row tenant has its own login role (`t_<id>_app`, as schema and database tenants do),
 * a member of the NOLOGIN group role `tenantry_rows_<data source id>` that holds the DML
 * privileges on the shared tables (one grant per new table, not one per tenant). The RLS
 * policies compare `tenant_id` with a function of `current_user`, which a statement cannot
 * change: raw SQL through a tenant's handle reaches that tenant's rows alone. Each open tenant
 * handle has a small pool of its own (bounded by the router's LRU).
 */
export function rowIsolation(context: PostgresContext): PostgresIsolationKind {
  const { connection, logger } = context
  const schema = quoteIdentifier(ROW_SCHEMA)
  const group = rowGroupRoleName(context.dataSourceId)
  const rowsLock = `tenantry-rows:${context.dataSourceId}`

  /**
   * Brings the shared schema to what this version confines with, once per process: the schema,
   * the group role and its privileges, the tenant function, policies and defaults keyed on the
   * login role (tables made by earlier versions keyed on a setting), and no rights left to the
   * shared app role, which row tenants used before they had roles of their own. Idempotent.
   */
  let confined: Promise<void> | undefined
  function confine(): Promise<void> {
    confined ??= connection
      .transaction(async (client) => {
        const run: RunQuery = async <R>(text: string, values: unknown[] = []) => (await client.query(text, values)).rows as R[]
        await client.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`)
        await upsertLoginRole(client, group, ROW_GROUP_ROLE_ATTRIBUTES, undefined)
        await client.query(`COMMENT ON ROLE ${quoteIdentifier(group)} IS ${quoteLiteral(rowGroupRoleComment(context.dataSourceId))}`)
        await ensureRowTenantFunction(run)
        const tables = await run<{ name: string }>(
          `SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
           WHERE n.nspname = $1 AND c.relkind IN ('r', 'p')`,
          [ROW_SCHEMA],
        )
        for (const table of tables) await keyOnRole(run, table.name)
        await grantAppAccessOnMigratedSchema(client, ROW_SCHEMA, group, context.appPrivileges)
        await revokeAppRoleFromSchema(client, ROW_SCHEMA, context.appRole)
        // The shared tables the app declared readable (`migrations.shared.readable`), for every row tenant through the group.
        await grantSharedReads(client, context, group)
      }, rowsLock)
      .catch((error: unknown) => {
        confined = undefined
        throw error
      })
    return confined
  }

  /** The tenant's role in the group: what it may do on the shared tables comes from the group alone. */
  async function joinGroup(client: pg.ClientBase, role: string): Promise<void> {
    const member = await client.query(
      `SELECT 1 FROM pg_auth_members m WHERE m.roleid = (SELECT oid FROM pg_roles WHERE rolname = $1) AND m.member = (SELECT oid FROM pg_roles WHERE rolname = $2)`,
      [group, role],
    )
    if (!member.rowCount) await client.query(`GRANT ${quoteIdentifier(group)} TO ${quoteIdentifier(role)}`)
  }

  // Tenants created before row tenants had roles of their own get one when first opened.
  const tenantRoles = tenantRoleRepair(
    context,
    () => kind.exists(),
    (client, _tenant, role) => joinGroup(client, role),
    ROW_TENANT_ROLE_ATTRIBUTES,
  )

  const kind = {
    isolation: 'row' as const,

    async create(tenant: PostgresTenant) {
      await confine()
      const login = context.tenantLogin(tenant)
      await connection.transaction(async (client) => {
        await upsertTenantRole(client, context.dataSourceId, login, ROW_TENANT_ROLE_ATTRIBUTES)
        await joinGroup(client, login.name)
      }, roleLock(login.name))
    },

    async exists() {
      return (await connection.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [ROW_SCHEMA])).length > 0
    },

    /**
     * The admin handle migrates the shared tables (and grants the group what they need); the app
     * handle logs in as the tenant's own role, and filters every query by tenant as well.
     */
    open(tenant: PostgresTenant, role: EngineRole) {
      if (role === 'admin') {
        const afterEachMigration = async (db: Kysely<any>) => {
          await tenantizeRowSchema(db)
          await syncAppPrivilegesAfterMigration(db, ROW_SCHEMA, group, context.appPrivileges)
        }
        // A later migration's foreign key to a tenantized table is made composite before Postgres sees it.
        return openPostgresHandle({ pool: connection.admin, ownsPool: false, schema: ROW_SCHEMA, shared: true, afterEachMigration, rewrite: rewriteRowStatement, logger })
      }
      const pool = connection.pool(undefined, context.tenantLogin(tenant), context.tenantPoolSize)
      const ready = async () => {
        await confine()
        await tenantRoles.ensure(tenant)
        return pool
      }
      return openPostgresHandle({ pool: ready, ownsPool: true, schema: ROW_SCHEMA, tenantId: tenant.id, shared: true, gate: tenant.id, preparedStatements: context.preparedStatements, logger })
    },

    /** Removes the tenant's rows from every shared table, referencing tables first, then its role. */
    async drop(tenant: PostgresTenant) {
      await connection.transaction(async (client) => {
        // RLS is forced on the admin too (it owns the tables): it sees the tenant's rows only once it names the tenant.
        await client.query('SELECT set_config($1, $2, true)', [TENANT_SETTING, tenant.id])
        const tables = await client.query<{ name: string; refs: string[] }>(
          `SELECT c.relname AS name,
             array(SELECT r.relname FROM pg_constraint f JOIN pg_class r ON r.oid = f.conrelid
                   WHERE f.contype = 'f' AND f.confrelid = c.oid AND f.conrelid <> c.oid)::text[] AS refs
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id'
           WHERE n.nspname = $1 AND c.relkind IN ('r', 'p')`,
          [ROW_SCHEMA],
        )
        const pending = new Map(tables.rows.map((t) => [t.name, t.refs]))
        while (pending.size > 0) {
          const ready = [...pending].filter(([, refs]) => refs.every((r) => !pending.has(r)))
          if (ready.length === 0) throw new TenantryError('INTERNAL', 'Cyclic foreign keys between row-isolated tables')
          for (const [table] of ready) {
            await client.query(`DELETE FROM ${schema}.${quoteReportedName(table)} WHERE tenant_id = $1`, [tenant.id])
            pending.delete(table)
          }
        }
      })
      const role = context.tenantLogin(tenant).name
      await connection.transaction((client) => dropLoginRole(client, role), roleLock(role))
    },
  } satisfies PostgresIsolationKind
  return kind
}
