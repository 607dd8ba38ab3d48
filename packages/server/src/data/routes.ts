import type { FastifyRequest } from 'fastify'
import type { Kysely } from 'kysely'
import { HttpError } from '../errors.js'
import type { FeatureOptions, ServerInstance } from '../feature.js'
import { noContent, noQuery } from '../schemas.js'
import { assertWritable, inTenant } from '../tenants/resolve-tenant.js'
import { Collection, constraintViolation } from './collection.js'
import { BULK_MAX, bulkDeleted, countResponse } from './schemas.js'

/**
 * The data API: seed 001's GenericRepository over HTTP, one set of routes per declared
 * collection, in a scope that has already admitted the request to its tenant.
 */
export function dataRoutes(app: ServerInstance, { tenantry, config }: FeatureOptions): void {
  const db = () => tenantry.db<any>() as unknown as Kysely<any>
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
      async (request) => {
        const query = collection.listQuery(request.query)
        const [primary, tieBreak] = collection.orderBy(query)
        const engine = await engineOf(request)
        const rows = await inTenant(tenantry, request, () =>
          collection
            .select(db())
            .where(collection.where(query, engine))
            .where(collection.after(query))
            .orderBy(primary!)
            .orderBy(tieBreak!)
            .limit(query.limit + 1)
            .execute(),
        )
        const page = rows.slice(0, query.limit)
        const nextCursor = rows.length > query.limit ? collection.cursorAfter(page.at(-1)!, query) : null
        return { items: page.map((r) => collection.fromDb(r)), nextCursor }
      },
    )

    app.get(
      `${base}/count`,
      { schema: { tags, summary: `Count ${name} matching filters and search`, querystring: s.countQuery, response: { 200: countResponse } } },
      async (request) => {
        const query = collection.listQuery(request.query)
        const engine = await engineOf(request)
        const row = await inTenant(tenantry, request, () =>
          db()
            .selectFrom(collection.table)
            .select((eb) => eb.fn.countAll<number | string>().as('n'))
            .where(collection.where(query, engine))
            .executeTakeFirstOrThrow(),
        )
        return { count: Number(row.n) }
      },
    )

    app.get(
      `${base}/:id`,
      { schema: { tags, summary: `One ${name} row`, params: s.idParams, querystring: noQuery, response: { 200: s.row } } },
      async (request) => {
        const { id } = request.params as { id: string | number }
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
        const row = await inTenant(tenantry, request, () =>
          db().insertInto(collection.table).values(values).returning(collection.columns).executeTakeFirstOrThrow(),
        ).catch(constraintViolation)
        return reply.status(201).send(collection.fromDb(row))
      },
    )

    app.patch(
      `${base}/:id`,
      { schema: { tags, summary: `Change a ${name} row`, params: s.idParams, querystring: noQuery, body: s.update, response: { 200: s.row } } },
      async (request) => {
        assertWritable(request)
        const { id } = request.params as { id: string | number }
        const values = collection.toDb(request.body)
        const row = await inTenant(tenantry, request, () =>
          db().updateTable(collection.table).set(values).where(collection.primaryKey, '=', id).returning(collection.columns).executeTakeFirst(),
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
        const result = await inTenant(tenantry, request, () =>
          db().deleteFrom(collection.table).where(collection.primaryKey, '=', id).executeTakeFirst(),
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
        const rows = await inTenant(tenantry, request, () =>
          db()
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
      async (request) => {
        assertWritable(request)
        const { ids } = request.body as { ids: Array<string | number> }
        const result = await inTenant(tenantry, request, () =>
          db().deleteFrom(collection.table).where(collection.primaryKey, 'in', ids).executeTakeFirst(),
        ).catch(constraintViolation)
        return { deleted: Number(result.numDeletedRows) }
      },
    )
  }
}
