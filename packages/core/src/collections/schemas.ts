import { z } from 'zod'
import type { CollectionConfig, ColumnConfig } from './declaration.js'
import { BULK_MAX, DATE_PATTERN, DEFAULT_MAX_LENGTH, SEARCH_MAX_LENGTH, valueSchema } from '@tenantry/client/semantics'

// Shared with the browser SDK's local backend: one definition of what a value may be and of the bulk bound.
export { BULK_MAX, valueSchema }

/**
 * The collections' schemas, built from `server.collections` in `tenantry.config.ts`: the same
 * objects validate `tenantry.collection(name)`'s arguments and the data API's requests,
 * serialize answers and document each collection in the OpenAPI document. Every object is strict: a column the collection does not declare (or
 * does not let clients write) is a 400 naming it.
 */

/** Comparison operators of `?column[op]=value`; plain `?column=value` is `eq`. */
export const FILTER_OPERATORS = { eq: '=', ne: '<>', gt: '>', gte: '>=', lt: '<', lte: '<=' } as const
export type FilterOperator = keyof typeof FILTER_OPERATORS

/** A value of `column` as the API answers it; `null` where the row has none. */
function outputSchema(column: ColumnConfig): z.ZodType {
  const byType = { text: z.string(), date: z.string(), integer: z.number().int(), number: z.number(), boolean: z.boolean() }
  return byType[column.type].nullable()
}

/**
 * A value of `column` in a query string (`?column=value`), parsed to its type; `null` (the
 * text) stands for SQL null on nullable columns.
 */
function queryValueSchema(column: ColumnConfig): z.ZodType<unknown, string> {
  let schema: z.ZodType<unknown, string>
  switch (column.type) {
    case 'text':
      schema = z.string().max(column.maxLength ?? DEFAULT_MAX_LENGTH)
      break
    case 'integer':
      schema = z.string().regex(/^-?\d{1,16}$/, 'expected an integer').transform(Number).pipe(z.number().int().safe())
      break
    case 'number':
      schema = z.string().regex(/^-?\d+(\.\d+)?([eE][-+]?\d+)?$/, 'expected a number').transform(Number).pipe(z.number())
      break
    case 'boolean':
      schema = z.enum(['true', 'false']).transform((v) => v === 'true')
      break
    case 'date':
      schema = z.string().regex(DATE_PATTERN, 'expected a date as YYYY-MM-DD')
      break
  }
  return column.nullable ? z.union([z.literal('null').transform(() => null), schema]) : schema
}

/** `GET /data/:collection/count` answers. */
export const countResponse = z.object({ count: z.number().int() })

/** `POST /data/:collection/bulk-delete` answers. */
export const bulkDeleted = z.object({ deleted: z.number().int().describe('Rows deleted; ids that matched nothing are not counted') })

/** The schemas of one collection. */
export interface CollectionSchemas {
  /** A row as the API answers it: the declared columns, nothing else. */
  row: z.ZodObject
  /** `POST /data/:collection`: the writable columns; required ones must be given. */
  create: z.ZodObject
  /** `PATCH /data/:collection/:id`: any writable columns, at least one. */
  update: z.ZodType<Record<string, unknown>>
  /** The `:id` path parameter, parsed to the primary key's type. */
  idParams: z.ZodObject
  /** `GET /data/:collection`: filters, search, order, page size and cursor. */
  listQuery: z.ZodObject
  /** `GET /data/:collection/count`: filters and search. */
  countQuery: z.ZodObject
  list: z.ZodObject
  bulkCreate: z.ZodObject
  bulkCreated: z.ZodObject
  bulkDelete: z.ZodObject
}

/** Builds the schemas of collection `name` from its declaration. */
export function collectionSchemas(name: string, config: CollectionConfig): CollectionSchemas {
  const columns = Object.entries(config.columns)
  const writable = columns.filter(([, c]) => !c.generated)
  const describe = (column: ColumnConfig) =>
    [column.type, column.required ? 'required' : '', column.nullable ? 'nullable' : ''].filter(Boolean).join(', ')

  const row = z.object(Object.fromEntries(columns.map(([n, c]) => [n, outputSchema(c)]))).describe(`A ${name} row`)
  const create = z
    .strictObject(Object.fromEntries(writable.map(([n, c]) => [n, (c.required ? valueSchema(c) : valueSchema(c).optional()).describe(describe(c))])))
    .describe(`A new ${name} row`)
  const changes = z.strictObject(Object.fromEntries(writable.map(([n, c]) => [n, valueSchema(c).optional().describe(describe(c))])))
  const update = changes
    .refine((values) => Object.keys(values).length > 0, 'give at least one field to change')
    .describe(`The ${name} fields to change`) as z.ZodType<Record<string, unknown>>

  const key = config.columns[config.primaryKey]!
  const id =
    key.type === 'integer'
      ? z.string().regex(/^-?\d{1,15}$/, 'expected an integer id').transform(Number)
      : z.string().max(key.maxLength ?? DEFAULT_MAX_LENGTH)
  const idParams = z.object({ id: id.describe(`The ${name} primary key (${config.primaryKey})`) })

  const filters: Record<string, z.ZodType> = {}
  for (const [n, c] of columns.filter(([, c]) => c.filterable)) {
    filters[n] = queryValueSchema(c).optional().describe(`${n} equals`)
    for (const op of Object.keys(FILTER_OPERATORS).filter((o) => o !== 'eq')) {
      filters[`${n}[${op}]`] = queryValueSchema(c).optional().describe(`${n} ${FILTER_OPERATORS[op as FilterOperator]}`)
    }
  }
  const searchable = columns.filter(([, c]) => c.searchable).map(([n]) => n)
  if (searchable.length) {
    filters.q = z
      .string()
      .max(SEARCH_MAX_LENGTH)
      .optional()
      .describe(`Text search over ${searchable.join(', ')}: rows where one of them contains it, Unicode case-insensitively; at most ${SEARCH_MAX_LENGTH} characters`)
  }
  const sortable = [config.primaryKey, ...columns.filter(([n, c]) => c.sortable && n !== config.primaryKey).map(([n]) => n)]
  const listQuery = z.strictObject({
    ...filters,
    order: z
      .enum([...sortable, ...sortable.map((c) => `-${c}`)] as [string, ...string[]])
      .optional()
      .describe(`A sortable column, - for descending; default ${config.defaultOrder ?? config.primaryKey}`),
    limit: z.coerce.number().int().min(1).max(config.maxLimit).optional().describe(`Rows per page, 1 to ${config.maxLimit}; default ${Math.min(50, config.maxLimit)}`),
    cursor: z.string().max(2000).optional().describe('nextCursor of the previous page (same order)'),
  })
  const countQuery = z.strictObject(filters)

  const list = z.object({
    items: z.array(row),
    nextCursor: z.string().nullable().describe('Give as ?cursor= for the next page; null on the last page'),
  })
  const keyValue = key.type === 'integer' ? z.number().int() : z.string()
  const bulkCreate = z.strictObject({ items: z.array(create).min(1).max(BULK_MAX).describe(`1 to ${BULK_MAX} new rows`) })
  const bulkCreated = z.object({ items: z.array(row) })
  const bulkDelete = z.strictObject({ ids: z.array(keyValue).min(1).max(BULK_MAX).describe(`1 to ${BULK_MAX} primary keys`) })
  return { row, create, update, idParams, listQuery, countQuery, list, bulkCreate, bulkCreated, bulkDelete }
}
