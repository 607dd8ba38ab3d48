import type { Kysely } from 'kysely'
import { quoteIdentifier, quoteReportedName } from '../../identifiers.js'
import { TenantryError } from '../../errors.js'
import type { EngineRole } from '../engine.js'
import type { PostgresContext, PostgresIsolationKind, PostgresTenant } from './isolation-kind.js'
import { openPostgresHandle } from './postgres-handle.js'
import { ROW_SCHEMA, TENANT_SETTING } from './postgres-names.js'
import { grantAppAccessOnSchema, protectMigrationTables } from './postgres-privileges.js'
import { tenantizeRowSchema } from './tenantize-row-schema.js'

/**
 * Row isolation: every tenant's rows in the shared tables of schema `tenant_rows`, keyed by
 * `tenant_id` and confined by RLS (see `tenantizeRowSchema`) and by the query layer
 * (`TenantRowsPlugin`). A tenant has no storage of its own: creating one makes sure the shared
 * schema exists, and dropping one deletes its rows.
 *
 * Its limit: every row tenant's app handle is the shared app role, and RLS reads the tenant
 * from a transaction-local setting, so raw SQL that sets `tenantry.tenant_id` itself reaches
 * another tenant's rows. Query-builder queries cannot; `tenantry doctor` warns while any raw
 * path to row tenants exists (see README, Postgres isolation).
 */
export function rowIsolation(context: PostgresContext): PostgresIsolationKind {
  const { connection, appRole, logger } = context
  const schema = quoteIdentifier(ROW_SCHEMA)

  return {
    isolation: 'row',

    async create() {
      await connection.transaction(async (client) => {
        await client.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`)
        await grantAppAccessOnSchema(client, ROW_SCHEMA, appRole)
      }, `tenantry-rows:${context.dataSourceId}`)
    },

    async exists() {
      return (await connection.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [ROW_SCHEMA])).length > 0
    },

    /** The admin handle migrates the shared tables; the app handle sets the tenant per transaction and filters every query. */
    open(tenant: PostgresTenant, role: EngineRole) {
      if (role === 'admin') {
        const afterEachMigration = async (db: Kysely<any>) => {
          await tenantizeRowSchema(db)
          await protectMigrationTables(db, ROW_SCHEMA)
        }
        return openPostgresHandle({ pool: connection.admin, ownsPool: false, schema: ROW_SCHEMA, shared: true, afterEachMigration, logger })
      }
      return openPostgresHandle({ pool: connection.app, ownsPool: false, schema: ROW_SCHEMA, tenantId: tenant.id, shared: true, logger })
    },

    /** Removes the tenant's rows from every shared table, referencing tables first. */
    async drop(tenant: PostgresTenant) {
      await connection.transaction(async (client) => {
        // RLS is forced on the admin too (it owns the tables): it sees the tenant's rows only once the tenant is set.
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
    },
  }
}
