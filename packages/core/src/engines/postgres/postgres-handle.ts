import { Kysely, WithSchemaPlugin, sql } from 'kysely'
import type pg from 'pg'
import type { Logger } from '../../logger.js'
import type { EngineHandle } from '../engine.js'
import { ScopedPostgresDialect, type StatementRewrite } from './scoped-postgres-dialect.js'
import { TenantRowsPlugin } from './tenant-rows-plugin.js'
import { AppQueryPlugin, gatedDialect } from '../../lifecycle/write-gate.js'

export interface PostgresHandleOptions {
  /** The pool, or a factory the first query awaits (e.g. to make sure the login it uses exists). */
  pool: pg.Pool | (() => Promise<pg.Pool>)
  /** Whether closing the handle ends the pool: `false` for the data source's shared pools. */
  ownsPool: boolean
  /** The schema every query and transaction is confined to; the database's default one when absent. */
  schema?: string
  /**
   * Row isolation: the tenant every query is filtered by (`TenantRowsPlugin`). RLS needs no
   * setting from the handle: it keys on the tenant's login role.
   */
  tenantId?: string
  /** The tables are shared with other tenants (row isolation). */
  shared?: boolean
  afterEachMigration?: (db: Kysely<any>) => Promise<void>
  /** Rewrites each statement before it is sent (see `ScopedPostgresDialectConfig.rewrite`). */
  rewrite?: StatementRewrite
  /** An app handle of this tenant: its writes pass the tenant's write gate (a move's pause, maintenance mode). */
  gate?: string
  logger: Logger
}

/** The one way every Postgres isolation kind opens a handle. */
export function openPostgresHandle(options: PostgresHandleOptions): EngineHandle {
  const { pool, ownsPool, schema, tenantId, logger } = options
  const dialect = new ScopedPostgresDialect({ pool, ownsPool, logger, ...(schema ? { schema } : {}), ...(options.rewrite ? { rewrite: options.rewrite } : {}) })
  // Gated: the app's query trees are kept before the plugins below rewrite them (a move may send a write elsewhere).
  let db = new Kysely<any>(options.gate ? { dialect: gatedDialect(dialect, options.gate), plugins: [new AppQueryPlugin()] } : { dialect })
  // Filter by tenant first, then qualify with the schema: the tenant predicate names tables as the app wrote them.
  if (tenantId) db = db.withPlugin(new TenantRowsPlugin(tenantId))
  if (schema) db = db.withPlugin(new WithSchemaPlugin(schema))
  return {
    engine: 'postgres',
    db,
    ...(schema ? { schema } : {}),
    ...(options.shared ? { shared: true } : {}),
    ...(options.afterEachMigration ? { afterEachMigration: options.afterEachMigration } : {}),
    execScript,
    close: () => db.destroy(),
  }
}

/** A `.sql` migration runs as one simple-protocol query on the transaction's connection. */
async function execScript(db: Kysely<any>, script: string): Promise<void> {
  await sql.raw(script).execute(db)
}
