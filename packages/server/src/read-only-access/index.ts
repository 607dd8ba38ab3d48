import type { TenantFeature } from '../feature.js'
import { readOnlyAccessRoutes } from './routes.js'

/**
 * Read-only access over HTTP: `POST /api/t/:slug/read-only-access` grants a login that reads
 * the tenant and nothing else (`{ role, url }`), `DELETE` revokes it. Owners and admins only.
 * A tenant feature: also served under `/api/tenant/read-only-access`.
 */
export const readOnlyAccess: TenantFeature = async (app, options) => {
  readOnlyAccessRoutes(app, options)
}
