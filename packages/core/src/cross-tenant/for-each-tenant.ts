import type { Catalog, TenantRecord } from '../catalog/catalog.js'
import type { TenantStatus } from '../catalog/catalog-schema.js'
import type { Isolation } from '../engines/engine.js'
import { TenantryError } from '../errors.js'
import { SLUG_PATTERN } from '../identifiers.js'

/** Which tenants `forEachTenant` visits: narrowed in the catalog query, or a predicate over each record. */
export interface TenantFilter {
  /**
   * Tenants in these statuses. Only `ready` tenants can be entered: others the filter lets in
   * are reported `skipped`, with their status as the reason.
   * @default ['ready']
   */
  status?: readonly TenantStatus[]
  /** Tenants placed on this data source. */
  dataSource?: string
  /** Tenants with this isolation. */
  isolation?: Isolation
  /** These tenants only (a slug not found is simply absent from the results). */
  slugs?: readonly string[]
}

export interface ForEachTenantOptions<T> {
  /** Tenants run at once. @default 4 */
  concurrency?: number
  /** The tenants to visit: a `TenantFilter`, or a predicate over every ready tenant's record. @default every ready tenant */
  filter?: TenantFilter | ((tenant: TenantRecord) => boolean)
  /**
   * Stops starting tenants: those not started yet are reported `skipped` (`aborted`); those
   * running are handed the signal and finish.
   */
  signal?: AbortSignal
  /** Called as each tenant's result is known, in the order they finish (progress output). */
  onResult?: (result: TenantResult<T>) => void
}

/** One tenant's outcome: `fn`'s value, its error, or why it did not run. A run never stops at the first failure. */
export type TenantResult<T> =
  | { tenant: { id: string; slug: string }; status: 'success'; value: T }
  | { tenant: { id: string; slug: string }; status: 'error'; error: { code: string; message: string } }
  | { tenant: { id: string; slug: string }; status: 'skipped'; reason: string }

/** What `fn` is handed besides the tenant. */
export interface ForEachTenantContext {
  /** The run's `signal`, if any: a long `fn` may stop early when it aborts. */
  signal?: AbortSignal
}

export interface ForEachTenantDeps {
  catalog: Catalog
  /** Runs `fn` as the tenant (`tenantry.withTenant`): it must be ready, and `tenantry.db()` works inside. */
  withTenant<R>(tenant: { id: string }, fn: () => Promise<R>): Promise<R>
  /** @internal Tenants read per catalog page. @default TENANT_PAGE_SIZE */
  pageSize?: number
}

/** Tenants read from the catalog at a time: memory stays bounded by this, not by how many tenants there are. */
export const TENANT_PAGE_SIZE = 500

/**
 * Runs `fn` inside `withTenant` for every tenant the filter selects, at most `concurrency` at
 * once, and returns one result per tenant in id order. The catalog is read a page at a time,
 * as workers need more, so this holds a page of records, not 100,000 (plus the results; the
 * router caches the placements `withTenant` resolves, as for any call). A tenant that fails is
 * an `error` result; the others go on.
 */
export async function forEachTenant<T>(
  deps: ForEachTenantDeps,
  fn: (tenant: TenantRecord, context: ForEachTenantContext) => Promise<T>,
  options: ForEachTenantOptions<T> = {},
): Promise<Array<TenantResult<T>>> {
  if (typeof fn !== 'function') throw new TenantryError('INVALID_OPTION', 'forEachTenant needs a function to run for each tenant')
  const concurrency = options.concurrency ?? 4
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 1000) {
    throw new TenantryError('INVALID_OPTION', `concurrency must be a whole number from 1 to 1000, not ${String(concurrency)}`)
  }
  const filter: { predicate: ((tenant: TenantRecord) => boolean) | undefined; query: TenantFilter } =
    typeof options.filter === 'function' ? { predicate: options.filter, query: {} } : { predicate: undefined, query: checkFilter(options.filter ?? {}) }
  const { signal } = options
  const statuses = filter.query.status ?? ['ready']
  if (statuses.length === 0 || filter.query.slugs?.length === 0) return []

  const pages = pagesOf(deps.catalog, { ...filter.query, status: statuses }, deps.pageSize ?? TENANT_PAGE_SIZE)
  const results: Array<TenantResult<T> | undefined> = []
  const settle = (index: number, result: TenantResult<T>) => {
    results[index] = result
    options.onResult?.(result)
  }
  let next = 0
  const worker = async () => {
    // Concurrent next() calls on one async generator queue: each tenant is handed out once.
    for (let item = await pages.next(); !item.done; item = await pages.next()) {
      const tenant = item.value
      if (filter.predicate && !filter.predicate(tenant)) continue
      const index = next++
      const ref = { id: tenant.id, slug: tenant.slug }
      if (signal?.aborted) settle(index, { tenant: ref, status: 'skipped', reason: 'aborted' })
      else if (tenant.status !== 'ready') settle(index, { tenant: ref, status: 'skipped', reason: `tenant is ${tenant.status}` })
      else settle(index, await runOne(deps, tenant, fn, signal))
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
  return results.filter((r): r is TenantResult<T> => r !== undefined)
}

async function runOne<T>(
  deps: ForEachTenantDeps,
  tenant: TenantRecord,
  fn: (tenant: TenantRecord, context: ForEachTenantContext) => Promise<T>,
  signal: AbortSignal | undefined,
): Promise<TenantResult<T>> {
  const ref = { id: tenant.id, slug: tenant.slug }
  let entered = false
  try {
    const value = await deps.withTenant({ id: tenant.id }, () => {
      entered = true
      return fn(tenant, signal ? { signal } : {})
    })
    return { tenant: ref, status: 'success', value }
  } catch (error) {
    // Not entered: the tenant was suspended, deleted or moved since it was listed. That is no failure of fn's.
    if (!entered && (error instanceof TenantryError) && (error.code === 'TENANT_NOT_READY' || error.code === 'TENANT_NOT_FOUND')) {
      return { tenant: ref, status: 'skipped', reason: error.message }
    }
    return { tenant: ref, status: 'error', error: describeError(error) }
  }
}

/** Every tenant the query selects, a page at a time, in id order. */
async function* pagesOf(catalog: Catalog, filter: TenantFilter & { status: readonly TenantStatus[] }, pageSize: number): AsyncGenerator<TenantRecord> {
  let afterId: string | undefined
  for (;;) {
    const page = await catalog.tenantsPage({
      limit: pageSize,
      statuses: filter.status,
      ...(afterId !== undefined ? { afterId } : {}),
      ...(filter.dataSource !== undefined ? { dataSourceId: filter.dataSource } : {}),
      ...(filter.isolation !== undefined ? { isolation: filter.isolation } : {}),
      ...(filter.slugs ? { slugs: filter.slugs } : {}),
    })
    yield* page
    if (page.length < pageSize) return
    afterId = page[page.length - 1]!.id
  }
}

const STATUSES: readonly TenantStatus[] = ['provisioning', 'ready', 'suspended', 'moving', 'deleting', 'deleted', 'failed']
const ISOLATIONS: readonly Isolation[] = ['database', 'schema', 'row']
const FILTER_KEYS = new Set(['status', 'dataSource', 'isolation', 'slugs'])

/** A filter as given by a caller (or typed on the command line): every field checked, an unknown one refused. */
function checkFilter(filter: TenantFilter): TenantFilter {
  if (typeof filter !== 'object' || filter === null) throw new TenantryError('INVALID_OPTION', 'filter must be an object or a function')
  const unknown = Object.keys(filter).find((key) => !FILTER_KEYS.has(key))
  if (unknown) throw new TenantryError('INVALID_OPTION', `Unknown filter field ${JSON.stringify(unknown)}; use status, dataSource, isolation or slugs`)
  if (filter.status !== undefined) {
    if (!Array.isArray(filter.status)) throw new TenantryError('INVALID_OPTION', 'filter.status must be an array of statuses')
    const bad = filter.status.find((s) => !STATUSES.includes(s))
    if (bad !== undefined) throw new TenantryError('INVALID_OPTION', `Unknown tenant status ${JSON.stringify(bad)}; one of ${STATUSES.join(', ')}`)
  }
  if (filter.isolation !== undefined && !ISOLATIONS.includes(filter.isolation)) {
    throw new TenantryError('INVALID_OPTION', `Unknown isolation ${JSON.stringify(filter.isolation)}; one of ${ISOLATIONS.join(', ')}`)
  }
  if (filter.dataSource !== undefined && (typeof filter.dataSource !== 'string' || filter.dataSource === '')) {
    throw new TenantryError('INVALID_OPTION', 'filter.dataSource must be a data source id')
  }
  if (filter.slugs !== undefined) {
    if (!Array.isArray(filter.slugs)) throw new TenantryError('INVALID_OPTION', 'filter.slugs must be an array of slugs')
    const bad = filter.slugs.find((s) => typeof s !== 'string' || !SLUG_PATTERN.test(s))
    if (bad !== undefined) throw new TenantryError('INVALID_OPTION', `Invalid slug in filter.slugs: ${JSON.stringify(bad)}`)
  }
  return filter
}

/** An error as a result carries it: a stable code (Tenantry's, or the database's own) and the message. */
function describeError(error: unknown): { code: string; message: string } {
  const code = (error as { code?: unknown } | null)?.code
  return {
    code: typeof code === 'string' && code !== '' ? code : 'INTERNAL',
    message: error instanceof Error ? error.message : String(error),
  }
}
