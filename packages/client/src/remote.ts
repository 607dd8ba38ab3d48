import type { Backend } from './backend.js'
import type { CollectionsDeclaration } from './declaration.js'
import { tenantRequester, type Requester, type RequestOptions, type ServerTarget } from './http.js'
import { filtersOf, type ListOptions } from './query.js'

export interface RemoteBackendOptions<C extends CollectionsDeclaration> extends ServerTarget {
  /** The same declarations as the server's `server.collections`. */
  collections: C
}

type Row = Record<string, unknown>

/**
 * Collections over the server's data API, with fetch. Validation is the server's; its error
 * codes come through as they are. Every write sends an `Idempotency-Key` and is retried with
 * the same key when it failed in passing (no answer, 408, 429, 503), a few times with backoff
 * (`retry`), so a write whose answer was lost is applied once.
 */
export function remoteBackend<const C extends CollectionsDeclaration>(options: RemoteBackendOptions<C>): Backend<C> {
  const send = tenantRequester(options)
  const read = <T>(path: string, params?: URLSearchParams): Promise<T> => send<T>('GET', `/data${path}`, params ? { params } : {})
  const write = <T>(op: WriteOp) => sendWrite(send, op) as Promise<T>

  return {
    kind: 'remote',
    collections: options.collections,
    list: (collection, listOptions) => read(itemPath(collection), toParams(listOptions)),
    count: async (collection, countOptions) => (await read<{ count: number }>(itemPath(collection, undefined, '/count'), toParams(countOptions))).count,
    get: (collection, id) => read<Row>(itemPath(collection, id)),
    create: (collection, values) => write<Row>({ op: 'create', collection, values }),
    update: (collection, id, changes) => write<Row>({ op: 'update', collection, id, changes }),
    delete: async (collection, id) => {
      await write<void>({ op: 'delete', collection, id })
    },
    bulkCreate: (collection, items) => write<Row[]>({ op: 'bulkCreate', collection, items }),
    bulkDelete: (collection, ids) => write<number>({ op: 'bulkDelete', collection, ids }),
    close: async () => {},
  }
}

/** One write of the data API, as data: what the offline queue (queue.ts) keeps and replays. */
export type WriteOp =
  | { op: 'create'; collection: string; values: Row }
  | { op: 'update'; collection: string; id: string | number; changes: Row }
  | { op: 'delete'; collection: string; id: string | number }
  | { op: 'bulkCreate'; collection: string; items: Row[] }
  | { op: 'bulkDelete'; collection: string; ids: Array<string | number> }

/**
 * Sends `op` to the data API under `idempotencyKey` (a new one if not given) and answers what
 * the backend's method answers: the row, the rows, the count deleted, or nothing.
 */
export async function sendWrite(send: Requester, op: WriteOp, options: Pick<RequestOptions, 'idempotencyKey' | 'retry' | 'signal'> = {}): Promise<unknown> {
  const path = (id?: string | number, tail = '') => `/data${itemPath(op.collection, id, tail)}`
  switch (op.op) {
    case 'create':
      return send<Row>('POST', path(), { ...options, body: op.values })
    case 'update':
      return send<Row>('PATCH', path(op.id), { ...options, body: op.changes })
    case 'delete':
      await send<void>('DELETE', path(op.id), options)
      return undefined
    case 'bulkCreate':
      return (await send<{ items: Row[] }>('POST', path(undefined, '/bulk'), { ...options, body: { items: op.items } })).items
    case 'bulkDelete':
      return (await send<{ deleted: number }>('POST', path(undefined, '/bulk-delete'), { ...options, body: { ids: op.ids } })).deleted
  }
}

const itemPath = (collection: string, id?: string | number, tail = '') =>
  `/${encodeURIComponent(collection)}${id !== undefined ? `/${encodeURIComponent(String(id))}` : ''}${tail}`

/** List options as the data API's query string: `col=v`, `col[op]=v`, `null` for null, `order`, `limit`, `cursor`, `q`. */
function toParams(options: ListOptions): URLSearchParams {
  const params = new URLSearchParams()
  for (const f of filtersOf(options.where)) {
    params.append(f.op === 'eq' ? f.column : `${f.column}[${f.op}]`, f.value === null ? 'null' : String(f.value))
  }
  if (options.q !== undefined) params.set('q', options.q)
  if (options.order !== undefined) params.set('order', options.order)
  if (options.limit !== undefined) params.set('limit', String(options.limit))
  if (options.cursor !== undefined) params.set('cursor', options.cursor)
  return params
}
