import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Kysely } from 'kysely'
import { isTenantryError } from 'tenantry'
import { HttpError } from '../errors.js'
import type { FeatureOptions, ServerInstance } from '../feature.js'
import { limitsOf } from '../rate-limits/tenant-limits.js'
import { noContent, noQuery } from '../schemas.js'
import { assertWritable, inTenant } from '../tenants/resolve-tenant.js'
import { Collection, constraintViolation } from './collection.js'
import { BULK_MAX, bulkDeleted, countResponse } from './schemas.js'

/**
 * The data API: seed 001's GenericRepository over HTTP, one set of routes per declared
 * collection, in a scope that has already admitted the request to its tenant.
 *
 * Lists, counts and every write run through `tenantry.bounded`: on SQLite in the executor's
 * processes, never on this event loop, and everywhere under a statement deadline (the data
 * source's `bounded.statementTimeoutMs`, 2 s by default, or the tenant's own: in the catalog,
 * `tenantry.limits`, else `server.dataApi.tenants`). A scan past it answers 408 `STATEMENT_TIMEOUT`; a write that
 * waits on a lock another connection holds answers 503 `DATABASE_BUSY` with `Retry-After`.
 * Point reads by primary key stay in-process (see the route).
 */
export function dataRoutes(app: ServerInstance, { tenantry, config }: FeatureOptions): void {
  const db = () => tenantry.db<any>() as unknown as Kysely<any>
  /** Runs `fn` bounded, inside the admitted tenant, under its deadline. */
  const bounded = <T>(request: FastifyRequest, reply: FastifyReply, readOnly: boolean, fn: (db: Kysely<any>) => Promise<T>): Promise<T> => {
    // The tenant's own deadline (catalog, cached), else the config's by slug, else the data source's.
    const deadline = async () => (request.tenant ? (await limitsOf(tenantry, config, request.tenant)).dataApiStatementTimeoutMs.value : null)
    return deadline()
      .then((statementTimeoutMs) => inTenant(tenantry, request, () => tenantry.bounded(fn, { readOnly, ...(statementTimeoutMs ? { statementTimeoutMs } : {}) })))
      .catch((error: unknown) => retryLater(error, reply))
  }
  /** The name of the admitted tenant's engine: search is written per engine. Both lookups are cached. */
  const engineOf = async (request: FastifyRequest): Promise<string> => {
    const tenant = await tenantry.router.resolve({ id: request.tenant!.id })
    return (await tenantry.dataSources.engine(tenant.placement.dataSourceId)).name
  }

  for (const [name, declaration] of Object.entries(config.collections)) {
    const collection = new Collection(name, declaration)
    const s = collection.schemas
    const base = `/data/${name}`
    const tags = [`data: ${name}`]
    const notFound = (id: unknown) => new HttpError('NOT_FOUND', `No ${name} with id ${JSON.stringify(id)}`)

    app.get(
      base,
      { schema: { tags, summary: `List ${name}: filters, search, order, cursor pages`, querystring: s.listQuery, response: { 200: s.list } } },
      async (request, reply) => {
        const query = collection.listQuery(request.query)
        const [primary, tieBreak] = collection.orderBy(query)
        const engine = await engineOf(request)
        const rows = await bounded(request, reply, true, (db) =>
          searchIndexed(request, engine, query.q, (useIndex) =>
            collection
              .select(db)
              .where(collection.where(query, engine, useIndex))
              .where(collection.after(query))
              .orderBy(primary!)
              .orderBy(tieBreak!)
              .limit(query.limit + 1)
              .execute(),
          ),
        )
        const page = rows.slice(0, query.limit)
        const nextCursor = rows.length > query.limit ? collection.cursorAfter(page.at(-1)!, query) : null
        return { items: page.map((r) => collection.fromDb(r)), nextCursor }
      },
    )

    app.get(
      `${base}/count`,
      { schema: { tags, summary: `Count ${name} matching filters and search`, querystring: s.countQuery, response: { 200: countResponse } } },
      async (request, reply) => {
        const query = collection.listQuery(request.query)
        const engine = await engineOf(request)
        const row = await bounded(request, reply, true, (db) =>
          searchIndexed(request, engine, query.q, (useIndex) =>
            db
              .selectFrom(collection.table)
              .select((eb) => eb.fn.countAll<number | string>().as('n'))
              .where(collection.where(query, engine, useIndex))
              .executeTakeFirstOrThrow(),
          ),
        )
        return { count: Number(row.n) }
      },
    )

    app.get(
      `${base}/:id`,
      { schema: { tags, summary: `One ${name} row`, params: s.idParams, querystring: noQuery, response: { 200: s.row } } },
      async (request) => {
        const { id } = request.params as { id: string | number }
        // In-process on purpose: one row through the primary key's index, which no `?q=` or
        // filter can turn into a scan, and in WAL mode a read never waits on a writer's lock, so
        // it cannot hold the event loop for long; off-loop it would cost an executor round trip
        // (two to four times the whole request's cost, see `npm run bench -- --only offloop`).
        const row = await inTenant(tenantry, request, () => collection.select(db()).where(collection.primaryKey, '=', id).executeTakeFirst())
        if (!row) throw notFound(id)
        return collection.fromDb(row)
      },
    )

    app.post(
      base,
      { schema: { tags, summary: `Create a ${name} row`, querystring: noQuery, body: s.create, response: { 201: s.row } } },
      async (request, reply) => {
        assertWritable(request)
        const values = collection.toDb(request.body as Record<string, unknown>)
        const row = await bounded(request, reply, false, (db) =>
          db.insertInto(collection.table).values(values).returning(collection.columns).executeTakeFirstOrThrow(),
        ).catch(constraintViolation)
        return reply.status(201).send(collection.fromDb(row))
      },
    )

    app.patch(
      `${base}/:id`,
      { schema: { tags, summary: `Change a ${name} row`, params: s.idParams, querystring: noQuery, body: s.update, response: { 200: s.row } } },
      async (request, reply) => {
        assertWritable(request)
        const { id } = request.params as { id: string | number }
        const values = collection.toDb(request.body)
        const row = await bounded(request, reply, false, (db) =>
          db.updateTable(collection.table).set(values).where(collection.primaryKey, '=', id).returning(collection.columns).executeTakeFirst(),
        ).catch(constraintViolation)
        if (!row) throw notFound(id)
        return collection.fromDb(row)
      },
    )

    app.delete(
      `${base}/:id`,
      { schema: { tags, summary: `Delete a ${name} row`, params: s.idParams, querystring: noQuery, response: { 204: noContent } } },
      async (request, reply) => {
        assertWritable(request)
        const { id } = request.params as { id: string | number }
        const result = await bounded(request, reply, false, (db) =>
          db.deleteFrom(collection.table).where(collection.primaryKey, '=', id).executeTakeFirst(),
        ).catch(constraintViolation)
        if (Number(result.numDeletedRows) === 0) throw notFound(id)
        return reply.status(204).send()
      },
    )

    app.post(
      `${base}/bulk`,
      {
        schema: {
          tags,
          summary: `Create up to ${BULK_MAX} ${name} rows in one transaction: all or none`,
          querystring: noQuery,
          body: s.bulkCreate,
          response: { 201: s.bulkCreated },
        },
      },
      async (request, reply) => {
        assertWritable(request)
        const values = (request.body as { items: Array<Record<string, unknown>> }).items.map((item) => collection.toDb(item))
        const rows = await bounded(request, reply, false, (db) =>
          db
            .transaction()
            .execute(async (trx) => {
              const out: Record<string, unknown>[] = []
              for (const v of values) out.push(await trx.insertInto(collection.table).values(v).returning(collection.columns).executeTakeFirstOrThrow())
              return out
            }),
        ).catch(constraintViolation)
        return reply.status(201).send({ items: rows.map((r) => collection.fromDb(r)) })
      },
    )

    app.post(
      `${base}/bulk-delete`,
      {
        schema: {
          tags,
          summary: `Delete up to ${BULK_MAX} ${name} rows by primary key`,
          querystring: noQuery,
          body: s.bulkDelete,
          response: { 200: bulkDeleted },
        },
      },
      async (request, reply) => {
        assertWritable(request)
        const { ids } = request.body as { ids: Array<string | number> }
        const result = await bounded(request, reply, false, (db) =>
          db.deleteFrom(collection.table).where(collection.primaryKey, 'in', ids).executeTakeFirst(),
        ).catch(constraintViolation)
        return { deleted: Number(result.numDeletedRows) }
      },
    )
  }
}

/**
 * Runs a list or count with the search index, and again without it when that fails (on
 * SQLite the FTS5 table may be missing, not yet made by `tenantry migrate`, or damaged by the
 * tenant's own raw SQL): the index only makes search faster, so its failure must not fail the
 * request. Deadlines, busy answers and shares (TenantryErrors) are not retried.
 * Logged at warn on every fallback: a tenant without its index should be migrated.
 */
async function searchIndexed<T>(request: FastifyRequest, engine: string, q: string | undefined, run: (useIndex: boolean) => Promise<T>): Promise<T> {
  if (q === undefined) return run(false)
  // On Postgres the narrowing names no index (a missing one only means a scan), and a failed
  // statement would have aborted the transaction anyway.
  if (engine !== 'sqlite') return run(true)
  try {
    return await run(true)
  } catch (error) {
    if (isTenantryError(error)) throw error
    request.log.warn({ err: error, tenantId: request.tenant?.id }, 'Search through the index failed; searching without it')
    return run(false)
  }
}

/**
 * "Retry shortly" answers say when: a lock held by another connection or every executor busy
 * (503 `DATABASE_BUSY`), the tenant's share of the executor taken (429). Rethrows `error`.
 */
function retryLater(error: unknown, reply: FastifyReply): never {
  if (isTenantryError(error, 'DATABASE_BUSY') || isTenantryError(error, 'CONCURRENCY_LIMITED')) {
    const seconds = error.details?.retryAfterSeconds
    void reply.header('retry-after', String(typeof seconds === 'number' ? seconds : 1))
  }
  throw error
}
