import type { FastifyInstance, FastifyRequest } from 'fastify'
import { parseDuration, type Tenantry } from 'tenantry'
import { HttpError } from '../errors.js'

interface CreateBody {
  name?: unknown
  readOnly?: unknown
  /** `30d`, `12h`, `90m`… */
  expiresIn?: unknown
}

/** Token management is for the tenant's owners and admins in person: a token cannot mint or revoke tokens. */
function requireManager(request: FastifyRequest): { slug: string; actor: string } {
  const tenant = request.tenant!
  if (request.principal?.kind !== 'user' || (tenant.role !== 'owner' && tenant.role !== 'admin')) {
    throw new HttpError(403, 'FORBIDDEN', 'Only the tenant’s owners and admins manage its tokens')
  }
  return { slug: tenant.slug, actor: `user:${request.principal.userId}` }
}

/**
 * Integration tokens of the admitted tenant (seed 000's n8n case): `GET` lists them with last
 * use, `POST` creates one and shows it once with the SQL-over-HTTP URL, `DELETE …/:id` revokes
 * one. Another tenant's token id answers 404, as if it did not exist.
 */
export function registerTokenRoutes(scope: FastifyInstance, tenantry: Tenantry, baseURL: string): void {
  const tags = ['tokens']

  scope.get('/tokens', { schema: { tags, summary: 'Integration tokens of this tenant (never their secrets)' } }, async (request) => {
    const { slug } = requireManager(request)
    return { items: await tenantry.tokens.list(slug) }
  })

  scope.post('/tokens', { schema: { tags, summary: 'Create an integration token; it is shown once' } }, async (request, reply) => {
    const { slug, actor } = requireManager(request)
    const body = (request.body ?? {}) as CreateBody
    if (body.name !== undefined && typeof body.name !== 'string') throw new HttpError(400, 'VALIDATION_FAILED', 'name must be a string')
    if (body.readOnly !== undefined && typeof body.readOnly !== 'boolean') throw new HttpError(400, 'VALIDATION_FAILED', 'readOnly must be a boolean')
    let expiresInMs: number | undefined
    if (body.expiresIn !== undefined) {
      expiresInMs = typeof body.expiresIn === 'string' ? parseDuration(body.expiresIn) : undefined
      if (expiresInMs === undefined) throw new HttpError(400, 'VALIDATION_FAILED', 'expiresIn must look like 30d, 12h or 90m')
    }
    const { token, record } = await tenantry.tokens.create(slug, {
      readOnly: body.readOnly === true,
      createdBy: actor,
      ...(typeof body.name === 'string' ? { name: body.name } : {}),
      ...(expiresInMs !== undefined ? { expiresInMs } : {}),
    })
    return reply.status(201).send({ token, record, sqlUrl: baseURL })
  })

  scope.post(
    '/postgres-readonly',
    { schema: { tags, summary: 'A Postgres URL that reads this tenant and nothing else (schema and database isolation)' } },
    async (request) => {
      const { slug, actor } = requireManager(request)
      return (await tenantry.postgresReadOnlyAccess(slug, { actor }))!
    },
  )

  scope.delete('/tokens/:id', { schema: { tags, summary: 'Revoke an integration token' } }, async (request) => {
    const { slug, actor } = requireManager(request)
    const id = (request.params as { id: string }).id
    const own = (await tenantry.tokens.list(slug)).some((t) => t.id === id)
    if (!own) throw new HttpError(404, 'NOT_FOUND', 'Token not found')
    return tenantry.tokens.revoke(id, { actor })
  })
}
