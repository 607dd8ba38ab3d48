import { sql, type Kysely, type Transaction } from 'kysely'
import type { EngineHandle } from '../engines/engine.js'
import type { Logger } from '../logger.js'

/** A step the migration set runs after the app's migrations (see `TenantMigrationSet.withDerived`). */
export interface DerivedStep {
  /** The ledger name: changes whenever what the step makes changes. */
  readonly name: string
  /** Brings the handle's database to what the step makes; idempotent, cheap when nothing changed. */
  apply(handle: EngineHandle, logger: Logger, tenantId?: string): Promise<void>
  /**
   * How to make the same step in another thread (see `loadMigrationSource`): plain data that
   * survives `postMessage`. A step without one keeps its migration set in the process that built it.
   */
  readonly recipe?: DerivedRecipe
}

/** A derived step as data: its kind and what the kind's factory takes. */
export interface DerivedRecipe {
  readonly kind: string
  readonly args?: unknown
}

/** Whether `table` exists in the handle's database (its schema on Postgres). */
async function tableExists(handle: EngineHandle, db: Kysely<any>, table: string): Promise<boolean> {
  const found =
    handle.engine === 'sqlite'
      ? await sql`select 1 from sqlite_master where type = 'table' and name = ${table}`.execute(db)
      : await sql`select 1 from information_schema.tables where table_schema = ${handle.schema ? sql`${handle.schema}` : sql`current_schema()`} and table_name = ${table}`.execute(db)
  return found.rows.length > 0
}

/**
 * The derived step that makes one of Tenantry's own tables in every tenant database (the write
 * ledger, the state store), after the app's migrations, at provisioning, in templates and at
 * `tenantry migrate`. `create` makes the table inside one transaction with what the handle
 * does after each migration, so under row isolation the table gets `tenant_id`, a key leading
 * with it and RLS, and on Postgres the app privileges, exactly like the app's own tables.
 * Cheap when the table exists (one catalog lookup).
 */
export function derivedTableStep(
  name: string,
  table: string,
  create: (trx: Transaction<any>, handle: EngineHandle) => Promise<void>,
  recipe?: DerivedRecipe,
): DerivedStep {
  return {
    name,
    ...(recipe ? { recipe } : {}),
    apply: async (handle) => {
      if (await tableExists(handle, handle.db, table)) return
      await handle.db.transaction().execute(async (trx) => {
        if (await tableExists(handle, trx, table)) return
        await create(trx, handle)
        await handle.afterEachMigration?.(trx)
      })
    },
  }
}
