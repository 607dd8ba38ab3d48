import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { Kysely } from 'kysely'
import { z } from 'zod'
import type { Tenantry } from 'tenantry'
import { HttpError } from '../errors.js'
import type { ServerConfig } from '../server-config.js'
import { assertWritable, inTenant } from '../tenants/resolve-tenant.js'
import { Collection } from './collection.js'

/** Most rows one bulk call may create or delete. */
export const BULK_MAX = 500

const invalid = (message: string) => new HttpError(400, 'VALIDATION_FAILED', message)
const ERROR_SCHEMA = {
  type: 'object',
  properties: { error: { type: 'object', properties: { code: { type: 'string' }, message: { type: 'string' } } } },
}

/**
 * The data API: seed 001's GenericRepository over HTTP, one set of routes per declared
 * collection, inside a scope whose `preHandler` has already admitted the tenant.
 */
export function registerDataRoutes(scope: FastifyInstance, tenantry: Tenantry, config: ServerConfig, tag: string): void {
  const db = () => tenantry.db<any>() as unknown as Kysely<any>

  for (const [name, declaration] of Object.entries(config.collections)) {
    const collection = new Collection(name, declaration)
    const base = `/data/${name}`
    const item = { type: 'object', additionalProperties: true, description: `A ${name} row` }
    const docs = (summary: string, extra: Record<string, unknown> = {}) => ({
      schema: { tags: [tag], summary, response: { '4xx': ERROR_SCHEMA }, ...extra },
    })
    const idParams = { params: { type: 'object', properties: { id: { type: 'string' } }, required: ['id'] } }
    const listQuery = {
      querystring: {
        type: 'object',
        properties: {
          limit: { type: 'integer', description: `1 to ${collection.config.maxLimit}` },
          cursor: { type: 'string', description: 'nextCursor of the previous page' },
          order: { type: 'string', description: 'a sortable column; prefix with - for descending' },
          q: { type: 'string', description: 'case-insensitive text search over the searchable columns' },
          ...Object.fromEntries(
            Object.entries(collection.config.columns)
              .filter(([, c]) => c.filterable)
              .map(([n]) => [n, { type: 'string', description: `equals; also ${n}[ne|gt|gte|lt|lte]` }]),
          ),
        },
      },
    }

    scope.get(base, docs(`List ${name}`, listQuery), async (request) => {
      const query = collection.parseListQuery(request.query as Record<string, unknown>)
      const rows = await inTenant(tenantry, request, () =>
        collection
          .select(db())
          .where(collection.where(query))
          .where(collection.after(query))
          .orderBy(collection.orderBy(query)[0]!)
          .orderBy(collection.orderBy(query)[1]!)
          .limit(query.limit + 1)
          .execute(),
      )
      const page = rows.slice(0, query.limit)
      const nextCursor = rows.length > query.limit ? collection.cursorAfter(page.at(-1)!, query) : null
      return { items: page.map((r) => collection.fromDb(r)), nextCursor }
    })

    scope.get(`${base}/count`, docs(`Count ${name}`, listQuery), async (request) => {
      const query = collection.parseListQuery(request.query as Record<string, unknown>)
      const row = await inTenant(tenantry, request, () =>
        db()
          .selectFrom(collection.table)
          .select((eb) => eb.fn.countAll<number | string>().as('n'))
          .where(collection.where(query))
          .executeTakeFirstOrThrow(),
      )
      return { count: Number(row.n) }
    })

    scope.get(`${base}/:id`, docs(`Get one ${name} row`, idParams), async (request) => {
      const id = collection.parseId((request.params as { id: string }).id)
      const row = await inTenant(tenantry, request, () =>
        collection.select(db()).where(collection.primaryKey, '=', id).executeTakeFirst(),
      )
      if (!row) throw notFound(name, id)
      return collection.fromDb(row)
    })

    scope.post(base, docs(`Create a ${name} row`, { body: item }), async (request, reply) => {
      assertWritable(request)
      const values = collection.parseCreate(request.body)
      const row = await inTenant(tenantry, request, () =>
        db().insertInto(collection.table).values(values).returning(collection.columns).executeTakeFirstOrThrow(),
      )
      return reply.status(201).send(collection.fromDb(row))
    })

    scope.patch(`${base}/:id`, docs(`Change a ${name} row`, { ...idParams, body: item }), async (request) => {
      assertWritable(request)
      const id = collection.parseId((request.params as { id: string }).id)
      const values = collection.parseUpdate(request.body)
      const row = await inTenant(tenantry, request, () =>
        db()
          .updateTable(collection.table)
          .set(values)
          .where(collection.primaryKey, '=', id)
          .returning(collection.columns)
          .executeTakeFirst(),
      )
      if (!row) throw notFound(name, id)
      return collection.fromDb(row)
    })

    scope.delete(`${base}/:id`, docs(`Delete a ${name} row`, idParams), async (request, reply) => {
      assertWritable(request)
      const id = collection.parseId((request.params as { id: string }).id)
      const result = await inTenant(tenantry, request, () =>
        db().deleteFrom(collection.table).where(collection.primaryKey, '=', id).executeTakeFirst(),
      )
      if (Number(result.numDeletedRows) === 0) throw notFound(name, id)
      return reply.status(204).send()
    })

    const bulkCreate = z.strictObject({ items: z.array(z.unknown()).min(1).max(BULK_MAX) })
    scope.post(`${base}/bulk`, docs(`Create up to ${BULK_MAX} ${name} rows in one transaction`, { body: item }), async (request, reply) => {
      assertWritable(request)
      const { items } = parseBody(bulkCreate, request)
      const values = items.map((one, i) => {
        try {
          return collection.parseCreate(one)
        } catch (error) {
          throw error instanceof HttpError ? invalid(`items.${i}: ${error.message}`) : error
        }
      })
      const rows = await inTenant(tenantry, request, () =>
        db()
          .transaction()
          .execute(async (trx) => {
            const out: Record<string, unknown>[] = []
            for (const v of values) out.push(await trx.insertInto(collection.table).values(v).returning(collection.columns).executeTakeFirstOrThrow())
            return out
          }),
      )
      return reply.status(201).send({ items: rows.map((r) => collection.fromDb(r)) })
    })

    const bulkDelete = z.strictObject({ ids: z.array(z.union([z.string(), z.number()])).min(1).max(BULK_MAX) })
    scope.post(`${base}/bulk-delete`, docs(`Delete up to ${BULK_MAX} ${name} rows by id`, { body: item }), async (request) => {
      assertWritable(request)
      const ids = parseBody(bulkDelete, request).ids.map((id) => collection.parseId(String(id)))
      const result = await inTenant(tenantry, request, () =>
        db().deleteFrom(collection.table).where(collection.primaryKey, 'in', ids).executeTakeFirst(),
      )
      return { deleted: Number(result.numDeletedRows) }
    })
  }
}

function parseBody<T>(schema: z.ZodType<T>, request: FastifyRequest): T {
  const result = schema.safeParse(request.body)
  if (!result.success) {
    const issue = result.error.issues[0]!
    throw invalid(`${issue.path.join('.') || 'body'}: ${issue.message}`)
  }
  return result.data
}

function notFound(collection: string, id: unknown): HttpError {
  return new HttpError(404, 'NOT_FOUND', `No ${collection} with id ${JSON.stringify(id)}`)
}
