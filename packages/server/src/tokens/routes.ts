import { HttpError } from '../errors.js'
import type { FeatureOptions, ServerInstance } from '../feature.js'
import { noQuery } from '../schemas.js'
import { requireTenantManager } from '../tenants/resolve-tenant.js'
import { verifiedTokens } from './verified-tokens.js'
import { createdToken, createTokenBody, tokenIdParams, tokenList, tokenRecord } from './schemas.js'

/**
 * Integration tokens of the admitted tenant (seed 000's n8n case): `GET` lists them with last
 * use, `POST` creates one and shows it once with the SQL-over-HTTP URL, `DELETE …/:id` revokes
 * one. Another tenant's token id answers 404, as if it did not exist. Owners and admins
 * only, in person: a token cannot mint or revoke tokens.
 */
export function tokenRoutes(app: ServerInstance, { tenantry, baseURL }: FeatureOptions): void {
  const tags = ['tokens']

  app.get(
    '/tokens',
    { schema: { tags, summary: 'Integration tokens of this tenant (never their secrets)', querystring: noQuery, response: { 200: tokenList } } },
    async (request) => {
      const { slug } = requireTenantManager(request, 'its tokens')
      return { items: await tenantry.tokens.list(slug) }
    },
  )

  app.post(
    '/tokens',
    {
      schema: {
        tags,
        summary: 'Create an integration token; it is shown once',
        querystring: noQuery,
        body: createTokenBody,
        response: { 201: createdToken },
      },
    },
    async (request, reply) => {
      const { slug, actor } = requireTenantManager(request, 'its tokens')
      const { name, readOnly, expiresIn } = request.body
      const { token, record } = await tenantry.tokens.create(slug, {
        readOnly: readOnly ?? false,
        createdBy: actor,
        ...(name !== undefined ? { name } : {}),
        ...(expiresIn !== undefined ? { expiresIn } : {}),
      })
      return reply.status(201).send({ token, record, sqlUrl: baseURL })
    },
  )

  app.delete(
    '/tokens/:id',
    { schema: { tags, summary: 'Revoke an integration token', params: tokenIdParams, querystring: noQuery, response: { 200: tokenRecord } } },
    async (request) => {
      const { slug, actor } = requireTenantManager(request, 'its tokens')
      const { id } = request.params
      const own = (await tenantry.tokens.list(slug)).some((t) => t.id === id)
      if (!own) throw new HttpError('TOKEN_NOT_FOUND')
      const revoked = await tenantry.tokens.revoke(id, { actor })
      // Refused from the next request on, without waiting for the cache's TTL or the change feed.
      verifiedTokens(tenantry).invalidate(id)
      return revoked
    },
  )
}
