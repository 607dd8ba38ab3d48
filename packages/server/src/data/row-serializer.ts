import fastJson from 'fast-json-stringify'
import { serializerCompiler } from 'fastify-type-provider-zod'
import { z } from 'zod'

/**
 * The serializer of the data API's read answers (a row, a page of rows): fast-json-stringify,
 * compiled once per route from the JSON Schema of the same zod schema the route documents. It
 * writes the declared columns and nothing else, as the zod serializer did, without building a
 * checked copy of each row first (on a point read that copy cost more than the statement).
 * What it writes is the collection's own mapping of its declared columns (`Collection.fromDb`),
 * so there is nothing left to check. Any other status (the error answers) keeps the zod serializer.
 */
export function rowsSerializerCompiler(route: { schema: unknown; method: string; url: string; httpStatus?: string }): (data: unknown) => string {
  // Fastify types a route's serializer compiler with the route's whole schema; it is given the
  // schema of one response status, here always a zod schema.
  const zod = { ...route, schema: route.schema as z.ZodType }
  if (route.httpStatus !== '200') return serializerCompiler(zod)
  return fastJson(z.toJSONSchema(zod.schema, { io: 'output', target: 'draft-7' }) as Parameters<typeof fastJson>[0])
}
