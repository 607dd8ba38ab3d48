import type { FastifyInstance } from 'fastify'
import type { Kysely } from 'kysely'
import { z } from 'zod'
import type { Tenantry } from 'tenantry'
import type { TenantryAuth } from '../auth/index.js'
import { toFetchHeaders } from '../auth/authenticate.js'
import { HttpError } from '../errors.js'
import { membershipIn, membershipsOf } from './memberships.js'

/**
 * `/api/me`: who you are, your tenants and your active one; `POST /api/me/active-tenant`
 * switches the session's active tenant to another one you belong to.
 */
export function registerMeRoutes(app: FastifyInstance, tenantry: Tenantry, auth: TenantryAuth): void {
  const db = tenantry.catalog.db as unknown as Kysely<any>

  app.get('/api/me', { schema: { tags: ['me'], summary: 'The caller, their tenants and their active tenant' } }, async (request) => {
    const principal = request.principal
    if (!principal) throw new HttpError(401, 'UNAUTHENTICATED')
    if (principal.kind === 'token') {
      const tenant = await tenantry.catalog.findTenantById(principal.tenantId)
      return { token: { id: principal.tokenId, readOnly: principal.readOnly }, tenant: tenant && { id: tenant.id, slug: tenant.slug } }
    }
    const memberships = await membershipsOf(db, principal.userId)
    const tenants = []
    for (const m of memberships) {
      const t = await tenantry.catalog.findTenantById(m.tenantId)
      if (t && !t.purgedAt) tenants.push({ id: t.id, slug: t.slug, name: t.name, status: t.status, role: m.role })
    }
    return {
      user: { id: principal.userId, email: principal.email, platformAdmin: principal.platformAdmin },
      activeTenant: tenants.find((t) => t.id === principal.activeTenantId) ?? null,
      tenants,
    }
  })

  const switchBody = z.strictObject({ slug: z.string() })
  app.post('/api/me/active-tenant', { schema: { tags: ['me'], summary: "Switch the session's active tenant" } }, async (request) => {
    const principal = request.principal
    if (!principal) throw new HttpError(401, 'UNAUTHENTICATED')
    if (principal.kind !== 'user') throw new HttpError(403, 'FORBIDDEN', "A token's tenant is fixed")
    const body = switchBody.safeParse(request.body)
    if (!body.success) throw new HttpError(400, 'VALIDATION_FAILED', body.error.issues[0]!.message)
    const tenant = await tenantry.catalog.findTenantBySlug(body.data.slug)
    const membership = tenant && (await membershipIn(db, principal.userId, tenant.id))
    if (!tenant || !membership) throw new HttpError(404, 'TENANT_NOT_FOUND', 'Tenant not found')
    await auth.api.setActiveOrganization({ headers: toFetchHeaders(request), body: { organizationId: membership.organizationId } })
    return { activeTenant: { id: tenant.id, slug: tenant.slug, role: membership.role } }
  })
}
