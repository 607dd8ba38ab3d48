import type { FastifyRequest } from 'fastify'
import { withRouteHook, type TenantFeature } from '../feature.js'
import { dataRoutes } from './routes.js'

export { Collection, constraintViolation, type ListQuery } from './collection.js'
export { DATA_ERROR_CODES, type DataErrorCode } from './error-codes.js'
export { searchCondition, foldSearch, type SearchIndexUse } from './search.js'
export { collectionSchemas, BULK_MAX, FILTER_OPERATORS, type CollectionSchemas } from './schemas.js'

/**
 * The data API: list, count, get, create, update, delete and bulk create/delete for each
 * collection of `server.collections`, whose schemas are built from the config at start. A
 * tenant feature: served under `/api/t/:slug/data/…` and `/api/tenant/data/…`.
 */
export const dataApi: TenantFeature = async (app, options) => {
  const { tenantry } = options
  // Quotas, checked once the body is valid and before a handler touches the tenant's data:
  // rows per bulk request, and storage where the engine does not enforce it itself (Postgres:
  // a measured size, refreshed at most every `quotas.storageCheckIntervalMs`). On SQLite the
  // database refuses a write past the storage quota (QUOTA_EXCEEDED), writing nothing.
  // On the routes that write only: a read pays nothing for it.
  const checkQuotas = async (request: FastifyRequest) => {
    const tenant = request.tenant
    if (!tenant) return
    const route = request.routeOptions.url ?? ''
    const body = request.body as { items?: unknown[]; ids?: unknown[] } | undefined
    if (route.endsWith('/bulk')) await tenantry.quotas.assertBulkRows(tenant.id, body?.items?.length ?? 0)
    else if (route.endsWith('/bulk-delete')) await tenantry.quotas.assertBulkRows(tenant.id, body?.ids?.length ?? 0)
    if (request.method !== 'DELETE' && !route.endsWith('/bulk-delete')) await tenantry.assertStorageQuota(tenant.id)
  }
  app.addHook('onRoute', (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method]
    if (methods.every((method) => method === 'GET' || method === 'HEAD')) return
    route.preHandler = withRouteHook(route.preHandler, checkQuotas)
  })
  dataRoutes(app, options)
}
