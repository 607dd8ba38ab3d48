import { createHash } from 'node:crypto'
import { Kysely, WithSchemaPlugin, sql, type CompiledQuery } from 'kysely'
import type pg from 'pg'
import type { Logger } from '../../logger.js'
import type { CompiledRunner, EngineHandle } from '../engine.js'
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
  /**
   * An app handle's `tenantry.prepare` reads run as named prepared statements, planned once
   * per connection (see `namedStatements`). Off for poolers that cannot keep them (PgBouncer
   * in transaction mode before 1.21). @default true
   */
  preparedStatements?: boolean
  logger: Logger
}

/** The one way every Postgres isolation kind opens a handle. */
export function openPostgresHandle(options: PostgresHandleOptions): EngineHandle {
  const { ownsPool, schema, tenantId, logger } = options
  // Resolved once, for the dialect and the prepared statements alike (a factory may create the tenant's login first).
  let resolved: Promise<pg.Pool> | undefined
  const pool = (): Promise<pg.Pool> =>
    (resolved ??= (typeof options.pool === 'function' ? options.pool() : Promise.resolve(options.pool)).catch((error: unknown) => {
      resolved = undefined
      throw error
    }))
  const dialect = new ScopedPostgresDialect({ pool, ownsPool, logger, ...(schema ? { schema } : {}), ...(options.rewrite ? { rewrite: options.rewrite } : {}) })
  // Gated: the app's query trees are kept before the plugins below rewrite them (a move may send a write elsewhere).
  let db = new Kysely<any>(options.gate ? { dialect: gatedDialect(dialect, options.gate), plugins: [new AppQueryPlugin()] } : { dialect })
  // Filter by tenant first, then qualify with the schema: the tenant predicate names tables as the app wrote them.
  if (tenantId) db = db.withPlugin(new TenantRowsPlugin(tenantId))
  if (schema) db = db.withPlugin(new WithSchemaPlugin(schema))
  let closed = false
  const prepareCompiled = options.gate && options.preparedStatements !== false ? namedStatements(db, pool, () => closed) : undefined
  return {
    engine: 'postgres',
    db,
    ...(schema ? { schema } : {}),
    ...(options.shared ? { shared: true } : {}),
    ...(options.afterEachMigration ? { afterEachMigration: options.afterEachMigration } : {}),
    execScript,
    ...(prepareCompiled ? { prepareCompiled } : {}),
    close: async () => {
      closed = true
      await db.destroy()
      // Kysely ends the pool only if it ran a query through it: a handle that served only named
      // statements (`tenantry.prepare`, the data API's read by id) would leave its connections
      // open until they idle out, and an evicted handle's would add up against max_connections.
      const owned = ownsPool ? await resolved?.catch(() => undefined) : undefined
      if (owned && !owned.ended) await owned.end()
    },
  }
}

/**
 * `tenantry.prepare` on Postgres: a read runs as a named prepared statement, so each
 * connection parses and plans it once (Postgres keeps a generic plan after five runs) instead
 * of at every call; on row isolation that skips re-planning the RLS policy each time. The
 * name is a hash of the SQL, so every handle on a pool agrees on it.
 *
 * Reads only: a write goes through `db`, whose write gate a move's pause waits on. So does
 * everything once the handle is closed (`db` refuses). A migration that changes what a cached
 * statement returns (`select *` after a new column) makes Postgres refuse it on connections
 * that prepared it before ("cached plan must not change result type"): such a connection is
 * ended, not returned to the pool, and the read runs again through `db`.
 */
function namedStatements(db: Kysely<any>, pool: () => Promise<pg.Pool>, closed: () => boolean) {
  return (query: CompiledQuery): CompiledRunner => {
    if (query.query.kind !== 'SelectQueryNode') return (parameters) => db.executeQuery({ ...query, parameters })
    const name = `tenantry_${createHash('sha256').update(query.sql).digest('base64url').slice(0, 24)}`
    return async (parameters) => {
      if (closed()) return db.executeQuery({ ...query, parameters })
      const client = await (await pool()).connect()
      let stale = false
      try {
        const result = await client.query({ name, text: query.sql, values: parameters as unknown[] })
        return { rows: result.rows }
      } catch (error) {
        if (!isStalePlan(error)) throw error
        stale = true
      } finally {
        client.release(stale)
      }
      return db.executeQuery({ ...query, parameters })
    }
  }
}

/** Postgres refusing a cached statement whose result columns changed since it was prepared. */
function isStalePlan(error: unknown): boolean {
  const { code, message } = error as { code?: unknown; message?: unknown }
  return code === '0A000' && typeof message === 'string' && message.includes('cached plan must not change result type')
}

/** A `.sql` migration runs as one simple-protocol query on the transaction's connection. */
async function execScript(db: Kysely<any>, script: string): Promise<void> {
  await sql.raw(script).execute(db)
}
