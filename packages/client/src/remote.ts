import type { Backend } from './backend.js'
import type { CollectionsDeclaration } from './declaration.js'
import { TenantryClientError } from './errors.js'
import { filtersOf, type ListOptions } from './query.js'

export interface RemoteBackendOptions<C extends CollectionsDeclaration> {
  /** The same declarations as the server's `server.collections`. */
  collections: C
  /** The server's origin (and path prefix, if any), e.g. `https://api.example.com`. */
  baseUrl: string
  /**
   * The tenant's slug: calls go to `/api/t/<slug>/data/…`. Without one, to the caller's active
   * tenant (`/api/tenant/data/…`: the session's active one, or a token's own).
   */
  tenant?: string
  /**
   * An integration token sent as `Authorization: Bearer …`. Without one, the session cookie is
   * sent (`credentials: 'include'`): an app on another origin needs it in the server's
   * `server.cors.origins`.
   */
  token?: string | (() => string | undefined | Promise<string | undefined>)
  /** @default globalThis.fetch */
  fetch?: typeof fetch
}

type Row = Record<string, unknown>

/** Collections over the server's data API, with fetch. Validation is the server's; its error codes come through as they are. */
export function remoteBackend<const C extends CollectionsDeclaration>(options: RemoteBackendOptions<C>): Backend<C> {
  const doFetch = options.fetch ?? globalThis.fetch.bind(globalThis)
  const root = `${options.baseUrl.replace(/\/+$/, '')}${options.tenant !== undefined ? `/api/t/${encodeURIComponent(options.tenant)}` : '/api/tenant'}/data`

  const request = async <T>(method: string, path: string, body?: unknown, params?: URLSearchParams): Promise<T> => {
    const token = typeof options.token === 'function' ? await options.token() : options.token
    const headers: Record<string, string> = { accept: 'application/json' }
    if (body !== undefined) headers['content-type'] = 'application/json'
    if (token) headers.authorization = `Bearer ${token}`
    const query = params?.toString() ? `?${params}` : ''
    let response: Response
    try {
      response = await doFetch(`${root}${path}${query}`, {
        method,
        headers,
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        credentials: token ? 'omit' : 'include',
      })
    } catch (error) {
      throw new TenantryClientError('NETWORK_ERROR', `The server could not be reached: ${(error as Error).message}`, 0, { cause: error })
    }
    if (response.status === 204) return undefined as T
    const text = await response.text()
    let parsed: unknown
    try {
      parsed = text ? JSON.parse(text) : undefined
    } catch {
      parsed = undefined
    }
    if (!response.ok) {
      const error = (parsed as { error?: { code?: unknown; message?: unknown } } | undefined)?.error
      const code = typeof error?.code === 'string' ? error.code : `HTTP_${response.status}`
      const message = typeof error?.message === 'string' ? error.message : `The server answered ${response.status}`
      throw new TenantryClientError(code, message, response.status)
    }
    return parsed as T
  }

  const itemPath = (collection: string, id?: string | number, tail = '') =>
    `/${encodeURIComponent(collection)}${id !== undefined ? `/${encodeURIComponent(String(id))}` : ''}${tail}`

  return {
    kind: 'remote',
    collections: options.collections,
    list: (collection, listOptions) => request('GET', itemPath(collection), undefined, toParams(listOptions)),
    count: async (collection, countOptions) =>
      (await request<{ count: number }>('GET', itemPath(collection, undefined, '/count'), undefined, toParams(countOptions))).count,
    get: (collection, id) => request<Row>('GET', itemPath(collection, id)),
    create: (collection, values) => request<Row>('POST', itemPath(collection), values),
    update: (collection, id, changes) => request<Row>('PATCH', itemPath(collection, id), changes),
    delete: async (collection, id) => {
      await request<void>('DELETE', itemPath(collection, id))
    },
    bulkCreate: async (collection, items) => (await request<{ items: Row[] }>('POST', itemPath(collection, undefined, '/bulk'), { items })).items,
    bulkDelete: async (collection, ids) => (await request<{ deleted: number }>('POST', itemPath(collection, undefined, '/bulk-delete'), { ids })).deleted,
    close: async () => {},
  }
}

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
