import type { z } from 'zod'
import { TenantryError } from '../errors.js'
import type { Collection } from './collection.js'
import { FILTER_OPERATORS } from './schemas.js'
import { assertIdempotencyKey } from './idempotency.js'
import type { CollectionRepository, CollectionRunner, Page } from './repository.js'

/**
 * `tenantry.collection(name)`: a declared collection of the tenant in context, in-process, with
 * the data API's semantics (it runs the same `CollectionRepository`): the same validation and
 * messages, the same codes as `TenantryError`s, the same bounded execution, the same
 * idempotency keys. Every call must run inside `withTenant`.
 *
 * @example
 * await tenantry.withTenant('acme', async () => {
 *   const jobs = tenantry.collection<Job>('jobs')
 *   const job = await jobs.create({ company: 'Acme', title: 'CTO', start_date: '2020-01-01' }, { idempotencyKey: 'import-42' })
 *   const { items, nextCursor } = await jobs.findMany({ where: { start_date: { gte: '2015-01-01' } }, orderBy: '-start_date', limit: 20 })
 * })
 */

/** A filter value: equality (a bare value, `null` for SQL null), or operators. */
export type WhereValue = string | number | boolean | null | Partial<Record<keyof typeof FILTER_OPERATORS, string | number | boolean | null>>

/** `findMany`'s parameters; each is validated as the data API validates its query string. */
export interface FindManyParams {
  /** Filters on filterable columns: `{ company: 'Acme', start_date: { gte: '2015-01-01' } }`. */
  where?: Record<string, WhereValue | undefined>
  /** Text search over the searchable columns. */
  q?: string
  /** A sortable column, `-` for descending (`order` is the data API's name of the same). */
  orderBy?: string
  order?: string
  limit?: number
  /** `nextCursor` of the previous page, same order. */
  cursor?: string
}

/** `count`'s parameters. */
export type CountParams = Pick<FindManyParams, 'where' | 'q'>

/** Options of a write. */
export interface WriteOptions {
  /** 1 to 255 printable ASCII characters: the same key with the same write again returns the first answer and writes nothing. */
  idempotencyKey?: string
}

type Id = string | number

export class TenantCollection<Row extends Record<string, unknown> = Record<string, unknown>, Create = Partial<Row>> {
  readonly #repository: CollectionRepository
  readonly #run: () => CollectionRunner

  constructor(repository: CollectionRepository, run: () => CollectionRunner) {
    this.#repository = repository
    this.#run = run
  }

  get name(): string {
    return this.#collection.name
  }

  get #collection(): Collection {
    return this.#repository.collection
  }

  async create(values: Create, opts: WriteOptions = {}): Promise<Row> {
    const key = keyOf(opts)
    const valid = parse(this.#collection.schemas.create, values, 'body')
    return (await this.#repository.create(this.#run(), valid, key)).body as Row
  }

  /** The row, or undefined when there is none. */
  async findById(id: Id): Promise<Row | undefined> {
    return (await this.#repository.findById(this.#run(), this.#id(id))) as Row | undefined
  }

  /** The row, or `NOT_FOUND`. */
  async get(id: Id): Promise<Row> {
    const found = await this.findById(id)
    if (!found) throw this.#repository.notFound(id)
    return found
  }

  async findMany(params: FindManyParams = {}): Promise<Page<Row>> {
    const query = parse(this.#collection.schemas.listQuery, toQuery(params, 'list'), 'querystring')
    return (await this.#repository.list(this.#run(), this.#collection.listQuery(query))) as Page<Row>
  }

  /** `findMany` with `q`. */
  search(q: string, params: Omit<FindManyParams, 'q'> = {}): Promise<Page<Row>> {
    return this.findMany({ ...params, q })
  }

  /** Every page of `findMany(params)`, following the cursors; `for await (const page of …)`. */
  async *paginate(params: Omit<FindManyParams, 'cursor'> = {}): AsyncGenerator<Row[], void, undefined> {
    let cursor: string | null | undefined
    do {
      const page: Page<Row> = await this.findMany({ ...params, ...(cursor ? { cursor } : {}) })
      if (page.items.length > 0) yield page.items
      cursor = page.nextCursor
    } while (cursor)
  }

  async count(params: CountParams = {}): Promise<number> {
    const query = parse(this.#collection.schemas.countQuery, toQuery(params, 'count'), 'querystring')
    return this.#repository.count(this.#run(), this.#collection.listQuery(query))
  }

  async update(id: Id, changes: Partial<Create>, opts: WriteOptions = {}): Promise<Row> {
    const key = keyOf(opts)
    const valid = parse(this.#collection.schemas.update, changes, 'body')
    return (await this.#repository.update(this.#run(), this.#id(id), valid, key)).body as Row
  }

  async delete(id: Id, opts: WriteOptions = {}): Promise<void> {
    const key = keyOf(opts)
    await this.#repository.delete(this.#run(), this.#id(id), key)
  }

  /** Up to 500 rows in one transaction: all or none. */
  async bulkCreate(items: Create[], opts: WriteOptions = {}): Promise<Row[]> {
    const key = keyOf(opts)
    const valid = parse(this.#collection.schemas.bulkCreate, { items }, 'body') as { items: Array<Record<string, unknown>> }
    return (await this.#repository.bulkCreate(this.#run(), valid.items, key)).body.items as Row[]
  }

  /** Up to 500 ids; answers how many rows were deleted (ids that matched nothing are not counted). */
  async bulkDelete(ids: Id[], opts: WriteOptions = {}): Promise<number> {
    const key = keyOf(opts)
    const valid = parse(this.#collection.schemas.bulkDelete, { ids }, 'body') as { ids: Id[] }
    return (await this.#repository.bulkDelete(this.#run(), valid.ids, key)).body.deleted
  }

  /** An id as the data API reads it from its path (`:id`): the key's type, validated alike. */
  #id(id: Id): Id {
    return (parse(this.#collection.schemas.idParams, { id: String(id) }, 'params') as { id: Id }).id
  }
}

function keyOf(opts: WriteOptions): string | undefined {
  return opts.idempotencyKey === undefined ? undefined : assertIdempotencyKey(opts.idempotencyKey, 'opts.idempotencyKey')
}

/**
 * Parameters as the data API's query string, which `listQuery`/`countQuery` validate: `col=v`,
 * `col[op]=v`, `null` for null (as `@tenantry/client`'s remote backend sends them), so both
 * faces accept and refuse exactly the same.
 */
function toQuery(params: FindManyParams, kind: 'list' | 'count'): Record<string, string> {
  const query: Record<string, string> = {}
  const text = (v: unknown) => (v === null ? 'null' : String(v))
  for (const [column, spec] of Object.entries(params.where ?? {})) {
    if (spec === undefined) continue
    if (spec !== null && typeof spec === 'object' && !Array.isArray(spec)) {
      for (const [op, value] of Object.entries(spec)) {
        if (!(op in FILTER_OPERATORS)) {
          throw new TenantryError('VALIDATION_FAILED', `where.${column}.${op}: not an operator (use ${Object.keys(FILTER_OPERATORS).join(', ')})`)
        }
        if (value !== undefined) query[op === 'eq' ? column : `${column}[${op}]`] = text(value)
      }
    } else query[column] = text(spec)
  }
  if (params.q !== undefined) query.q = params.q
  if (kind === 'list') {
    const order = params.orderBy ?? params.order
    if (order !== undefined) query.order = order
    if (params.limit !== undefined) query.limit = String(params.limit)
    if (params.cursor !== undefined) query.cursor = params.cursor
  }
  return query
}

/** `value` parsed by `schema`, else `VALIDATION_FAILED` with the data API's message (see `zodMessage`). */
export function parse<T>(schema: z.ZodType<T>, value: unknown, context: string): T {
  const result = schema.safeParse(value)
  if (!result.success) throw new TenantryError('VALIDATION_FAILED', zodMessage(result.error.issues, context))
  return result.data
}

/** `body: unknown field "salary"; body.title: Invalid input: …`: the server's wording of the same issues. */
export function zodMessage(issues: readonly z.core.$ZodIssue[], context: string): string {
  const parts = issues.map((issue) => {
    const where = [context, ...issue.path.map(String)].join('.')
    if (issue.code === 'unrecognized_keys') {
      const keys = issue.keys
      return `${where}: unknown field${keys.length > 1 ? 's' : ''} ${keys.map((k) => JSON.stringify(String(k))).join(', ')}`
    }
    return `${where}: ${issue.message}`
  })
  return parts.length ? parts.join('; ') : 'The request is invalid'
}
