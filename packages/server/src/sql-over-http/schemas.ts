import { z } from 'zod'
import type { HranaBatchCond } from './hrana.js'

/**
 * Hrana 2 over HTTP, JSON encoding, as `@libsql/hrana-client` sends it: every object is
 * strict, so a misspelled field is a 400 naming it rather than a statement silently run
 * without its arguments.
 */

const value = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('null') }),
  z.strictObject({ type: z.literal('integer'), value: z.string().describe('Decimal text: 64-bit integers do not fit a JSON number') }),
  z.strictObject({ type: z.literal('float'), value: z.number() }),
  z.strictObject({ type: z.literal('text'), value: z.string() }),
  z.strictObject({ type: z.literal('blob'), base64: z.string() }),
])

const stmt = z.strictObject({
  sql: z.string().optional(),
  sql_id: z.number().int().optional().describe('A text stored earlier with store_sql'),
  args: z.array(value).optional(),
  named_args: z.array(z.strictObject({ name: z.string(), value })).optional(),
  want_rows: z.boolean().optional(),
})

const step = z.number().int().min(0)
// Recursive (`not`, `and`, `or` hold conditions): named, so the OpenAPI document can refer to it.
const batchCond: z.ZodType<HranaBatchCond> = z.lazy(() =>
  z.discriminatedUnion('type', [
    z.strictObject({ type: z.literal('ok'), step }),
    z.strictObject({ type: z.literal('error'), step }),
    z.strictObject({ type: z.literal('not'), cond: batchCond }),
    z.strictObject({ type: z.literal('and'), conds: z.array(batchCond) }),
    z.strictObject({ type: z.literal('or'), conds: z.array(batchCond) }),
    z.strictObject({ type: z.literal('is_autocommit') }),
  ]),
).meta({ id: 'HranaBatchCondition' })

/** A batch's steps, as both transports take them. */
export const hranaBatch = z.strictObject({ steps: z.array(z.strictObject({ condition: batchCond.nullable().optional(), stmt })) })
/** One statement, as both transports take it. */
export const hranaStmt = stmt

const sqlRef = { sql: z.string().optional(), sql_id: z.number().int().optional() }

const request = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('close') }),
  z.strictObject({ type: z.literal('execute'), stmt }),
  z.strictObject({ type: z.literal('batch'), batch: hranaBatch }),
  z.strictObject({ type: z.literal('sequence'), ...sqlRef }),
  z.strictObject({ type: z.literal('describe'), ...sqlRef }),
  z.strictObject({ type: z.literal('store_sql'), sql_id: z.number().int(), sql: z.string() }),
  z.strictObject({ type: z.literal('close_sql'), sql_id: z.number().int() }),
  z.strictObject({ type: z.literal('get_autocommit') }),
])

/** `POST /v2/pipeline`: requests run in order on one stream; `baton` continues an open stream. */
export function pipelineBody(maxRequests: number) {
  return z.strictObject({
    baton: z.string().nullable().optional().describe('From the previous answer, to continue its stream (a transaction)'),
    requests: z.array(request).max(maxRequests).describe(`At most ${maxRequests}`),
  })
}

const hranaError = z.object({
  message: z.string(),
  code: z.string().describe("SQLite's base code (SQLITE_CONSTRAINT), as libSQL sends it, or a protocol code"),
  extended_code: z.string().optional().describe('For SQLite errors: the extended code (SQLITE_CONSTRAINT_PRIMARYKEY)'),
})

export const pipelineResponse = z.object({
  baton: z.string().nullable().describe('Continues this stream; null once it is closed'),
  base_url: z.null(),
  results: z.array(
    z.discriminatedUnion('type', [
      // The response of each request type, passed through as built: rows are not re-validated on the way out.
      z.object({ type: z.literal('ok'), response: z.looseObject({ type: z.string() }) }),
      z.object({ type: z.literal('error'), error: hranaError }),
    ]),
  ),
})

/** `POST /v3/cursor`: one batch on a stream, its results read as a cursor. */
export const cursorBody = z.strictObject({
  baton: z.string().nullable().optional().describe('From the previous answer, to continue its stream (a transaction)'),
  batch: hranaBatch,
})

/** Newline-separated JSON documents (see the route's description). */
export const cursorResponse = z.string()

/** `GET /v2`: the version probe `@libsql/client` sends before its first pipeline. */
export const versionResponse = z.object({})

/** An error as both our clients (`error`) and libSQL's (top-level `message`) read it. */
export const sqlErrorResponse = z.object({
  message: z.string(),
  code: z.string(),
  error: z.object({ code: z.string(), message: z.string() }),
})
