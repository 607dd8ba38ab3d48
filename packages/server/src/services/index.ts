import type { TenantFeature } from '../feature.js'
import { fileRoutes } from './files.js'
import { jobRoutes } from './jobs.js'
import { secretRoutes } from './routes.js'

/**
 * Tenant-scoped services over HTTP (issue 12): the secrets and the jobs' counts and dead letters,
 * which owners and admins manage from outside, and the files, which members and tokens upload
 * and download (the cache, state and enqueuing jobs are for the app's own server-side code and
 * have no routes). A tenant feature: served under `/api/t/:slug/…` and `/api/tenant/…`.
 */
export const services: TenantFeature = async (app, options) => {
  secretRoutes(app, options)
  jobRoutes(app, options)
  // Its own plugin: its raw-body parser must not reach the JSON routes.
  await app.register(fileRoutes, options)
}
