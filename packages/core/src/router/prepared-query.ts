import type { CompiledQuery, Compilable, QueryResult } from 'kysely'
import { settledPromise } from '../context.js'
import { TenantryError } from '../errors.js'
import type { CompiledRunner } from '../engines/engine.js'
import type { HandleEntry, Router, TenantDb } from './router.js'

/**
 * A query built once and run for whichever tenant is current (`tenantry.prepare`). It is
 * compiled on each tenant's own handle, the first time it runs there, so everything that
 * handle adds (row isolation's tenant filter, the schema, the guard) is in its SQL; on SQLite
 * the statement stays prepared on the handle's connection until the handle closes, and on
 * Postgres a read is a named statement each connection plans once. What a
 * handle compiled is kept by build function: `prepare` called again with the same function
 * (once per request, say) compiles nothing more.
 */
export interface PreparedQuery<P, O> {
  /** Runs the query for the current tenant with `params`. Throws `NoTenantError` outside `withTenant`. */
  execute(params: P): Promise<O[]>
  /** The first row, or `undefined`. */
  executeTakeFirst(params: P): Promise<O | undefined>
}

/** A parameter's place in the query while it is compiled: the value comes at execution. */
class Slot {
  constructor(readonly name: string) {}
  // A parameter must be bound, never written into the SQL text (e.g. with `sql.lit`).
  toString(): string {
    throw new TenantryError('INVALID_OPTION', `Prepared query parameter "${this.name}" can only be used as a value the query binds`)
  }
}

const slots = new Proxy({} as Record<string, unknown>, {
  get: (_target, name) => (typeof name === 'string' ? new Slot(name) : undefined),
})

interface Compiled {
  readonly query: CompiledQuery
  /** Per parameter: the name it takes its value from, or undefined for a constant of the query. */
  readonly names: ReadonlyArray<string | undefined>
  /** The handle's runner, with the statement it prepared, where its engine has one. */
  readonly run: CompiledRunner | undefined
}

class RoutedPreparedQuery<P, O> implements PreparedQuery<P, O> {
  constructor(
    readonly router: Router,
    readonly build: (db: TenantDb, params: P) => Compilable<O>,
  ) {}

  execute(params: P): Promise<O[]> {
    return this.#run(params, false, false) as Promise<O[]>
  }

  executeTakeFirst(params: P): Promise<O | undefined> {
    return this.#run(params, true, true) as Promise<O | undefined>
  }

  /** The rows (or the first one), in one promise: on SQLite the statement runs before this returns. */
  #run(params: P, first: boolean, one: boolean): Promise<unknown> {
    const meter = this.router.meter
    let entry: HandleEntry
    let compiled: Compiled
    let result: QueryResult<unknown> | Promise<QueryResult<unknown>>
    let started = 0
    try {
      entry = this.router.current()
      compiled = (entry.prepared.get(this.build) as Compiled | undefined) ?? this.#compile(entry)
      const { query, run } = compiled
      const parameters = bind(compiled, params as Record<string, unknown>)
      if (meter) started = performance.now()
      // The handle's prepared statement where the engine keeps one; through its Kysely otherwise (same gate and scope).
      result = run ? run(parameters, first) : entry.handle.db.executeQuery({ ...query, parameters })
    } catch (error) {
      return Promise.reject(error)
    }
    const done = (result: QueryResult<unknown>) => {
      if (meter) {
        const writes = compiled.query.query.kind !== 'SelectQueryNode'
        const rowsWritten = writes ? Number(result.numAffectedRows ?? result.rows.length) : 0
        meter(entry.tenantId, { rowsRead: writes ? 0 : result.rows.length, rowsWritten, ms: performance.now() - started })
      }
      return one ? result.rows[0] : result.rows
    }
    return result instanceof Promise ? result.then(done) : settledPromise(done(result))
  }

  /** Builds the query on the tenant's handle (its plugins applied) with slots for the parameters. */
  #compile(entry: HandleEntry): Compiled {
    const query = this.build(entry.db, slots as P).compile()
    const names = query.parameters.map((value) => (value instanceof Slot ? value.name : undefined))
    const compiled = { query, names, run: entry.handle.prepareCompiled?.(query) }
    entry.prepared.set(this.build, compiled)
    return compiled
  }
}

function bind(compiled: Compiled, params: Record<string, unknown>): unknown[] {
  const { names, query } = compiled
  const values = new Array<unknown>(names.length)
  for (let i = 0; i < names.length; i++) {
    const name = names[i]
    if (name === undefined) {
      values[i] = query.parameters[i]
      continue
    }
    const value = params?.[name]
    if (value === undefined) throw new TenantryError('INVALID_OPTION', `Prepared query parameter "${name}" has no value`)
    values[i] = value
  }
  return values
}

/** @internal `tenantry.prepare`. */
export function prepareQuery<P, O>(router: Router, build: (db: TenantDb, params: P) => Compilable<O>): PreparedQuery<P, O> {
  return new RoutedPreparedQuery(router, build)
}
