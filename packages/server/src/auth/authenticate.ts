import type { FastifyRequest } from 'fastify'
import type { Tenantry } from 'tenantry'
import type { Principal } from '../principal.js'
import type { Organizations } from '../tenants/organizations.js'
import { authenticateToken } from '../tokens/token-auth.js'
import { CLIENT_IP_HEADER, type TenantryAuth } from './better-auth.js'

export interface AuthenticateOptions {
  tenantry: Tenantry
  auth: TenantryAuth
  organizations: Organizations
  /** Lower-cased emails of platform admins (config + `TENANTRY_PLATFORM_ADMINS`). */
  platformAdmins: ReadonlySet<string>
}

/**
 * Fastify's incoming headers as a Fetch `Headers`, for Better Auth. The client's address goes in
 * `CLIENT_IP_HEADER`, replacing whatever the client sent there: `request.ip`, which follows
 * `X-Forwarded-For` only from proxies `server.trustProxy` trusts.
 */
export function toFetchHeaders(request: FastifyRequest): Headers {
  const headers = new Headers()
  for (const [name, value] of Object.entries(request.headers)) {
    if (value === undefined) continue
    for (const one of Array.isArray(value) ? value : [value]) headers.append(name, String(one))
  }
  headers.set(CLIENT_IP_HEADER, request.ip)
  return headers
}

/** Platform admins from the env (comma-separated emails) and the config. */
export function platformAdminSet(configured: readonly string[], env: NodeJS.ProcessEnv = process.env): Set<string> {
  const fromEnv = (env.TENANTRY_PLATFORM_ADMINS ?? '').split(',')
  return new Set([...fromEnv, ...configured].map((e) => e.trim().toLowerCase()).filter(Boolean))
}

/**
 * Who is calling: an integration token (`Authorization: Bearer tnt_…`, judged by the
 * tokens feature) or a Better Auth session (cookie). `undefined` for anonymous requests.
 * A token that is present but bad is a 401, never a fallback to the session.
 */
export async function authenticate(request: FastifyRequest, options: AuthenticateOptions): Promise<Principal | undefined> {
  const token = await authenticateToken(options.tenantry, request.headers.authorization)
  if (token) return token
  const session = await options.auth.api.getSession({ headers: toFetchHeaders(request) })
  if (!session) return undefined
  const { user } = session
  const activeOrganizationId = (session.session as { activeOrganizationId?: string | null }).activeOrganizationId
  return {
    kind: 'user',
    userId: user.id,
    email: user.email,
    // A platform admin's email must be verified: anyone can sign up claiming an unverified address.
    platformAdmin: user.emailVerified && options.platformAdmins.has(user.email.toLowerCase()),
    activeTenantId: activeOrganizationId ? ((await options.organizations.tenantIdOf(activeOrganizationId)) ?? null) : null,
  }
}
