import { HttpError } from '../errors.js'
import type { FeatureOptions, ServerInstance } from '../feature.js'
import { noContent, noQuery } from '../schemas.js'
import { inTenant, requireTenantManager } from '../tenants/resolve-tenant.js'
import { secretList, secretNameParams, secretRecord, setSecretBody } from './schemas.js'

/**
 * The admitted tenant's secrets (seed 002's per-tenant Stripe and Resend keys): `GET` lists
 * names and dates, `PUT …/:name` sets one, `DELETE …/:name` removes one. No route ever answers
 * with a value: reading one is for server-side code (`tenantry.secrets.get`). Owners and admins
 * only, in person: members and tokens get 403.
 */
export function secretRoutes(app: ServerInstance, { tenantry }: FeatureOptions): void {
  const tags = ['secrets']

  app.get(
    '/secrets',
    { schema: { tags, summary: 'Secrets of this tenant: names and dates, never values', querystring: noQuery, response: { 200: secretList } } },
    async (request) => {
      requireTenantManager(request, 'its secrets')
      return { items: await inTenant(tenantry, request, () => tenantry.secrets.list()) }
    },
  )

  app.put(
    '/secrets/:name',
    {
      schema: {
        tags,
        summary: 'Set a secret (create or replace); the value is never sent back',
        params: secretNameParams,
        querystring: noQuery,
        body: setSecretBody,
        response: { 200: secretRecord },
      },
    },
    async (request) => {
      const { actor } = requireTenantManager(request, 'its secrets')
      return inTenant(tenantry, request, () => tenantry.secrets.set(request.params.name, request.body.value, { actor }))
    },
  )

  app.delete(
    '/secrets/:name',
    { schema: { tags, summary: 'Remove a secret', params: secretNameParams, querystring: noQuery, response: { 204: noContent } } },
    async (request, reply) => {
      const { actor } = requireTenantManager(request, 'its secrets')
      const removed = await inTenant(tenantry, request, () => tenantry.secrets.delete(request.params.name, { actor }))
      if (!removed) throw new HttpError('NOT_FOUND', `No secret named ${JSON.stringify(request.params.name)}`)
      return reply.status(204).send()
    },
  )
}
