import fp from 'fastify-plugin'
import type { Tenantry } from 'tenantry'
import type { ServerInstance } from '../feature.js'
import type { Organizations } from '../tenants/organizations.js'
import { authenticate } from './authenticate.js'
import type { TenantryAuth } from './better-auth.js'
import { betterAuthRoutes } from './routes.js'

export { createTenantryAuth, migrateAuthSchema, trustedOrigins, OIDC_PROVIDER_ID } from './better-auth.js'
export type { TenantryAuth, TenantryAuthOptions } from './better-auth.js'
export { authenticate, platformAdminSet, toFetchHeaders, type AuthenticateOptions } from './authenticate.js'
export { AUTH_ERROR_CODES, type AuthErrorCode } from './error-codes.js'

export interface AuthenticationOptions {
  tenantry: Tenantry
  auth: TenantryAuth
  organizations: Organizations
  /** Public URL of the server. */
  baseURL: string
  /** Lower-cased emails of platform admins (config + `TENANTRY_PLATFORM_ADMINS`). */
  platformAdmins: ReadonlySet<string>
  /**
   * Paths whose requests never carry a principal: Better Auth's own (it judges its own
   * credentials) and public ones. A prefix ending in `/` matches everything under it;
   * otherwise the path itself and what is under it.
   */
  publicPaths: readonly string[]
}

/**
 * Sign-in: Better Auth's routes at `/api/auth/*`, and `request.principal` on every other
 * request, from an integration token or a session (see `authenticate`). Wrapped in
 * `fastify-plugin`: the principal must be known to every route of the app.
 */
export const authentication = fp(
  async (app: ServerInstance, options: AuthenticationOptions) => {
    const { publicPaths } = options
    app.decorateRequest('principal', undefined)
    app.addHook('onRequest', async (request) => {
      const path = request.url.split('?')[0]!
      if (publicPaths.some((p) => (p.endsWith('/') ? path.startsWith(p) : path === p || path.startsWith(`${p}/`)))) return
      const principal = await authenticate(request, options)
      if (principal) request.principal = principal
    })
    await betterAuthRoutes(app, options.auth, options.baseURL)
  },
  { name: 'tenantry-authentication', fastify: '5.x' },
)
