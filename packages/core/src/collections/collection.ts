import { sql, type Kysely, type SqlBool, type Expression, type ExpressionBuilder } from 'kysely'
import { TenantryError } from '../errors.js'
import type { CollectionConfig } from './declaration.js'
import { searchCondition } from './search.js'
import { collectionSchemas, FILTER_OPERATORS, type CollectionSchemas, type FilterOperator } from './schemas.js'

/** Query parameters that are not filters. */
const RESERVED_PARAMS = new Set(['limit', 'cursor', 'order', 'q'])

/** A list or count query, read from its validated parameters. */
export interface ListQuery {
  filters: Array<{ column: string; op: FilterOperator; value: unknown }>
  q?: string
  order: { column: string; direction: 'asc' | 'desc' }
  limit: number
  cursor?: { value: unknown; key: unknown }
}

/**
 * A collection declared in the config: its schemas (schemas.ts) and the SQL it runs, shared by
 * `tenantry.collection(name)` and the server's data API (see repository.ts). Every table and
 * column name used in SQL comes from the declaration (validated at start), never from input.
 */
export class Collection {
  readonly name: string
  readonly config: CollectionConfig
  readonly schemas: CollectionSchemas
  readonly #columns: string[]

  constructor(name: string, config: CollectionConfig) {
    this.name = name
    this.config = config
    this.schemas = collectionSchemas(name, config)
    this.#columns = Object.keys(config.columns)
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

  /**
   * A list (or count) query from parameters `schemas.listQuery` (or `countQuery`) already
   * validated and parsed: every key is a declared filter or a reserved parameter.
   */
  listQuery(query: Record<string, unknown>): ListQuery {
    const filters: ListQuery['filters'] = []
    for (const [key, value] of Object.entries(query)) {
      if (RESERVED_PARAMS.has(key) || value === undefined) continue
      const [, column, op = 'eq'] = /^([a-z_][a-z0-9_]*)(?:\[([a-z]+)\])?$/.exec(key)!
      filters.push({ column: column!, op: op as FilterOperator, value: this.#toDbValue(column!, value) })
    }
    const orderParam = (query.order as string | undefined) ?? this.config.defaultOrder ?? this.primaryKey
    const order = { column: orderParam.replace(/^-/, ''), direction: orderParam.startsWith('-') ? 'desc' : 'asc' } as const
    const q = query.q as string | undefined
    const cursor = query.cursor as string | undefined
    return {
      filters,
      ...(q !== undefined ? { q } : {}),
      order,
      limit: (query.limit as number | undefined) ?? Math.min(50, this.config.maxLimit),
      ...(cursor !== undefined ? { cursor: decodeCursor(cursor, order) } : {}),
    }
  }

  /** Validated body values as the database stores them (booleans as 0/1). */
  toDb(values: Record<string, unknown>): Record<string, unknown> {
    const out: Record<string, unknown> = {}
    for (const [name, value] of Object.entries(values)) if (value !== undefined) out[name] = this.#toDbValue(name, value)
    return out
  }

  /**
   * `where` for filters and search (shared by list and count). `engine` is the name of the
   * tenant's engine, which decides how `q` is matched (see `searchCondition`); `useIndex:
   * false` matches without the table's search index (when using it failed).
   */
  where(query: Pick<ListQuery, 'filters' | 'q'>, engine: string, useIndex = true) {
    return (eb: ExpressionBuilder<any, any>): Expression<SqlBool> => {
      const parts: Expression<SqlBool>[] = query.filters.map((f) =>
        f.value === null
          ? f.op === 'ne'
            ? eb(f.column, 'is not', null)
            : eb(f.column, 'is', null)
          : eb(f.column, FILTER_OPERATORS[f.op], f.value),
      )
      if (query.q !== undefined) {
        const searchable = Object.entries(this.config.columns).filter(([, c]) => c.searchable).map(([n]) => n)
        parts.push(searchCondition(engine, searchable, query.q, useIndex ? { table: this.table } : undefined))
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

  /**
   * A row as the API answers it: declared columns only, each as its declared type (booleans
   * stored as 0/1, big integers and numeric text from some drivers, dates as ISO text).
   */
  fromDb(row: Record<string, unknown>): Record<string, unknown> {
    const out: Record<string, unknown> = {}
    for (const [name, column] of Object.entries(this.config.columns)) {
      const value = row[name]
      if (value === null || value === undefined) out[name] = null
      else if (column.type === 'boolean') out[name] = Boolean(value)
      else if (column.type === 'integer' || column.type === 'number') out[name] = typeof value === 'number' ? value : Number(value)
      else out[name] = typeof value === 'string' ? value : value instanceof Date ? value.toISOString() : String(value)
    }
    return out
  }

  select(db: Kysely<any>) {
    return db.selectFrom(this.table).select(this.columns)
  }

  #toDbValue(column: string, value: unknown): unknown {
    return this.config.columns[column]!.type === 'boolean' && typeof value === 'boolean' ? (value ? 1 : 0) : value
  }
}

/** What each kind of constraint violation means, by SQLite extended code and Postgres SQLSTATE. */
const CONSTRAINT_KINDS: ReadonlyArray<[RegExp, string]> = [
  [/^(SQLITE_CONSTRAINT_FOREIGNKEY|23503)$/, 'a referenced row does not exist, or rows still refer to this one'],
  [/^(SQLITE_CONSTRAINT_(UNIQUE|PRIMARYKEY)|23505)$/, 'a value that must be unique is already taken'],
  [/^(SQLITE_CONSTRAINT_NOTNULL|23502)$/, 'a required value is missing'],
  [/^(SQLITE_CONSTRAINT_CHECK|23514)$/, 'a check of the table failed'],
]

/**
 * A write the database refused because of the table's own rules (foreign key, unique, not
 * null, check), as `CONSTRAINT_VIOLATION` (409 over HTTP): what the client sent, not a server failure.
 * Anything else is rethrown as it is.
 */
export function constraintViolation(error: unknown): never {
  const code = String((error as { code?: unknown })?.code ?? '')
  if (code.startsWith('SQLITE_CONSTRAINT') || /^23\d{3}$/.test(code)) {
    const kind = CONSTRAINT_KINDS.find(([pattern]) => pattern.test(code))?.[1]
    throw new TenantryError('CONSTRAINT_VIOLATION', kind ? `The database refused the change: ${kind}` : undefined, { cause: error })
  }
  throw error
}

function decodeCursor(raw: string, order: ListQuery['order']): ListQuery['cursor'] {
  try {
    const payload = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8')) as { o?: unknown; v?: unknown; k?: unknown }
    const expected = `${order.direction === 'desc' ? '-' : ''}${order.column}`
    const scalar = (v: unknown) => v === null || ['string', 'number'].includes(typeof v)
    if (payload.o !== expected || !scalar(payload.v) || payload.k === null || !scalar(payload.k)) throw new Error('mismatch')
    return { value: payload.v, key: payload.k }
  } catch {
    throw new TenantryError('VALIDATION_FAILED', 'querystring.cursor: not a cursor of this order')
  }
}
