import { HttpError } from '../errors.js'
import type { FeatureOptions, ServerInstance } from '../feature.js'
import { noQuery } from '../schemas.js'
import { toFetchHeaders } from '../auth/authenticate.js'
import type { Organizations } from './organizations.js'
import { meResponse, switchTenantBody, switchTenantResponse } from './schemas.js'

/**
 * `GET /api/me`: who you are, your tenants and your active one; `POST /api/me/active-tenant`
 * switches the session's active tenant to another one you belong to.
 */
export function meRoutes(app: ServerInstance, { tenantry, organizations }: FeatureOptions & { organizations: Organizations }): void {
  const tags = ['me']

  app.get(
    '/api/me',
    { schema: { tags, summary: 'The caller, their tenants and their active tenant', querystring: noQuery, response: { 200: meResponse } } },
    async (request) => {
      const principal = request.principal
      if (!principal) throw new HttpError('UNAUTHENTICATED')
      if (principal.kind === 'token') {
        const tenant = await tenantry.catalog.findTenantById(principal.tenantId)
        return { token: { id: principal.tokenId, readOnly: principal.readOnly }, tenant: tenant ? { id: tenant.id, slug: tenant.slug } : null }
      }
      const tenants = []
      for (const m of await organizations.membershipsOf(principal.userId)) {
        const t = await tenantry.catalog.findTenantById(m.tenantId)
        if (t && !t.purgedAt) tenants.push({ id: t.id, slug: t.slug, name: t.name, status: t.status, role: m.role })
      }
      return {
        user: { id: principal.userId, email: principal.email, platformAdmin: principal.platformAdmin },
        activeTenant: tenants.find((t) => t.id === principal.activeTenantId) ?? null,
        tenants,
      }
    },
  )

  app.post(
    '/api/me/active-tenant',
    { schema: { tags, summary: "Switch the session's active tenant", querystring: noQuery, body: switchTenantBody, response: { 200: switchTenantResponse } } },
    async (request) => {
      const principal = request.principal
      if (!principal) throw new HttpError('UNAUTHENTICATED')
      if (principal.kind !== 'user') throw new HttpError('FORBIDDEN', "A token's tenant is fixed")
      const tenant = await tenantry.catalog.findTenantBySlug(request.body.slug)
      const membership = tenant && (await organizations.membershipIn(principal.userId, tenant.id))
      if (!tenant || !membership) throw new HttpError('TENANT_NOT_FOUND')
      await organizations.setActive(toFetchHeaders(request), membership.organizationId)
      return { activeTenant: { id: tenant.id, slug: tenant.slug, role: membership.role } }
    },
  )
}
