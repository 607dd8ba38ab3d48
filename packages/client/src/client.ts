import type { Backend } from './backend.js'
import type { CollectionDeclaration, CollectionsDeclaration, CreateOf, IdOf, OrderOf, RowOf, UpdateOf, WhereOf } from './declaration.js'

/** A page of `list`: give `nextCursor` as `cursor` for the next one (same order); `null` on the last. */
export interface Page<R> {
  items: R[]
  nextCursor: string | null
}

export interface ListParams<D extends CollectionDeclaration> {
  where?: WhereOf<D>
  /** Unicode case-insensitive substring over the searchable columns (at most 200 characters). */
  q?: string
  /** @default the declaration's `defaultOrder`, else the primary key */
  order?: OrderOf<D>
  /** @default min(50, maxLimit) */
  limit?: number
  cursor?: string
}

/** One collection, typed from its declaration. */
export interface CollectionClient<D extends CollectionDeclaration> {
  list(params?: ListParams<D>): Promise<Page<RowOf<D>>>
  count(params?: Pick<ListParams<D>, 'where' | 'q'>): Promise<number>
  get(id: IdOf<D>): Promise<RowOf<D>>
  create(values: CreateOf<D>): Promise<RowOf<D>>
  update(id: IdOf<D>, changes: UpdateOf<D>): Promise<RowOf<D>>
  delete(id: IdOf<D>): Promise<void>
  /** Up to 500 rows in one transaction: all or none. */
  bulkCreate(items: CreateOf<D>[]): Promise<RowOf<D>[]>
  /** Up to 500 ids; answers how many rows were deleted (ids that matched nothing are not counted). */
  bulkDelete(ids: IdOf<D>[]): Promise<number>
}

export interface TenantryClient<C extends CollectionsDeclaration> {
  readonly backend: Backend<C>
  collection<N extends keyof C & string>(name: N): CollectionClient<C[N]>
  close(): Promise<void>
}

export interface CreateClientOptions<C extends CollectionsDeclaration> {
  /** `remoteBackend(…)` (the server's data API) or `localBackend(…)` (IndexedDB). */
  backend: Backend<C>
}

/**
 * A typed client over a backend. The same calls work on either backend, so an app can keep an
 * anonymous user's data in the browser and a signed-in user's on the server with one code path.
 *
 * @example
 * const client = createClient({ backend: localBackend({ collections }) })
 * const job = await client.collection('jobs').create({ company: 'Acme', title: 'CTO', start_date: '2020-01-01' })
 */
export function createClient<C extends CollectionsDeclaration>(options: CreateClientOptions<C>): TenantryClient<C> {
  const { backend } = options
  return {
    backend,
    collection<N extends keyof C & string>(name: N): CollectionClient<C[N]> {
      type D = C[N]
      const strip = <T extends object>(params: T) => Object.fromEntries(Object.entries(params).filter(([, v]) => v !== undefined))
      return {
        list: (params = {}) => backend.list(name, strip(params)) as Promise<Page<RowOf<D>>>,
        count: (params = {}) => backend.count(name, strip(params)),
        get: (id) => backend.get(name, id as string | number) as Promise<RowOf<D>>,
        create: (values) => backend.create(name, values as Record<string, unknown>) as Promise<RowOf<D>>,
        update: (id, changes) => backend.update(name, id as string | number, changes as Record<string, unknown>) as Promise<RowOf<D>>,
        delete: (id) => backend.delete(name, id as string | number),
        bulkCreate: (items) => backend.bulkCreate(name, items as Record<string, unknown>[]) as Promise<RowOf<D>[]>,
        bulkDelete: (ids) => backend.bulkDelete(name, ids as Array<string | number>),
      }
    },
    close: () => backend.close(),
  }
}
