import { HttpError } from '../errors.js'
import type { FeatureOptions, ServerInstance } from '../feature.js'
import { noBody, noContent, noQuery } from '../schemas.js'
import { requireTenantManager } from '../tenants/resolve-tenant.js'
import { readOnlyAccessGrant, readOnlyAccessOffer } from './schemas.js'

/**
 * Read-only access to the admitted tenant's database: `POST` grants it (the same login again
 * if it exists) and answers with its URL, `DELETE` revokes it. Offered where the database
 * itself confines the login (Postgres schema and database tenants); elsewhere
 * `UNSUPPORTED_PLACEMENT` (SQLite tenants read through SQL-over-HTTP with a read-only token).
 * `GET` says which, without granting anything, so a settings page can offer the right one.
 */
export function readOnlyAccessRoutes(app: ServerInstance, { tenantry }: FeatureOptions): void {
  const tags = ['read-only access']

  app.get(
    '/read-only-access',
    {
      schema: {
        tags,
        summary: "Whether this tenant's database offers read-only access (nothing is granted); where not, why",
        querystring: noQuery,
        response: { 200: readOnlyAccessOffer },
      },
    },
    async (request) => {
      const { slug } = requireTenantManager(request, 'read-only access')
      const tenant = await tenantry.router.resolve(slug)
      const engine = await tenantry.dataSources.engine(tenant.placement.dataSourceId)
      const { isolation } = tenant.placement
      const available = engine.readOnlyAccess?.isolations.includes(isolation) ?? false
      return {
        available,
        engine: engine.name,
        isolation,
        ...(available
          ? {}
          : { reason: `${isolation} isolation on ${engine.name} offers no read-only database login: use SQL-over-HTTP with a read-only token` }),
      }
    },
  )

  app.post(
    '/read-only-access',
    {
      schema: {
        tags,
        summary: "Grant read-only access to this tenant's database: a login that reads this tenant and nothing else",
        querystring: noQuery,
        body: noBody,
        response: { 200: readOnlyAccessGrant },
      },
    },
    async (request) => {
      const { slug, actor } = requireTenantManager(request, 'read-only access')
      const grant = await tenantry.readOnlyAccess(slug, { actor })
      if (!grant) throw new HttpError('INTERNAL', 'Read-only access was granted but returned no login')
      return grant
    },
  )

  app.delete(
    '/read-only-access',
    {
      schema: {
        tags,
        summary: "Revoke read-only access to this tenant's database",
        querystring: noQuery,
        response: { 204: noContent },
      },
    },
    async (request, reply) => {
      const { slug, actor } = requireTenantManager(request, 'read-only access')
      await tenantry.readOnlyAccess(slug, { revoke: true, actor })
      return reply.status(204).send()
    },
  )
}
