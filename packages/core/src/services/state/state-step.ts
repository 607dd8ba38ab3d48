import { sql, type Kysely } from 'kysely'
import type { DerivedStep } from '../../search-index/search-index.js'

/** The state table in each tenant database. */
export const STATE_TABLE = 'tenantry_state'

/** The ledger name of the step that makes it; bump the version when what it makes changes. */
export const STATE_STEP_NAME = 'tenantry_state.v1'

/**
 * The derived migration step that makes `tenantry_state` in every tenant database (see
 * `TenantMigrationSet.withDerived`), after the app's migrations, at provisioning, in templates
 * and at `tenantry migrate`: `key` (primary key; on Postgres in the "C" collation, so order and
 * prefix ranges are byte order there as on SQLite), `value` (JSON text), `version` (1 at the
 * first write, +1 at each), `updated_at` (ISO text). It is made in one transaction with what the
 * handle does after each migration, so under row isolation it gets `tenant_id`, a key leading
 * with it and RLS, and on Postgres the app privileges, exactly like the app's own tables.
 * Cheap when the table exists.
 */
export function stateStep(): DerivedStep {
  return {
    name: STATE_STEP_NAME,
    apply: async (handle) => {
      const exists = async (db: Kysely<any>) =>
        handle.engine === 'sqlite'
          ? (await sql`select 1 from sqlite_master where type = 'table' and name = ${STATE_TABLE}`.execute(db)).rows.length > 0
          : (
              await sql`select 1 from information_schema.tables where table_schema = ${handle.schema ? sql`${handle.schema}` : sql`current_schema()`} and table_name = ${STATE_TABLE}`.execute(
                db,
              )
            ).rows.length > 0
      if (await exists(handle.db)) return
      await handle.db.transaction().execute(async (trx) => {
        if (await exists(trx)) return
        await trx.schema
          .createTable(STATE_TABLE)
          .addColumn('key', handle.engine === 'postgres' ? sql`text collate "C"` : 'text', (c) => c.primaryKey())
          .addColumn('value', 'text', (c) => c.notNull())
          .addColumn('version', 'integer', (c) => c.notNull())
          .addColumn('updated_at', 'text', (c) => c.notNull())
          .execute()
        await handle.afterEachMigration?.(trx)
      })
    },
  }
}
