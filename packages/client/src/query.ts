import { FILTER_OPERATORS, type FilterOperator, type ResolvedCollection } from './declaration.js'
import { TenantryClientError } from './errors.js'
import { parse, searchSchema, valueSchema } from './schemas.js'

/** Options of `list` and `count` as the backends receive them (untyped: the typed face is `CollectionClient`). */
export interface ListOptions {
  where?: Record<string, unknown>
  q?: string
  order?: string
  limit?: number
  cursor?: string
}

export interface Filter {
  column: string
  op: FilterOperator
  value: unknown
}

/** A list (or count) query with the declaration's defaults applied and every part validated. */
export interface ListQuery {
  filters: Filter[]
  q?: string
  order: { column: string; direction: 'asc' | 'desc' }
  limit: number
  cursor?: { value: unknown; key: unknown }
}

const invalid = (message: string) => new TenantryClientError('VALIDATION_FAILED', message)

/** The filters of `where`: a bare value is `eq`, an object holds operators. */
export function filtersOf(where: Record<string, unknown> | undefined): Filter[] {
  const filters: Filter[] = []
  for (const [column, spec] of Object.entries(where ?? {})) {
    if (spec === undefined) continue
    if (spec !== null && typeof spec === 'object' && !Array.isArray(spec)) {
      for (const [op, value] of Object.entries(spec)) {
        if (!(FILTER_OPERATORS as readonly string[]).includes(op)) throw invalid(`where.${column}.${op}: not an operator (use ${FILTER_OPERATORS.join(', ')})`)
        if (value !== undefined) filters.push({ column, op: op as FilterOperator, value })
      }
    } else filters.push({ column, op: 'eq', value: spec })
  }
  return filters
}

/**
 * Validates list options against the declaration as the server validates its query string:
 * filters on filterable columns only, typed values, `q` only where columns are searchable,
 * `order` on sortable columns, `limit` within `maxLimit`, a cursor of the same order.
 */
export function listQuery(collection: ResolvedCollection, options: ListOptions, kind: 'list' | 'count' = 'list'): ListQuery {
  const filters = filtersOf(options.where)
  for (const f of filters) {
    const column = collection.columns[f.column]
    if (!column?.filterable) throw invalid(`where.${f.column}: not a filterable column of ${collection.name}`)
    // Stored as the server stores them: booleans compare as 0/1.
    f.value = parse(valueSchema(column), f.value, `where.${f.column}`)
  }
  let q: string | undefined
  if (options.q !== undefined) {
    if (!Object.values(collection.columns).some((c) => c.searchable)) throw invalid(`q: ${collection.name} has no searchable columns`)
    q = parse(searchSchema(), options.q, 'q')
  }
  if (kind === 'count') {
    if (options.order !== undefined || options.limit !== undefined || options.cursor !== undefined) {
      throw invalid('count takes only where and q')
    }
  }
  const orderParam = options.order ?? collection.defaultOrder
  const order = { column: orderParam.replace(/^-/, ''), direction: orderParam.startsWith('-') ? 'desc' : 'asc' } as const
  if (order.column !== collection.primaryKey && !collection.columns[order.column]?.sortable) {
    throw invalid(`order: "${orderParam}" is not a sortable column of ${collection.name}`)
  }
  const limit = options.limit ?? Math.min(50, collection.maxLimit)
  if (!Number.isInteger(limit) || limit < 1 || limit > collection.maxLimit) throw invalid(`limit: a whole number from 1 to ${collection.maxLimit}`)
  return {
    filters,
    ...(q !== undefined ? { q } : {}),
    order,
    limit,
    ...(options.cursor !== undefined ? { cursor: decodeCursor(options.cursor, order) } : {}),
  }
}

/** `a` before `b` (negative), after (positive) or equal, as SQLite's binary collation orders text and numbers. */
export function compareValues(a: unknown, b: unknown): number {
  if (typeof a === 'string' && typeof b === 'string') {
    // By code point (UTF-8 byte order), not by UTF-16 unit as `<` would.
    const n = Math.min(a.length, b.length)
    for (let i = 0; i < n; i++) {
      const x = a.codePointAt(i)!
      const y = b.codePointAt(i)!
      if (x !== y) return x < y ? -1 : 1
      if (x > 0xffff) i++
    }
    return Math.sign(a.length - b.length)
  }
  const x = typeof a === 'boolean' ? Number(a) : (a as number)
  const y = typeof b === 'boolean' ? Number(b) : (b as number)
  return x < y ? -1 : x > y ? 1 : 0
}

/** Whether `value` (a row's) passes filter `f`, with SQL's null rules: a comparison with null is never true. */
export function passes(value: unknown, f: Filter): boolean {
  if (f.value === null) return f.op === 'ne' ? value !== null && value !== undefined : value === null || value === undefined
  if (value === null || value === undefined) return false
  const c = compareValues(value, f.value)
  switch (f.op) {
    case 'eq':
      return c === 0
    case 'ne':
      return c !== 0
    case 'gt':
      return c > 0
    case 'gte':
      return c >= 0
    case 'lt':
      return c < 0
    case 'lte':
      return c <= 0
  }
}

/**
 * The order of `list`, as the server's `orderBy`: the order column (nulls first ascending,
 * last descending), then the primary key in the same direction.
 */
export function comparator(query: Pick<ListQuery, 'order'>, primaryKey: string) {
  const { column, direction } = query.order
  const sign = direction === 'asc' ? 1 : -1
  return (a: Record<string, unknown>, b: Record<string, unknown>): number => {
    const x = a[column] ?? null
    const y = b[column] ?? null
    let c: number
    if (x === null || y === null) c = x === y ? 0 : x === null ? -1 : 1
    else c = compareValues(x, y)
    if (c !== 0) return sign * c
    return sign * compareValues(a[primaryKey], b[primaryKey])
  }
}

/** The cursor after `row`: the server's format (base64url JSON of order, value, key), so either backend reads it. */
export function cursorAfter(row: Record<string, unknown>, query: Pick<ListQuery, 'order'>, primaryKey: string): string {
  const value = row[query.order.column]
  const payload = { o: `${query.order.direction === 'desc' ? '-' : ''}${query.order.column}`, v: typeof value === 'boolean' ? Number(value) : (value ?? null), k: row[primaryKey] }
  const bytes = new TextEncoder().encode(JSON.stringify(payload))
  let binary = ''
  for (const b of bytes) binary += String.fromCharCode(b)
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '')
}

function decodeCursor(raw: string, order: ListQuery['order']): ListQuery['cursor'] {
  try {
    if (raw.length > 2000) throw new Error('too long')
    const binary = atob(raw.replace(/-/g, '+').replace(/_/g, '/'))
    const payload = JSON.parse(new TextDecoder().decode(Uint8Array.from(binary, (c) => c.charCodeAt(0)))) as { o?: unknown; v?: unknown; k?: unknown }
    const expected = `${order.direction === 'desc' ? '-' : ''}${order.column}`
    const scalar = (v: unknown) => v === null || ['string', 'number'].includes(typeof v)
    if (payload.o !== expected || !scalar(payload.v) || payload.k === null || !scalar(payload.k)) throw new Error('mismatch')
    return { value: payload.v, key: payload.k }
  } catch {
    throw invalid('querystring.cursor: not a cursor of this order')
  }
}
