import { quoteIdentifier } from '../../identifiers.js'
import type { EnginePlacement, TenantStorage } from '../engine.js'
import type { PostgresConnection } from './postgres-connection.js'
import { ROW_SCHEMA, tenantStorageName } from './postgres-names.js'

/**
 * Tenants' storage on Postgres, measured, not enforced: Postgres has no per-schema or
 * per-database size limit, so the storage quota is checked by callers before writes (see
 * `Quotas.assertStorage`) against a size refreshed at most every few seconds.
 *
 * - database isolation: `pg_database_size` of the tenant's database;
 * - schema isolation: `pg_total_relation_size` (tables with their indexes and TOAST) summed over the schema;
 * - row isolation: the size of the tenant's rows in the shared tables (`pg_column_size` of each
 *   row), an approximation that leaves out indexes and dead tuples.
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
      const tables = await query<{ table_name: string }>(
        `SELECT table_name FROM information_schema.columns WHERE table_schema = $1 AND column_name = 'tenant_id'`,
        [ROW_SCHEMA],
      )
      let total = 0
      for (const { table_name } of tables) {
        const [row] = await query<{ n: string | null }>(
          `SELECT coalesce(sum(pg_column_size(t.*)), 0)::bigint AS n FROM ${quoteIdentifier(ROW_SCHEMA)}.${quoteIdentifier(table_name)} t WHERE tenant_id = $1`,
          [placement.tenantId],
        )
        total += Number(row?.n ?? 0)
      }
      return total
    },
  }
}
