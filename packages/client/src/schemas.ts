import { z } from 'zod'
import type { ResolvedCollection } from './declaration.js'
import { TenantryClientError } from './errors.js'
import { SEARCH_MAX_LENGTH } from './search.js'

/**
 * The local backend's validation, built from a declaration the way the server builds its own
 * (packages/server/src/data/schemas.ts): strict objects, so an undeclared field is refused by
 * name; text up to `maxLength` (10,000 by default); dates as YYYY-MM-DD; integers safe.
 */

/** Longest text accepted where a column sets no `maxLength` (the server's). */
export const DEFAULT_MAX_LENGTH = 10_000
/** Most rows one bulk call may create or delete (the server's `BULK_MAX`). */
export const BULK_MAX = 500

/** A date as the data API takes and gives it. */
export const DATE_PATTERN = /^\d{4}-\d{2}-\d{2}$/

type Column = ResolvedCollection['columns'][string]

/** What `valueSchema` reads of a column: the server's resolved config and the client's declaration both have it. */
export type ValueColumn = Pick<Column, 'type' | 'nullable'> & { maxLength?: number | undefined }

/** A value of `column` in a body or a filter. */
export function valueSchema(column: ValueColumn): z.ZodType {
  let schema: z.ZodType
  switch (column.type) {
    case 'text':
      schema = z.string().max(column.maxLength ?? DEFAULT_MAX_LENGTH)
      break
    case 'integer':
      schema = z.number().int().min(Number.MIN_SAFE_INTEGER).max(Number.MAX_SAFE_INTEGER)
      break
    case 'number':
      schema = z.number()
      break
    case 'boolean':
      schema = z.boolean()
      break
    case 'date':
      schema = z.string().regex(DATE_PATTERN, 'expected a date as YYYY-MM-DD')
      break
  }
  return column.nullable ? schema.nullable() : schema
}

export interface LocalSchemas {
  create: z.ZodType<Record<string, unknown>>
  update: z.ZodType<Record<string, unknown>>
  id: z.ZodType<string | number>
  bulkIds: z.ZodType<Array<string | number>>
}

export function localSchemas(collection: ResolvedCollection): LocalSchemas {
  const writable = Object.entries(collection.columns).filter(([, c]) => !c.generated)
  const create = z.strictObject(Object.fromEntries(writable.map(([n, c]) => [n, c.required ? valueSchema(c) : valueSchema(c).optional()])))
  const update = z
    .strictObject(Object.fromEntries(writable.map(([n, c]) => [n, valueSchema(c).optional()])))
    .refine((values) => Object.keys(values).length > 0, 'give at least one field to change')
  const key = collection.columns[collection.primaryKey]!
  const id = key.type === 'integer' ? z.number().int().safe() : z.string().max(key.maxLength ?? DEFAULT_MAX_LENGTH)
  return {
    create: create as z.ZodType<Record<string, unknown>>,
    update: update as z.ZodType<Record<string, unknown>>,
    id: id as z.ZodType<string | number>,
    bulkIds: z.array(id).min(1).max(BULK_MAX) as z.ZodType<Array<string | number>>,
  }
}

/** Parses `value` with `schema`, or throws `VALIDATION_FAILED` naming the first problem's path under `where`. */
export function parse<T>(schema: z.ZodType<T>, value: unknown, where: string): T {
  const result = schema.safeParse(value)
  if (result.success) return result.data
  const issue = result.error.issues[0]!
  const path = [where, ...issue.path.map(String)].join('.')
  throw new TenantryClientError('VALIDATION_FAILED', `${path}: ${issue.message}`)
}

/** The server's `?q=` rule: a string of at most `SEARCH_MAX_LENGTH` characters, on collections with searchable columns. */
export function searchSchema(): z.ZodType<string> {
  return z.string().max(SEARCH_MAX_LENGTH)
}
