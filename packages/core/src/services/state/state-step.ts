import { sql } from 'kysely'
import { derivedTableStep, type DerivedStep } from '../../migrations/derived-step.js'

/** The state table in each tenant database. */
export const STATE_TABLE = 'tenantry_state'

/** The ledger name of the step that makes it; bump the version when what it makes changes. */
export const STATE_STEP_NAME = 'tenantry_state.v1'

/**
 * The derived migration step that makes `tenantry_state` in every tenant database
 * (`derivedTableStep`): `key` (primary key; on Postgres in the "C" collation, so order and
 * prefix ranges are byte order there as on SQLite), `value` (JSON text), `version` (1 at the
 * first write, +1 at each), `updated_at` (ISO text).
 */
export function stateStep(): DerivedStep {
  return derivedTableStep(STATE_STEP_NAME, STATE_TABLE, (trx, handle) =>
    trx.schema
      .createTable(STATE_TABLE)
      .addColumn('key', handle.engine === 'postgres' ? sql`text collate "C"` : 'text', (c) => c.primaryKey())
      .addColumn('value', 'text', (c) => c.notNull())
      .addColumn('version', 'integer', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .execute(),
    STATE_RECIPE,
  )
}

/** `stateStep` as data, for another thread (see `loadMigrationSource`). */
export const STATE_RECIPE = { kind: 'state' } as const
