import fp from 'fastify-plugin'
import { HttpError } from '../errors.js'
import type { FeatureOptions, ServerInstance, TenantFeature } from '../feature.js'
import type { Organizations } from './organizations.js'
import { meRoutes } from './routes.js'
import { TENANT_PREFIXES, tenantScope } from './tenant-scope.js'

export { Organizations, tenantOrganizations, strongestRole, personalSlug, type Membership } from './organizations.js'
export { admitTenant, admitTenantHook, inTenant, assertWritable, requireTenantManager, type TenantSource, type AdmitTenantOptions } from './resolve-tenant.js'
export { TENANT_PREFIXES } from './tenant-scope.js'

export interface TenantsOptions extends FeatureOptions {
  organizations: Organizations
  /** Features served under every tenant prefix (data API, tokens, …), in order. */
  features: readonly TenantFeature[]
}

/**
 * Tenants over HTTP: `/api/me` (the caller, their tenants, switching the active one) and the
 * tenant-scoped API, each feature of `features` served under `/api/t/:slug` and `/api/tenant`
 * after the request is admitted to its tenant. Wrapped in `fastify-plugin` because it
 * declares `request.tenant` for every request (the request log line and metrics read it).
 */
export const tenants = fp(
  async (app: ServerInstance, options: TenantsOptions) => {
    app.decorateRequest('tenant', undefined)
    await app.register(async (scope: ServerInstance) => {
      // Before validation: an anonymous caller learns nothing about the body it should send.
      scope.addHook('onRequest', async (request) => {
        if (!request.principal) throw new HttpError('UNAUTHENTICATED')
      })
      meRoutes(scope, options)
    })
    for (const { prefix, source } of TENANT_PREFIXES) await tenantScope(app, { ...options, prefix, source })
  },
  { name: 'tenantry-tenants', fastify: '5.x' },
)
