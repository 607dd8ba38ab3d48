import { HttpError } from '../errors.js'
import type { FeatureOptions, ServerFeature } from '../feature.js'
import type { Organizations } from '../tenants/organizations.js'
import { dataSourceRoutes } from './data-source-routes.js'
import { adminRoutes } from './routes.js'

export interface AdminOptions extends FeatureOptions {
  organizations: Organizations
}

/**
 * The admin API under `/api/admin`: tenants (create, show, suspend, resume, delete), the
 * migration fan-out and data sources (list, add, test, change). It takes a signed-in user, never a token, and turns
 * anyone else away before the request body is read.
 */
export const admin: ServerFeature<AdminOptions> = async (app, options) => {
  app.addHook('onRequest', async (request) => {
    if (!request.principal) throw new HttpError('UNAUTHENTICATED')
    if (request.principal.kind !== 'user') throw new HttpError('FORBIDDEN', 'The admin API takes a signed-in user, not a token')
  })
  adminRoutes(app, options)
  dataSourceRoutes(app, options)
}
