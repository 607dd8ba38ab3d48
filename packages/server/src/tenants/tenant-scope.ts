import type { RouteOptions } from 'fastify'
import { z } from 'zod'
import type { FeatureOptions, ServerInstance, TenantFeature } from '../feature.js'
import { slugParam } from '../schemas.js'
import type { Organizations } from './organizations.js'
import { admitTenantHook, type TenantSource } from './resolve-tenant.js'

/** The two prefixes every tenant feature is served under, and where each finds its tenant. */
export const TENANT_PREFIXES: ReadonlyArray<{ prefix: string; source: TenantSource }> = [
  { prefix: '/api/t/:slug', source: 'path' },
  { prefix: '/api/tenant', source: 'active' },
]

export interface TenantScopeOptions extends FeatureOptions {
  organizations: Organizations
  /** The features served under each prefix, in order. */
  features: readonly TenantFeature[]
  prefix: string
  source: TenantSource
}

/**
 * One tenant prefix with its features: a request is admitted to its tenant in `onRequest`,
 * so a caller the tenant does not admit is turned away (404, as for a tenant that does not
 * exist) before its body is even read, and before validation could tell it anything.
 */
export async function tenantScope(app: ServerInstance, options: TenantScopeOptions): Promise<void> {
  const { tenantry, organizations, source, config, baseURL } = options
  await app.register(
    async (scope) => {
      scope.addHook('onRequest', admitTenantHook({ tenantry, organizations, source }))
      if (source === 'path') scope.addHook('onRoute', withSlugParam)
      for (const feature of options.features) await scope.register(feature, { tenantry, config, baseURL })
    },
    { prefix: options.prefix },
  )
}

/** Adds the prefix's `:slug` to a route's declared params, so features declare only their own. */
function withSlugParam(route: RouteOptions): void {
  if (!route.schema || route.schema.hide) return
  const declared = route.schema.params
  route.schema = {
    ...route.schema,
    params: declared instanceof z.ZodObject ? declared.extend({ slug: slugParam }) : z.object({ slug: slugParam }),
  }
}
