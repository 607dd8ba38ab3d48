import type { CollectionsDeclaration } from './declaration.js'
import type { ListOptions } from './query.js'

type Row = Record<string, unknown>
type Id = string | number

/**
 * Where a client's collections live: the server's data API (`remoteBackend`) or IndexedDB
 * (`localBackend`). Both answer the same calls with the same rows, order, pages and error
 * codes; the conformance suite (`@tenantry/client/testing`) holds them to it.
 */
export interface Backend<C extends CollectionsDeclaration = CollectionsDeclaration> {
  readonly kind: 'remote' | 'local'
  /** The declarations the backend serves: the client's types come from them. */
  readonly collections: C
  list(collection: string, options: ListOptions): Promise<{ items: Row[]; nextCursor: string | null }>
  count(collection: string, options: Pick<ListOptions, 'where' | 'q'>): Promise<number>
  get(collection: string, id: Id): Promise<Row>
  create(collection: string, values: Row): Promise<Row>
  update(collection: string, id: Id, changes: Row): Promise<Row>
  delete(collection: string, id: Id): Promise<void>
  bulkCreate(collection: string, items: Row[]): Promise<Row[]>
  bulkDelete(collection: string, ids: Id[]): Promise<number>
  /** Releases what the backend holds (the IndexedDB connection). */
  close(): Promise<void>
}
