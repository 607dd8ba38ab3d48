import { sql, type Kysely, type SqlBool, type Expression, type ExpressionBuilder } from 'kysely'
import { z } from 'zod'
import { HttpError } from '../errors.js'
import type { CollectionConfig, ColumnConfig } from '../server-config.js'

/** Comparison operators of `?column[op]=value`. */
export const FILTER_OPERATORS = { eq: '=', ne: '<>', gt: '>', gte: '>=', lt: '<', lte: '<=' } as const
type FilterOperator = keyof typeof FILTER_OPERATORS

/** Query parameters that are not filters. */
const RESERVED_PARAMS = new Set(['limit', 'cursor', 'order', 'q'])

export interface ListQuery {
  filters: Array<{ column: string; op: FilterOperator; value: unknown }>
  q?: string
  order: { column: string; direction: 'asc' | 'desc' }
  limit: number
  cursor?: { value: unknown; key: unknown }
}

const invalid = (message: string) => new HttpError(400, 'VALIDATION_FAILED', message)

function valueSchema(column: ColumnConfig): z.ZodType {
  let schema: z.ZodType
  switch (column.type) {
    case 'text':
      schema = z.string().max(column.maxLength ?? 10_000)
      break
    case 'integer':
      schema = z.number().int().min(Number.MIN_SAFE_INTEGER).max(Number.MAX_SAFE_INTEGER)
      break
    case 'number':
      schema = z.number().finite()
      break
    case 'boolean':
      schema = z.boolean()
      break
    case 'date':
      schema = z.string().regex(/^\d{4}-\d{2}-\d{2}$/, 'expected a date as YYYY-MM-DD')
      break
  }
  return column.nullable ? schema.nullable() : schema
}

/**
 * A collection declared in the config, with its validators. Every table and column name
 * used in SQL comes from the declaration (validated at start), never from the request.
 */
export class Collection {
  readonly name: string
  readonly config: CollectionConfig
  readonly createSchema: z.ZodObject
  readonly updateSchema: z.ZodObject
  readonly #columns: string[]

  constructor(name: string, config: CollectionConfig) {
    this.name = name
    this.config = config
    this.#columns = Object.keys(config.columns)
    const writable = Object.entries(config.columns).filter(([, c]) => !c.generated)
    this.createSchema = z.strictObject(
      Object.fromEntries(writable.map(([n, c]) => [n, c.required ? valueSchema(c) : valueSchema(c).optional()])),
    )
    this.updateSchema = z.strictObject(Object.fromEntries(writable.map(([n, c]) => [n, valueSchema(c).optional()])))
  }

  get table(): string {
    return this.config.table
  }

  get primaryKey(): string {
    return this.config.primaryKey
  }

  /** The declared columns, for `select`: nothing undeclared ever leaves the database. */
  get columns(): string[] {
    return this.#columns
  }

  parseCreate(body: unknown): Record<string, unknown> {
    return this.#toDb(parse(this.createSchema, body))
  }

  parseUpdate(body: unknown): Record<string, unknown> {
    const values = parse(this.updateSchema, body)
    if (Object.keys(values).length === 0) throw invalid('Give at least one field to change')
    return this.#toDb(values)
  }

  /** A primary key from a path segment. */
  parseId(raw: string): string | number {
    const column = this.config.columns[this.primaryKey]!
    if (column.type === 'integer') {
      if (!/^-?\d{1,15}$/.test(raw)) throw new HttpError(404, 'NOT_FOUND', `No ${this.name} with id ${JSON.stringify(raw)}`)
      return Number(raw)
    }
    return raw
  }

  /** Reads list parameters; anything undeclared is a 400. */
  parseListQuery(query: Record<string, unknown>): ListQuery {
    const filters: ListQuery['filters'] = []
    for (const [key, raw] of Object.entries(query)) {
      if (RESERVED_PARAMS.has(key)) continue
      const match = /^([a-z_][a-z0-9_]*)(?:\[([a-z]+)\])?$/.exec(key)
      const column = match && Object.hasOwn(this.config.columns, match[1]!) ? this.config.columns[match[1]!] : undefined
      if (!match || !column?.filterable) throw invalid(`Unknown filter "${key}"`)
      const op = (match[2] ?? 'eq') as FilterOperator
      if (!Object.hasOwn(FILTER_OPERATORS, op)) throw invalid(`Unknown operator "${match[2]}" in "${key}"`)
      if (typeof raw !== 'string') throw invalid(`Give "${key}" once`)
      filters.push({ column: match[1]!, op, value: this.#fromQuery(match[1]!, column, raw) })
    }
    const q = one(query, 'q')
    if (q !== undefined && !Object.values(this.config.columns).some((c) => c.searchable)) {
      throw invalid(`${this.name} has no searchable fields`)
    }
    const orderParam = one(query, 'order') ?? this.config.defaultOrder ?? this.primaryKey
    const orderColumn = orderParam.replace(/^-/, '')
    if (orderColumn !== this.primaryKey && !this.config.columns[orderColumn]?.sortable) {
      throw invalid(`Cannot order by "${orderColumn}"`)
    }
    const limitParam = one(query, 'limit')
    const limit = limitParam === undefined ? Math.min(50, this.config.maxLimit) : Number(limitParam)
    if (!Number.isInteger(limit) || limit < 1 || limit > this.config.maxLimit) {
      throw invalid(`limit must be an integer from 1 to ${this.config.maxLimit}`)
    }
    const order = { column: orderColumn, direction: orderParam.startsWith('-') ? 'desc' : 'asc' } as const
    const cursorParam = one(query, 'cursor')
    return {
      filters,
      ...(q !== undefined ? { q } : {}),
      order,
      limit,
      ...(cursorParam !== undefined ? { cursor: decodeCursor(cursorParam, order) } : {}),
    }
  }

  /** `where` for filters and search (shared by list and count). */
  where(query: Pick<ListQuery, 'filters' | 'q'>) {
    return (eb: ExpressionBuilder<any, any>): Expression<SqlBool> => {
      const parts: Expression<SqlBool>[] = query.filters.map((f) =>
        f.value === null
          ? f.op === 'ne'
            ? eb(f.column, 'is not', null)
            : eb(f.column, 'is', null)
          : eb(f.column, FILTER_OPERATORS[f.op], f.value),
      )
      if (query.q !== undefined) {
        const pattern = `%${query.q.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%`
        const searchable = Object.entries(this.config.columns).filter(([, c]) => c.searchable).map(([n]) => n)
        parts.push(eb.or(searchable.map((c) => sql<SqlBool>`lower(${sql.ref(c)}) like ${pattern} escape '\\'`)))
      }
      return eb.and(parts)
    }
  }

  /** Keyset condition after `cursor` for `order` (nulls first ascending, last descending, on every engine). */
  after(query: ListQuery) {
    return (eb: ExpressionBuilder<any, any>): Expression<SqlBool> => {
      const { cursor, order } = query
      if (!cursor) return eb.and([])
      const pk = this.primaryKey
      const pkNext = eb(pk, order.direction === 'asc' ? '>' : '<', cursor.key)
      if (order.column === pk) return pkNext
      const col = order.column
      if (order.direction === 'asc') {
        return cursor.value === null
          ? eb.or([eb(col, 'is not', null), eb.and([eb(col, 'is', null), pkNext])])
          : eb.or([eb(col, '>', cursor.value), eb.and([eb(col, '=', cursor.value), pkNext])])
      }
      return cursor.value === null
        ? eb.and([eb(col, 'is', null), pkNext])
        : eb.or([eb(col, '<', cursor.value), eb(col, 'is', null), eb.and([eb(col, '=', cursor.value), pkNext])])
    }
  }

  /** The order clause matching `after`. */
  orderBy(query: ListQuery) {
    const { column, direction } = query.order
    const nulls = direction === 'asc' ? sql`nulls first` : sql`nulls last`
    const primary = sql`${sql.ref(column)} ${sql.raw(direction)} ${nulls}`
    return [primary, sql`${sql.ref(this.primaryKey)} ${sql.raw(direction)}`]
  }

  cursorAfter(row: Record<string, unknown>, query: ListQuery): string {
    const payload = { o: `${query.order.direction === 'desc' ? '-' : ''}${query.order.column}`, v: row[query.order.column], k: row[this.primaryKey] }
    return Buffer.from(JSON.stringify(payload)).toString('base64url')
  }

  /** A row as the API shows it: declared columns only, booleans as booleans. */
  fromDb(row: Record<string, unknown>): Record<string, unknown> {
    const out: Record<string, unknown> = {}
    for (const [name, column] of Object.entries(this.config.columns)) {
      const value = row[name]
      out[name] = column.type === 'boolean' && value !== null && value !== undefined ? Boolean(value) : value
    }
    return out
  }

  select(db: Kysely<any>) {
    return db.selectFrom(this.table).select(this.columns)
  }

  #toDb(values: Record<string, unknown>): Record<string, unknown> {
    const out: Record<string, unknown> = {}
    for (const [name, value] of Object.entries(values)) {
      if (value === undefined) continue
      out[name] = this.config.columns[name]!.type === 'boolean' && typeof value === 'boolean' ? (value ? 1 : 0) : value
    }
    return out
  }

  #fromQuery(name: string, column: ColumnConfig, raw: string): unknown {
    if (raw === 'null' && column.nullable) return null
    let value: unknown = raw
    if (column.type === 'integer' || column.type === 'number') value = raw.trim() === '' ? Number.NaN : Number(raw)
    if (column.type === 'boolean') value = raw === 'true' ? true : raw === 'false' ? false : raw
    const result = valueSchema({ ...column, nullable: false }).safeParse(value)
    if (!result.success) throw invalid(`Filter "${name}": ${result.error.issues[0]?.message ?? 'invalid value'}`)
    return column.type === 'boolean' ? (value ? 1 : 0) : result.data
  }
}

function parse(schema: z.ZodObject, body: unknown): Record<string, unknown> {
  const result = schema.safeParse(body ?? undefined)
  if (!result.success) {
    const issue = result.error.issues[0]!
    const where = issue.path.length ? `${issue.path.join('.')}: ` : ''
    throw invalid(`${where}${issue.message}`)
  }
  return result.data as Record<string, unknown>
}

function one(query: Record<string, unknown>, key: string): string | undefined {
  const value = query[key]
  if (value === undefined) return undefined
  if (typeof value !== 'string') throw invalid(`Give "${key}" once`)
  return value
}

function decodeCursor(raw: string, order: ListQuery['order']): ListQuery['cursor'] {
  try {
    const payload = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8')) as { o?: unknown; v?: unknown; k?: unknown }
    const expected = `${order.direction === 'desc' ? '-' : ''}${order.column}`
    const scalar = (v: unknown) => v === null || ['string', 'number'].includes(typeof v)
    if (payload.o !== expected || !scalar(payload.v) || payload.k === null || !scalar(payload.k)) throw new Error('mismatch')
    return { value: payload.v, key: payload.k }
  } catch {
    throw invalid('Invalid cursor for this order')
  }
}
