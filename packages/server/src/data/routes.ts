import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Kysely } from 'kysely'
import { z } from 'zod'
import { assertIdempotencyKey, CollectionRepository, isTenantryError, type CollectionRunner, type WriteOutcome } from 'tenantry'
import type { FeatureOptions, ServerInstance } from '../feature.js'
import { limitsOf } from '../rate-limits/tenant-limits.js'
import { noContent, noQuery } from '../schemas.js'
import { assertWritable, inTenant } from '../tenants/resolve-tenant.js'
import { Collection } from './collection.js'
import { rowsSerializerCompiler } from './row-serializer.js'
import { BULK_MAX, bulkDeleted, countResponse } from './schemas.js'

/**
 * The data API: seed 001's GenericRepository over HTTP, one set of routes per declared
 * collection, in a scope that has already admitted the request to its tenant. Each route only
 * parses HTTP, calls the collection's `CollectionRepository` (core: the same implementation as
 * `tenantry.collection(name)`) and maps the outcome to HTTP.
 *
 * Lists, counts and every write run through `tenantry.bounded`: on SQLite in the executor's
 * processes, never on this event loop, and everywhere under a statement deadline (the data
 * source's `bounded.statementTimeoutMs`, 2 s by default, or the tenant's own: in the catalog,
 * `tenantry.limits`, else `server.dataApi.tenants`). A scan past it answers 408 `STATEMENT_TIMEOUT`; a write that
 * waits on a lock another connection holds answers 503 `DATABASE_BUSY` with `Retry-After`.
 * Point reads by primary key stay in-process (see `CollectionRepository.findById`).
 *
 * Every write takes an `Idempotency-Key` header (1–255 printable ASCII characters): the write
 * and its entry in the tenant's write ledger commit together; the same key with the same
 * request answers the recorded status and body with `Idempotent-Replayed: true`, writing
 * nothing; with another request 422 `IDEMPOTENCY_KEY_REUSED`. Of two concurrent requests with
 * one key, one writes and the other answers its replay.
 */
export function dataRoutes(app: ServerInstance, { tenantry, config }: FeatureOptions): void {
  /** How the repository reaches the admitted tenant, for this request. */
  const runner = (request: FastifyRequest, reply: FastifyReply): CollectionRunner => ({
    bounded: <T>(fn: (db: Kysely<any>) => Promise<T>, readOnly: boolean): Promise<T> => {
      // The tenant's own deadline (catalog, cached), else the config's by slug, else the data source's.
      const deadline = async () => (request.tenant ? (await limitsOf(tenantry, config, request.tenant)).dataApiStatementTimeoutMs.value : null)
      return deadline()
        .then((statementTimeoutMs) => inTenant(tenantry, request, () => tenantry.bounded(fn, { readOnly, ...(statementTimeoutMs ? { statementTimeoutMs } : {}) })))
        .catch((error: unknown) => retryLater(error, reply))
    },
    readOne: (build, params) => inTenant(tenantry, request, () => tenantry.prepare(build).executeTakeFirst(params) as Promise<Record<string, unknown> | undefined>),
    // Both lookups are cached.
    engine: async () => {
      const tenant = await tenantry.router.resolve({ id: request.tenant!.id })
      return (await tenantry.dataSources.engine(tenant.placement.dataSourceId)).name
    },
    warn: (details, message) => request.log.warn({ ...details, tenantId: request.tenant?.id }, message),
  })
  /** The write's `Idempotency-Key`, validated, if it has one. */
  const keyOf = (request: FastifyRequest): string | undefined => {
    const raw = request.headers['idempotency-key']
    return raw === undefined ? undefined : assertIdempotencyKey(raw, 'headers.idempotency-key')
  }
  /** Answers a write's outcome: its status, its body, and whether the ledger answered it. */
  const answer = <T>(reply: FastifyReply, outcome: WriteOutcome<T>) => {
    if (outcome.replayed) void reply.header('idempotent-replayed', 'true')
    return reply.status(outcome.status).send(outcome.body)
  }

  for (const [name, declaration] of Object.entries(config.collections)) {
    const repository = new CollectionRepository(new Collection(name, declaration))
    const collection = repository.collection
    const s = collection.schemas
    const base = `/data/${name}`
    const tags = [`data: ${name}`]

    app.get(
      base,
      { schema: { tags, summary: `List ${name}: filters, search, order, cursor pages`, querystring: s.listQuery, response: { 200: s.list } }, serializerCompiler: rowsSerializerCompiler },
      async (request, reply) => ({ ...(await repository.list(runner(request, reply), collection.listQuery(request.query))) }),
    )

    app.get(
      `${base}/count`,
      { schema: { tags, summary: `Count ${name} matching filters and search`, querystring: s.countQuery, response: { 200: countResponse } } },
      async (request, reply) => ({ count: await repository.count(runner(request, reply), collection.listQuery(request.query)) }),
    )

    app.get(
      `${base}/:id`,
      { schema: { tags, summary: `One ${name} row`, params: s.idParams, querystring: noQuery, response: { 200: s.row } }, serializerCompiler: rowsSerializerCompiler },
      async (request, reply) => {
        const { id } = request.params as { id: string | number }
        const row = await repository.findById(runner(request, reply), id)
        if (!row) throw repository.notFound(id)
        return row
      },
    )

    app.post(
      base,
      { schema: { tags, summary: `Create a ${name} row`, headers: idempotencyHeaders, querystring: noQuery, body: s.create, response: { 201: s.row } } },
      async (request, reply) => {
        assertWritable(request)
        return answer(reply, await repository.create(runner(request, reply), request.body as Record<string, unknown>, keyOf(request)))
      },
    )

    app.patch(
      `${base}/:id`,
      { schema: { tags, summary: `Change a ${name} row`, headers: idempotencyHeaders, params: s.idParams, querystring: noQuery, body: s.update, response: { 200: s.row } } },
      async (request, reply) => {
        assertWritable(request)
        const { id } = request.params as { id: string | number }
        return answer(reply, await repository.update(runner(request, reply), id, request.body, keyOf(request)))
      },
    )

    app.delete(
      `${base}/:id`,
      { schema: { tags, summary: `Delete a ${name} row`, headers: idempotencyHeaders, params: s.idParams, querystring: noQuery, response: { 204: noContent } } },
      async (request, reply) => {
        assertWritable(request)
        const { id } = request.params as { id: string | number }
        return answer(reply, await repository.delete(runner(request, reply), id, keyOf(request)))
      },
    )

    app.post(
      `${base}/bulk`,
      {
        schema: {
          tags,
          summary: `Create up to ${BULK_MAX} ${name} rows in one transaction: all or none`,
          headers: idempotencyHeaders,
          querystring: noQuery,
          body: s.bulkCreate,
          response: { 201: s.bulkCreated },
        },
      },
      async (request, reply) => {
        assertWritable(request)
        const { items } = request.body as { items: Array<Record<string, unknown>> }
        return answer(reply, await repository.bulkCreate(runner(request, reply), items, keyOf(request)))
      },
    )

    app.post(
      `${base}/bulk-delete`,
      {
        schema: {
          tags,
          summary: `Delete up to ${BULK_MAX} ${name} rows by primary key`,
          headers: idempotencyHeaders,
          querystring: noQuery,
          body: s.bulkDelete,
          response: { 200: bulkDeleted },
        },
      },
      async (request, reply) => {
        assertWritable(request)
        const { ids } = request.body as { ids: Array<string | number> }
        return answer(reply, await repository.bulkDelete(runner(request, reply), ids, keyOf(request)))
      },
    )
  }
}

/**
 * The `Idempotency-Key` header of every write, for the OpenAPI document (the handler validates
 * it with core's `assertIdempotencyKey`; other headers pass through untouched).
 */
const idempotencyHeaders = z.looseObject({
  'idempotency-key': z
    .string()
    .optional()
    .describe(
      'Makes the write idempotent (1 to 255 printable ASCII characters, scoped to the tenant, kept 24 h): the same key with the same request answers the first answer again, with Idempotent-Replayed: true, and writes nothing; with a different request, 422 IDEMPOTENCY_KEY_REUSED.',
    ),
})

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
