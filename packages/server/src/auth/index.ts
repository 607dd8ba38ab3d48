import fp from 'fastify-plugin'
import type { Tenantry } from 'tenantry'
import type { ServerInstance } from '../feature.js'
import type { Organizations } from '../tenants/organizations.js'
import { HttpError } from '../errors.js'
import { authenticate } from './authenticate.js'
import type { TenantryAuth } from './better-auth.js'
import { authProviderRoutes } from './providers.js'
import { betterAuthRoutes } from './routes.js'

export { createTenantryAuth, migrateAuthSchema, trustedOrigins, OIDC_PROVIDER_ID } from './better-auth.js'
export type { TenantryAuth, TenantryAuthOptions } from './better-auth.js'
export { authenticate, platformAdminSet, toFetchHeaders, type AuthenticateOptions } from './authenticate.js'
export { AUTH_ERROR_CODES, type AuthErrorCode } from './error-codes.js'
export type { EmailMessage, EmailSender } from './email.js'

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

/** Methods that change nothing, which a cross-site request may send without harm. */
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS'])

/**
 * Sign-in: Better Auth's routes at `/api/auth/*`, and `request.principal` on every other
 * request, from an integration token or a session (see `authenticate`). Wrapped in
 * `fastify-plugin`: the principal must be known to every route of the app.
 *
 * A request that changes state on the strength of a session cookie must come from a trusted
 * origin, as Better Auth demands of its own routes: a browser attaches the cookie to a
 * cross-site request too (SameSite=Lax stops only some of them), so the cookie alone does not
 * show the user meant it. `Origin` (or, without one, `Referer`) must be one of Better Auth's
 * trusted origins, else `403 INVALID_ORIGIN` before anything runs. Integration tokens are
 * not subject to it: a browser never attaches one by itself.
 */
export const authentication = fp(
  async (app: ServerInstance, options: AuthenticationOptions) => {
    const isPublic = publicPathPattern(options.publicPaths)
    app.decorateRequest('principal', undefined)
    app.addHook('onRequest', async (request) => {
      if (isPublic.test(request.url)) return
      const principal = await authenticate(request, options)
      if (!principal) return
      if (principal.kind === 'user' && !SAFE_METHODS.has(request.method)) await assertTrustedOrigin(request, options.auth)
      request.principal = principal
    })
    await betterAuthRoutes(app, options.auth, options.baseURL)
    authProviderRoutes(app, options.auth)
  },
  { name: 'tenantry-authentication', fastify: '5.x' },
)

/**
 * `publicPaths` as one pattern over a request's URL (its query string included), built once:
 * a prefix ending in `/` matches what starts with it; any other path matches itself, what is
 * under it, and itself with a query string.
 */
export function publicPathPattern(paths: readonly string[]): RegExp {
  const escape = (path: string) => path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
  const alternatives = paths.map((path) => (path.endsWith('/') ? escape(path) : `${escape(path)}(?:[/?]|$)`))
  return new RegExp(`^(?:${alternatives.join('|')})`)
}

/** Throws `INVALID_ORIGIN` unless the request's `Origin` (or `Referer`) is one Better Auth trusts. */
async function assertTrustedOrigin(request: { headers: Record<string, string | string[] | undefined> }, auth: TenantryAuth): Promise<void> {
  const header = (name: string) => {
    const value = request.headers[name]
    return Array.isArray(value) ? value[0] : value
  }
  const claimed = header('origin') || header('referer')
  if (!claimed || claimed === 'null') throw new HttpError('INVALID_ORIGIN', 'A request signed in by cookie must carry its Origin')
  let origin: string
  try {
    origin = new URL(claimed).origin
  } catch {
    throw new HttpError('INVALID_ORIGIN')
  }
  const context = await auth.$context
  if (!context.isTrustedOrigin(origin, { allowRelativePaths: false })) throw new HttpError('INVALID_ORIGIN')
}
