import type { TenantFeature } from '../feature.js'
import { dataRoutes } from './routes.js'

export { Collection, constraintViolation, type ListQuery } from './collection.js'
export { DATA_ERROR_CODES, type DataErrorCode } from './error-codes.js'
export { collectionSchemas, BULK_MAX, FILTER_OPERATORS, type CollectionSchemas } from './schemas.js'

/**
 * The data API: list, count, get, create, update, delete and bulk create/delete for each
 * collection of `server.collections`, whose schemas are built from the config at start. A
 * tenant feature: served under `/api/t/:slug/data/…` and `/api/tenant/data/…`.
 */
export const dataApi: TenantFeature = async (app, options) => {
  dataRoutes(app, options)
}
