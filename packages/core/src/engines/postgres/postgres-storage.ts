import { quoteIdentifier, quoteReportedName } from '../../identifiers.js'
import type { EnginePlacement, TenantStorage } from '../engine.js'
import type { PostgresConnection } from './postgres-connection.js'
import { ROW_SCHEMA, TENANT_SETTING, tenantStorageName } from './postgres-names.js'

/**
 * Tenants' storage on Postgres, measured, not enforced: Postgres has no per-schema or
 * per-database size limit, so the storage quota is checked by callers before writes (see
 * `Quotas.assertStorage`) against a size refreshed at most every few seconds.
 *
 * - database isolation: `pg_database_size` of the tenant's database;
 * - schema isolation: `pg_total_relation_size` (tables with their indexes and TOAST) summed over the schema;
 * - row isolation: the size of the tenant's rows in the shared tables (`pg_column_size` of each
 *   row), an approximation that leaves out indexes and dead tuples, read in a transaction that
 *   names the tenant (`tenantry.tenant_id`), as RLS is forced on the admin too.
 */
export function postgresStorage(connection: () => PostgresConnection): TenantStorage {
  return {
    enforced: false,
    setLimit() {},
    async size(placement: EnginePlacement): Promise<number> {
      const name = tenantStorageName(placement.tenantId)
      const query = <R extends Record<string, unknown>>(text: string, values: unknown[]) => connection().query<R>(text, values)
      if (placement.isolation === 'database') {
        const [row] = await query<{ n: string | null }>('SELECT pg_database_size(datname)::bigint AS n FROM pg_database WHERE datname = $1', [name])
        return Number(row?.n ?? 0)
      }
      if (placement.isolation === 'schema') {
        const [row] = await query<{ n: string | null }>(
          `SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint AS n
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = $1 AND c.relkind IN ('r', 'm', 'p')`,
          [name],
        )
        return Number(row?.n ?? 0)
      }
      // RLS is forced on the admin too (it owns the shared tables): without naming the tenant
      // in its transaction (`tenantry_tenant_id()` reads the setting) it sees none of its rows,
      // and a row tenant would always measure 0 bytes. A managed admin is no superuser.
      return connection().transaction(async (client) => {
        await client.query('SELECT set_config($1, $2, true)', [TENANT_SETTING, placement.tenantId])
        const tables = await client.query<{ name: string }>(
          `SELECT c.relname AS name
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
           WHERE n.nspname = $1 AND c.relkind IN ('r', 'p')`,
          [ROW_SCHEMA],
        )
        let total = 0
        for (const { name } of tables.rows) {
          const { rows } = await client.query<{ n: string | null }>(
            `SELECT coalesce(sum(pg_column_size(t.*)), 0)::bigint AS n FROM ${quoteIdentifier(ROW_SCHEMA)}.${quoteReportedName(name)} t WHERE tenant_id = $1`,
            [placement.tenantId],
          )
          total += Number(rows[0]?.n ?? 0)
        }
        return total
      })
    },
  }
}
