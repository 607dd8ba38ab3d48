import type { TenantFeature } from '../feature.js'
import { tokenRoutes } from './routes.js'

export { authenticateToken } from './token-auth.js'

/**
 * Integration tokens of a tenant over HTTP: list, create (shown once), revoke. A tenant
 * feature: served under `/api/t/:slug/tokens` and `/api/tenant/tokens`. Verifying a token on
 * a request is `authenticateToken`, which the auth feature calls.
 */
export const tokens: TenantFeature = async (app, options) => {
  tokenRoutes(app, options)
}
