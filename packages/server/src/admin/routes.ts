import type {} from '@fastify/swagger'
import { randomUUID } from 'node:crypto'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { Kysely } from 'kysely'
import { z } from 'zod'
import type { FanOutReport, TenantMigrationResult, TenantRecord, Tenantry } from 'tenantry'
import { HttpError } from '../errors.js'
import { membershipIn, membershipsOf } from '../tenants/memberships.js'

type Access = 'platform' | 'owner' | 'admin'

const invalid = (message: string) => new HttpError(400, 'VALIDATION_FAILED', message)
const notFound = () => new HttpError(404, 'TENANT_NOT_FOUND', 'Tenant not found')

const createTenantBody = z.strictObject({
  slug: z.string(),
  name: z.string().min(1).max(200).optional(),
  isolation: z.enum(['database', 'schema', 'row']).optional(),
  dataSource: z.string().optional(),
  /** Email of an existing user who becomes the tenant's owner (its organization's first member). */
  ownerEmail: z.string().email().optional(),
})

/** What a run of the fan-out has done so far; the last run stays visible until the next one starts. */
interface MigrationRun {
  id: string
  startedAt: string
  finishedAt: string | null
  results: TenantMigrationResult[]
  report: FanOutReport | null
  error: string | null
}

/** A tenant as the admin API shows it. */
function tenantView(t: TenantRecord) {
  return {
    id: t.id,
    slug: t.slug,
    name: t.name,
    status: t.status,
    statusReason: t.statusReason,
    placement: t.placement,
    createdAt: t.createdAt,
    updatedAt: t.updatedAt,
  }
}

/**
 * `/api/admin/...`: platform admins manage every tenant, the fan-out and data sources;
 * a tenant's owners and admins may see, suspend and resume their own tenant (owners may delete it).
 * A tenant the caller may not manage answers like one that does not exist.
 */
export function registerAdminRoutes(app: FastifyInstance, tenantry: Tenantry): void {
  const catalogDb = tenantry.catalog.db as unknown as Kysely<any>
  let run: MigrationRun | null = null
  let running: Promise<void> | null = null

  function requireUser(request: FastifyRequest) {
    const principal = request.principal
    if (!principal) throw new HttpError(401, 'UNAUTHENTICATED')
    if (principal.kind !== 'user') throw new HttpError(403, 'FORBIDDEN', 'The admin API takes a signed-in user, not a token')
    return principal
  }
  function requirePlatformAdmin(request: FastifyRequest) {
    const principal = requireUser(request)
    if (!principal.platformAdmin) throw new HttpError(403, 'FORBIDDEN', 'Platform admins only')
    return principal
  }
  async function tenantAccess(request: FastifyRequest, need: Access[]): Promise<{ tenant: TenantRecord; access: Access }> {
    const principal = requireUser(request)
    const slug = (request.params as { slug: string }).slug
    const tenant = /^[a-z][a-z0-9_]{1,62}$/.test(slug) ? await tenantry.catalog.findTenantBySlug(slug) : undefined
    if (!tenant) throw notFound()
    if (principal.platformAdmin) return { tenant, access: 'platform' }
    const membership = await membershipIn(catalogDb, principal.userId, tenant.id)
    if (!membership) throw notFound()
    if (membership.role === 'member' || !need.includes(membership.role)) {
      throw new HttpError(403, 'FORBIDDEN', `Needs the ${need.filter((n) => n !== 'platform').join(' or ')} role in this tenant`)
    }
    return { tenant, access: membership.role }
  }
  const actor = (request: FastifyRequest) => (request.principal?.kind === 'user' ? `user:${request.principal.userId}` : 'unknown')
  const schema = (summary: string) => ({ schema: { tags: ['admin'], summary } })

  app.get('/api/admin/tenants', schema('Tenants: all for platform admins, those you own or administer otherwise'), async (request) => {
    const principal = requireUser(request)
    const tenants = await tenantry.catalog.listTenants()
    if (principal.platformAdmin) return { tenants: tenants.map(tenantView) }
    const managed = new Set(
      (await membershipsOf(catalogDb, principal.userId)).filter((m) => m.role !== 'member').map((m) => m.tenantId),
    )
    return { tenants: tenants.filter((t) => managed.has(t.id)).map(tenantView) }
  })

  app.post('/api/admin/tenants', schema('Create a tenant (platform admins): isolation, data source, optional owner'), async (request, reply) => {
    requirePlatformAdmin(request)
    const parsed = createTenantBody.safeParse(request.body)
    if (!parsed.success) throw invalid(parsed.error.issues[0]!.message)
    const body = parsed.data
    const owner = body.ownerEmail
      ? await catalogDb.selectFrom('user').select('id').where('email', '=', body.ownerEmail.toLowerCase()).executeTakeFirst()
      : undefined
    if (body.ownerEmail && !owner) throw invalid(`No user with email ${body.ownerEmail}`)
    const tenant = await tenantry.createTenant({
      slug: body.slug,
      ...(body.name ? { name: body.name } : {}),
      ...(body.isolation ? { isolation: body.isolation } : {}),
      ...(body.dataSource ? { dataSource: body.dataSource } : {}),
      actor: actor(request),
    })
    // The tenant's organization, so members can be invited; if it cannot be written the tenant goes too.
    try {
      const organizationId = randomUUID()
      // Better Auth keeps SQLite dates as ISO text and Postgres dates as timestamps.
      const now = tenantry.catalog.engine === 'postgres' ? new Date() : new Date().toISOString()
      await catalogDb.transaction().execute(async (trx) => {
        await trx.insertInto('organization').values({ id: organizationId, name: tenant.name, slug: tenant.slug, tenantId: tenant.id, createdAt: now }).execute()
        if (owner) await trx.insertInto('member').values({ id: randomUUID(), organizationId, userId: owner.id, role: 'owner', createdAt: now }).execute()
      })
    } catch (error) {
      await tenantry.deleteTenant(tenant.slug, { purge: true, actor: actor(request) })
      throw error
    }
    return reply.status(201).send(tenantView(tenant))
  })

  app.get('/api/admin/tenants/:slug', schema('One tenant, with its audit log'), async (request) => {
    const { tenant } = await tenantAccess(request, ['owner', 'admin'])
    return { ...tenantView(tenant), auditLog: await tenantry.catalog.auditLog(tenant.id) }
  })

  app.post('/api/admin/tenants/:slug/suspend', schema('Suspend a tenant: its data is kept and no longer served'), async (request) => {
    const { tenant } = await tenantAccess(request, ['owner', 'admin'])
    return tenantView(await tenantry.tenants.suspend(tenant.slug, actor(request)))
  })

  app.post('/api/admin/tenants/:slug/resume', schema('Resume a suspended tenant'), async (request) => {
    const { tenant } = await tenantAccess(request, ['owner', 'admin'])
    return tenantView(await tenantry.tenants.resume(tenant.slug, actor(request)))
  })

  app.delete('/api/admin/tenants/:slug', schema('Delete a tenant; ?purge=true removes its data and frees its slug'), async (request) => {
    const { tenant } = await tenantAccess(request, ['owner'])
    const purgeParam = (request.query as { purge?: string }).purge
    if (purgeParam !== undefined && purgeParam !== 'true' && purgeParam !== 'false') throw invalid('purge must be true or false')
    const purge = purgeParam === 'true'
    const deleted = await tenantry.deleteTenant(tenant.slug, { purge, actor: actor(request) })
    if (purge) {
      // The slug is free again: so must be the organization that stood for it.
      const orgs = await catalogDb.selectFrom('organization').select('id').where('tenantId', '=', tenant.id).execute()
      for (const { id } of orgs) {
        await catalogDb.deleteFrom('invitation').where('organizationId', '=', id).execute()
        await catalogDb.deleteFrom('member').where('organizationId', '=', id).execute()
        await catalogDb.deleteFrom('organization').where('id', '=', id).execute()
      }
    }
    return tenantView(deleted)
  })

  app.get('/api/admin/migrations', schema('Migration status across all tenants (platform admins)'), async (request) => {
    requirePlatformAdmin(request)
    return tenantry.migrationStatus()
  })

  app.post('/api/admin/migrations/run', schema('Run the fan-out and return its report (platform admins)'), async (request) => {
    requirePlatformAdmin(request)
    const body = z.strictObject({ concurrency: z.number().int().min(1).max(64).optional() }).safeParse(request.body ?? {})
    if (!body.success) throw invalid(body.error.issues[0]!.message)
    if (running) throw new HttpError(409, 'MIGRATION_LOCKED', 'A migration run started here is still going; poll GET /api/admin/migrations/run')
    const current: MigrationRun = { id: randomUUID(), startedAt: new Date().toISOString(), finishedAt: null, results: [], report: null, error: null }
    run = current
    let report: FanOutReport | undefined
    running = (async () => {
      try {
        report = await tenantry.migrate({
          ...(body.data.concurrency ? { concurrency: body.data.concurrency } : {}),
          onResult: (result) => void current.results.push(result),
        })
        current.report = report
      } catch (error) {
        current.error = (error as Error).message
        throw error
      } finally {
        current.finishedAt = new Date().toISOString()
        running = null
      }
    })()
    await running
    return report
  })

  app.get('/api/admin/migrations/run', schema('Progress of the current (or last) fan-out run started through this server'), async (request) => {
    requirePlatformAdmin(request)
    if (!run) return { run: null }
    return { run: { ...run, running: run.finishedAt === null, done: run.results.length } }
  })

  app.get('/api/admin/data-sources', schema('Data sources (platform admins); no secrets'), async (request) => {
    requirePlatformAdmin(request)
    const sources = await tenantry.catalog.listDataSources()
    return { dataSources: sources.map(({ id, engine, mode, capacity, region, createdAt }) => ({ id, engine, mode, capacity, region, createdAt })) }
  })
}
