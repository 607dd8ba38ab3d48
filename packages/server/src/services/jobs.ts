import { z } from 'zod'
import { HttpError } from '../errors.js'
import type { FeatureOptions, ServerInstance } from '../feature.js'
import { noContent, noQuery } from '../schemas.js'
import { inTenant, requireTenantManager } from '../tenants/resolve-tenant.js'

/**
 * The admitted tenant's background jobs (`tenantry.jobs`, issue 12), for what an owner or admin
 * needs from outside the app: `GET /jobs` counts them by state, `GET /jobs/dead-letters` lists
 * the jobs out of attempts (newest first), `POST …/:id/retry` puts one back in the queue and
 * `DELETE …/:id` discards it. Owners and admins only, in person (a payload may hold what members
 * should not see): members and tokens get 403. A job id of another tenant is 404, as one that
 * does not exist: each tenant has its own queue, and only that one is looked in. Without
 * `services.jobs` in the config: 403 `JOBS_UNAVAILABLE`.
 */
export function jobRoutes(app: ServerInstance, { tenantry }: FeatureOptions): void {
  const tags = ['jobs']
  /** The caller may manage the tenant's jobs, and the server has jobs at all. */
  const guard = (request: Parameters<typeof requireTenantManager>[0]) => {
    requireTenantManager(request, 'its jobs')
    if (!tenantry.jobs.configured) throw new HttpError('JOBS_UNAVAILABLE', 'Background jobs are not configured on this server (services.jobs in tenantry.config)')
  }

  app.get(
    '/jobs',
    { schema: { tags, summary: "This tenant's jobs, counted by state", querystring: noQuery, response: { 200: jobCounts } } },
    async (request) => {
      guard(request)
      return inTenant(tenantry, request, () => tenantry.jobs.counts())
    },
  )

  app.get(
    '/jobs/dead-letters',
    {
      schema: {
        tags,
        summary: 'Jobs that ran out of attempts, newest first',
        querystring: z.strictObject({ limit: z.coerce.number().int().min(1).max(1000).optional().describe('Default 100') }),
        response: { 200: deadLetterList },
      },
    },
    async (request) => {
      guard(request)
      return { items: await inTenant(tenantry, request, () => tenantry.jobs.deadLetters({ limit: request.query.limit ?? 100 })) }
    },
  )

  app.post(
    '/jobs/dead-letters/:id/retry',
    { schema: { tags, summary: 'Put a dead letter back in the queue (its attempts start again)', params: jobIdParams, querystring: noQuery, response: { 204: noContent } } },
    async (request, reply) => {
      guard(request)
      const retried = await inTenant(tenantry, request, () => tenantry.jobs.retryDeadLetter(request.params.id))
      if (!retried) throw new HttpError('NOT_FOUND', `No dead letter with id ${request.params.id}`)
      return reply.status(204).send()
    },
  )

  app.delete(
    '/jobs/dead-letters/:id',
    { schema: { tags, summary: 'Discard a dead letter for good', params: jobIdParams, querystring: noQuery, response: { 204: noContent } } },
    async (request, reply) => {
      guard(request)
      const removed = await inTenant(tenantry, request, () => tenantry.jobs.deleteDeadLetter(request.params.id))
      if (!removed) throw new HttpError('NOT_FOUND', `No dead letter with id ${request.params.id}`)
      return reply.status(204).send()
    },
  )
}

const jobCounts = z.object({
  waiting: z.number().int().describe('Due and not yet taken'),
  delayed: z.number().int().describe('Waiting for their time: a delay, a retry backoff, or a suspended tenant'),
  active: z.number().int().describe('Running now'),
  failed: z.number().int().describe('Dead letters: out of attempts'),
})

const deadLetter = z.object({
  id: z.string(),
  name: z.string().describe('The job name given to tenantry.jobs.define'),
  payload: z.unknown(),
  attempts: z.number().int().describe('Attempts made'),
  error: z.string().describe('The last attempt’s error message'),
  failedAt: z.string(),
})
const deadLetterList = z.object({ items: z.array(deadLetter) })

/** Job ids are UUIDs (`tenantry.jobs.enqueue` makes them). */
const jobIdParams = z.object({ id: z.uuid().describe('The job id, as enqueue returned it').meta({ example: '8a6e0804-2bd0-4672-b79f-d97b0771b2fb' }) })
