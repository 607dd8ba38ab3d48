import type { Compilable, Kysely } from 'kysely'
import { isTenantryError, TenantryError } from '../errors.js'
import { constraintViolation, type Collection, type ListQuery } from './collection.js'
import { idempotentWrite, inTransaction, type BoundedRun, type WriteOutcome, type WriteRequest } from './idempotency.js'

/**
 * The operations of one collection (seed 001's GenericRepository), written once for both of
 * their faces: `tenantry.collection(name)` in-process and the server's data API over HTTP. Each
 * takes input already validated by the collection's schemas and a `CollectionRunner` that says
 * how to reach the tenant in context; lists, counts and writes run bounded (off the event loop
 * on SQLite, under the tenant's deadline everywhere), point reads in-process. Errors are
 * `TenantryError`s with the data API's codes (`NOT_FOUND`, `CONSTRAINT_VIOLATION`, …), which the
 * server answers with their statuses.
 */

/** How the repository reaches the tenant in context. */
export interface CollectionRunner {
  /** Runs `fn` through `tenantry.bounded` in the tenant, under its deadline. */
  bounded: BoundedRun
  /**
   * Runs a query built once on the tenant's in-process connection (`tenantry.db()`'s) and
   * answers its first row: compiled once per tenant handle, its statement kept there
   * (`tenantry.prepare`). Point reads by primary key.
   */
  readOne<P>(build: (db: Kysely<any>, params: P) => Compilable<unknown>, params: P): Promise<Row | undefined>
  /** The name of the tenant's engine: search is written per engine. */
  engine(): Promise<string>
  /** Hears of what the repository survives: a search index that failed (then it scans), a prune that failed. */
  warn(details: Record<string, unknown>, message: string): void
}

/** A page of rows and the cursor of the next, `null` on the last. */
export interface Page<Row> {
  items: Row[]
  nextCursor: string | null
}

type Row = Record<string, unknown>
type Id = string | number

export class CollectionRepository {
  constructor(readonly collection: Collection) {}

  /** The point read by primary key, built once (see `CollectionRunner.readOne`). */
  readonly #byId = (db: Kysely<any>, params: { id: Id }) => this.collection.select(db).where(this.collection.primaryKey, '=', params.id)

  /** The routes a write is hashed as (see `requestHash`): the data API's. */
  #request(method: WriteRequest['method'], tail: '' | '/:id' | '/bulk' | '/bulk-delete', id?: Id, body?: unknown): WriteRequest {
    return { method, route: `/data/${this.collection.name}${tail}`, ...(id !== undefined ? { id } : {}), ...(body !== undefined ? { body } : {}) }
  }

  notFound(id: unknown): TenantryError {
    return new TenantryError('NOT_FOUND', `No ${this.collection.name} with id ${JSON.stringify(id)}`)
  }

  async list(run: CollectionRunner, query: ListQuery): Promise<Page<Row>> {
    const c = this.collection
    const [primary, tieBreak] = c.orderBy(query)
    const engine = await run.engine()
    const rows = await run.bounded(
      (db) =>
        searchIndexed(run, engine, query.q, (useIndex) =>
          c.select(db).where(c.where(query, engine, useIndex)).where(c.after(query)).orderBy(primary!).orderBy(tieBreak!).limit(query.limit + 1).execute(),
        ),
      true,
    )
    const page = rows.slice(0, query.limit)
    const nextCursor = rows.length > query.limit ? c.cursorAfter(page.at(-1)!, query) : null
    return { items: page.map((r) => c.fromDb(r)), nextCursor }
  }

  async count(run: CollectionRunner, query: Pick<ListQuery, 'filters' | 'q'>): Promise<number> {
    const c = this.collection
    const engine = await run.engine()
    const row = await run.bounded(
      (db) =>
        searchIndexed(run, engine, query.q, (useIndex) =>
          db
            .selectFrom(c.table)
            .select((eb) => eb.fn.countAll<number | string>().as('n'))
            .where(c.where(query, engine, useIndex))
            .executeTakeFirstOrThrow(),
        ),
      true,
    )
    return Number(row.n)
  }

  /**
   * One row by primary key, in-process on purpose: one row through the primary key's index,
   * which no search or filter can turn into a scan, and in WAL mode a read never waits on a
   * writer's lock, so it cannot hold the event loop for long; off-loop it would cost an
   * executor round trip (two to four times the whole request's cost, see `npm run bench --
   * --only offloop`).
   */
  async findById(run: CollectionRunner, id: Id): Promise<Row | undefined> {
    const row = await run.readOne(this.#byId, { id })
    return row ? this.collection.fromDb(row) : undefined
  }

  /** Validated values (the create schema's output). */
  create(run: CollectionRunner, values: Row, key?: string): Promise<WriteOutcome<Row>> {
    const c = this.collection
    return this.#write(run, key, this.#request('POST', '', undefined, values), async (db) => {
      const row = await db.insertInto(c.table).values(c.toDb(values)).returning(c.columns).executeTakeFirstOrThrow()
      return { status: 201, body: c.fromDb(row) }
    })
  }

  update(run: CollectionRunner, id: Id, changes: Row, key?: string): Promise<WriteOutcome<Row>> {
    const c = this.collection
    return this.#write(run, key, this.#request('PATCH', '/:id', id, changes), async (db) => {
      const row = await db.updateTable(c.table).set(c.toDb(changes)).where(c.primaryKey, '=', id).returning(c.columns).executeTakeFirst()
      if (!row) throw this.notFound(id)
      return { status: 200, body: c.fromDb(row) }
    })
  }

  delete(run: CollectionRunner, id: Id, key?: string): Promise<WriteOutcome<undefined>> {
    const c = this.collection
    return this.#write(run, key, this.#request('DELETE', '/:id', id), async (db) => {
      const result = await db.deleteFrom(c.table).where(c.primaryKey, '=', id).executeTakeFirst()
      if (Number(result.numDeletedRows) === 0) throw this.notFound(id)
      return { status: 204, body: undefined }
    })
  }

  /** Up to `BULK_MAX` validated rows in one transaction: all or none. */
  bulkCreate(run: CollectionRunner, items: Row[], key?: string): Promise<WriteOutcome<{ items: Row[] }>> {
    const c = this.collection
    return this.#write(run, key, this.#request('POST', '/bulk', undefined, { items }), (db) =>
      inTransaction(db, async (trx) => {
        const out: Row[] = []
        for (const item of items) out.push(c.fromDb(await trx.insertInto(c.table).values(c.toDb(item)).returning(c.columns).executeTakeFirstOrThrow()))
        return { status: 201, body: { items: out } }
      }),
    )
  }

  bulkDelete(run: CollectionRunner, ids: Id[], key?: string): Promise<WriteOutcome<{ deleted: number }>> {
    const c = this.collection
    return this.#write(run, key, this.#request('POST', '/bulk-delete', undefined, { ids }), async (db) => {
      const result = await db.deleteFrom(c.table).where(c.primaryKey, 'in', ids).executeTakeFirst()
      return { status: 200, body: { deleted: Number(result.numDeletedRows) } }
    })
  }

  /** A write, bounded; with `key`, once per key (idempotency.ts). A constraint the database refuses is `CONSTRAINT_VIOLATION`. */
  async #write<T>(
    run: CollectionRunner,
    key: string | undefined,
    request: WriteRequest,
    exec: (db: Kysely<any>) => Promise<{ status: number; body: T }>,
  ): Promise<WriteOutcome<T>> {
    const outcome =
      key === undefined
        ? run.bounded(async (db) => ({ ...(await exec(db)), replayed: false }), false)
        : idempotentWrite(run.bounded, key, request, exec, (err) => run.warn({ err }, 'Pruning the write ledger failed; the next sampled write tries again'))
    return outcome.catch(constraintViolation)
  }
}

/**
 * Runs a list or count with the search index, and again without it when that fails (on
 * SQLite the FTS5 table may be missing, not yet made by `tenantry migrate`, or damaged by the
 * tenant's own raw SQL): the index only makes search faster, so its failure must not fail the
 * call. Deadlines, busy answers and shares (TenantryErrors) are not retried.
 * Warned on every fallback: a tenant without its index should be migrated.
 */
async function searchIndexed<T>(run: CollectionRunner, engine: string, q: string | undefined, exec: (useIndex: boolean) => Promise<T>): Promise<T> {
  if (q === undefined) return exec(false)
  // On Postgres the narrowing names no index (a missing one only means a scan), and a failed
  // statement would have aborted the transaction anyway.
  if (engine !== 'sqlite') return exec(true)
  try {
    return await exec(true)
  } catch (error) {
    if (isTenantryError(error)) throw error
    run.warn({ err: error }, 'Search through the index failed; searching without it')
    return exec(false)
  }
}
