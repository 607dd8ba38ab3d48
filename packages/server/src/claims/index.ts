import type { TenantFeature } from '../feature.js'
import { claimRoutes } from './routes.js'

export { CLAIM_ERROR_CODES, type ClaimErrorCode } from './error-codes.js'
export { claimsConfigSchema, type ClaimsConfig } from './claims-config.js'
export { CLAIM_ID_PATTERN } from './schemas.js'

/**
 * Claims (issue 10): a browser's local data moved into a tenant in chunks that commit as one
 * transaction (routes.ts). A tenant feature: served under `/api/t/:slug/claims/…` and
 * `/api/tenant/claims/…`, only when the config declares collections.
 */
export const claims: TenantFeature = async (app, options) => {
  if (Object.keys(options.config.collections).length === 0) return
  claimRoutes(app, options)
}
