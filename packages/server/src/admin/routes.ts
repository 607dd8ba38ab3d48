import { randomUUID } from 'node:crypto'
import type { FastifyRequest } from 'fastify'
import { SLUG_PATTERN, type FanOutReport, type TenantBackup, type TenantMigrationResult, type TenantRecord } from 'tenantry'
import { HttpError } from '../errors.js'
import type { FeatureOptions, ServerInstance } from '../feature.js'
import { noBody, noQuery } from '../schemas.js'
import { effectiveLimits } from '../rate-limits/tenant-limits.js'
import type { Organizations } from '../tenants/organizations.js'
import {
  createTenantBody,
  deleteTenantQuery,
  erasedView,
  backupList,
  backupView,
  restoreBody,
  restoredView,
  fanOutReport,
  limitsView,
  migrationRun,
  migrationStatus,
  putLimitsBody,
  putQuotasBody,
  quotasView,
  runMigrationsBody,
  slugParams,
  tenantList,
  tenantView,
  tenantWithAuditLog,
  usageQuery,
  usageView,
  maintenanceBody,
  moveResultView,
  moveTenantBody,
} from './schemas.js'

type Access = 'platform' | 'owner' | 'admin'

/** What a run of the fan-out has done so far; the last run stays visible until the next one starts. */
interface MigrationRun {
  id: string
  startedAt: string
  finishedAt: string | null
  /** Tenants behind when the run started: what `results` counts towards. */
  total: number | null
  results: TenantMigrationResult[]
  report: FanOutReport | null
  error: string | null
}

/** A tenant as the admin API shows it. */
function view(t: TenantRecord) {
  return {
    id: t.id,
    slug: t.slug,
    name: t.name,
    status: t.status,
    statusReason: t.statusReason,
    externalId: t.externalId,
    placement: t.placement,
    createdAt: t.createdAt,
    updatedAt: t.updatedAt,
  }
}

/** The signed-in user making the request (the admin plugin's hook has turned everyone else away). */
export function userOf(request: FastifyRequest) {
  const principal = request.principal
  if (principal?.kind !== 'user') throw new HttpError('UNAUTHENTICATED')
  return principal
}

export const actor = (request: FastifyRequest) => `user:${userOf(request).userId}`

/** A route hook: platform admins only. */
export async function requirePlatformAdmin(request: FastifyRequest): Promise<void> {
  if (!userOf(request).platformAdmin) throw new HttpError('FORBIDDEN', 'Platform admins only')
}

/**
 * `/api/admin/...`: platform admins manage every tenant, the fan-out and data sources; a
 * tenant's owners and admins may see, suspend and resume their own tenant (owners may delete
 * it). A tenant the caller may not manage answers like one that does not exist. Data sources:
 * data-source-routes.ts.
 */
export function adminRoutes(app: ServerInstance, { tenantry, config, organizations }: FeatureOptions & { organizations: Organizations }): void {
  const tags = ['admin']
  let run: MigrationRun | null = null
  let running: Promise<void> | null = null
  const platformOnly = { onRequest: requirePlatformAdmin }

  async function tenantAccess(request: FastifyRequest, slug: string, need: Access[]): Promise<{ tenant: TenantRecord; access: Access }> {
    const principal = userOf(request)
    const tenant = SLUG_PATTERN.test(slug) ? await tenantry.catalog.findTenantBySlug(slug) : undefined
    if (!tenant) throw new HttpError('TENANT_NOT_FOUND')
    if (principal.platformAdmin) return { tenant, access: 'platform' }
    const membership = await organizations.membershipIn(principal.userId, tenant.id)
    if (!membership) throw new HttpError('TENANT_NOT_FOUND')
    if (membership.role === 'member' || !need.includes(membership.role)) {
      throw new HttpError('FORBIDDEN', `Needs the ${need.filter((n) => n !== 'platform').join(' or ')} role in this tenant`)
    }
    return { tenant, access: membership.role }
  }

  app.get(
    '/api/admin/tenants',
    { schema: { tags, summary: 'Tenants: all for platform admins, those you own or administer otherwise', querystring: noQuery, response: { 200: tenantList } } },
    async (request) => {
      const principal = userOf(request)
      const tenants = await tenantry.catalog.listTenants()
      if (principal.platformAdmin) return { tenants: tenants.map(view) }
      const managed = new Set((await organizations.membershipsOf(principal.userId)).filter((m) => m.role !== 'member').map((m) => m.tenantId))
      return { tenants: tenants.filter((t) => managed.has(t.id)).map(view) }
    },
  )

  app.post(
    '/api/admin/tenants',
    {
      ...platformOnly,
      schema: {
        tags,
        summary: 'Create a tenant (platform admins): isolation, data source, optional owner',
        querystring: noQuery,
        body: createTenantBody,
        response: { 201: tenantView },
      },
    },
    async (request, reply) => {
      const body = request.body
      const ownerId = body.ownerEmail ? await organizations.userIdByEmail(body.ownerEmail) : undefined
      if (body.ownerEmail && !ownerId) throw new HttpError('VALIDATION_FAILED', `body.ownerEmail: no user with email ${body.ownerEmail}`)
      const tenant = await tenantry.createTenant({
        slug: body.slug,
        ...(body.name ? { name: body.name } : {}),
        ...(body.isolation ? { isolation: body.isolation } : {}),
        ...(body.dataSource ? { dataSource: body.dataSource } : {}),
        actor: actor(request),
      })
      // The tenant's organization, so members can be invited; if it cannot be written the tenant goes too.
      try {
        await organizations.createForTenant(tenant, ownerId)
      } catch (error) {
        await tenantry.deleteTenant(tenant.slug, { purge: true, actor: actor(request) })
        throw error
      }
      return reply.status(201).send(view(tenant))
    },
  )

  app.get(
    '/api/admin/tenants/:slug',
    { schema: { tags, summary: 'One tenant, with its audit log', params: slugParams, querystring: noQuery, response: { 200: tenantWithAuditLog } } },
    async (request) => {
      const { tenant } = await tenantAccess(request, request.params.slug, ['owner', 'admin'])
      return { ...view(tenant), auditLog: await tenantry.catalog.auditLog(tenant.id) }
    },
  )

  app.post(
    '/api/admin/tenants/:slug/suspend',
    {
      schema: { tags, summary: 'Suspend a tenant: its data is kept and no longer served', params: slugParams, querystring: noQuery, body: noBody, response: { 200: tenantView } },
    },
    async (request) => {
      const { tenant } = await tenantAccess(request, request.params.slug, ['owner', 'admin'])
      return view(await tenantry.tenants.suspend(tenant.slug, actor(request)))
    },
  )

  app.post(
    '/api/admin/tenants/:slug/resume',
    { schema: { tags, summary: 'Resume a suspended tenant', params: slugParams, querystring: noQuery, body: noBody, response: { 200: tenantView } } },
    async (request) => {
      const { tenant } = await tenantAccess(request, request.params.slug, ['owner', 'admin'])
      return view(await tenantry.tenants.resume(tenant.slug, actor(request)))
    },
  )

  app.delete(
    '/api/admin/tenants/:slug',
    {
      schema: {
        tags,
        summary: 'Delete a tenant (owners and platform admins); ?purge=true removes its data and frees its slug',
        params: slugParams,
        querystring: deleteTenantQuery,
        response: { 200: tenantView },
      },
    },
    async (request) => {
      const { tenant } = await tenantAccess(request, request.params.slug, ['owner'])
      const { purge } = request.query
      const deleted = await tenantry.deleteTenant(tenant.slug, { purge, actor: actor(request) })
      // The slug is free again: so must be the organization that stood for it.
      if (purge) await organizations.removeForTenant(tenant.id)
      return view(deleted)
    },
  )

  app.post(
    '/api/admin/tenants/:slug/erase',
    {
      ...platformOnly,
      schema: {
        tags,
        summary: 'Erase a tenant for good (GDPR, platform admins): its data, files, cache, jobs, tokens, state, secrets, organization and memberships, and its audit details; one tenant.erased audit entry without personal data remains',
        params: slugParams,
        querystring: noQuery,
        body: noBody,
        response: { 200: erasedView },
      },
    },
    async (request) => tenantry.tenants.erase(request.params.slug, { actor: actor(request) }),
  )

  app.post(
    '/api/admin/tenants/:slug/move',
    {
      ...platformOnly,
      schema: {
        tags,
        summary: 'Move a tenant live to another data source or isolation (platform admins): reads served throughout, writes paused for about a second at most; the old copy is removed once row counts and checksums match',
        params: slugParams,
        querystring: noQuery,
        body: moveTenantBody,
        response: { 200: moveResultView },
      },
    },
    async (request) =>
      tenantry.tenants.move(request.params.slug, {
        dataSource: request.body.dataSource,
        actor: actor(request),
        ...(request.body.isolation ? { isolation: request.body.isolation } : {}),
      }),
  )

  app.post(
    '/api/admin/tenants/:slug/maintenance',
    {
      schema: {
        tags,
        summary: "Maintenance mode on (readOnly: true: reads served, writes answered 503 TENANT_MAINTENANCE with the message) or off",
        params: slugParams,
        querystring: noQuery,
        body: maintenanceBody,
        response: { 200: tenantView },
      },
    },
    async (request) => {
      const { tenant } = await tenantAccess(request, request.params.slug, ['owner', 'admin'])
      const { readOnly, message } = request.body
      return view(await tenantry.tenants.maintenance(tenant.slug, { readOnly, actor: actor(request), ...(message !== undefined ? { message } : {}) }))
    },
  )

  /** A backup as the API shows it: its file's path stays on the server. */
  const backupOf = ({ location: _location, ...backup }: TenantBackup) => backup

  app.post(
    '/api/admin/tenants/:slug/backups',
    {
      schema: {
        tags,
        summary: "Back up a tenant's database while it keeps serving (platform admins, its owners and admins)",
        params: slugParams,
        querystring: noQuery,
        body: noBody,
        response: { 201: backupView },
      },
    },
    async (request, reply) => {
      const { tenant } = await tenantAccess(request, request.params.slug, ['owner', 'admin'])
      reply.code(201)
      return backupOf(await tenantry.tenants.backup(tenant.slug, { actor: actor(request) }))
    },
  )

  app.get(
    '/api/admin/tenants/:slug/backups',
    { schema: { tags, summary: "A tenant's backups, newest first (platform admins, its owners and admins)", params: slugParams, querystring: noQuery, response: { 200: backupList } } },
    async (request) => {
      const { tenant } = await tenantAccess(request, request.params.slug, ['owner', 'admin'])
      const restorable = await tenantry.tenants.restorableWindow(tenant.slug)
      return { backups: (await tenantry.tenants.backups(tenant.slug)).map(backupOf), ...(restorable ? { restorable } : {}) }
    },
  )

  app.post(
    '/api/admin/tenants/:slug/restore',
    {
      schema: {
        tags,
        summary: "Restore one of a tenant's backups, or (`at`) its state at a time: in place (platform admins and its owners; atomic, other tenants untouched) or `as` a new tenant (platform admins)",
        params: slugParams,
        querystring: noQuery,
        body: restoreBody,
        response: { 200: restoredView },
      },
    },
    async (request) => {
      const { tenant, access } = await tenantAccess(request, request.params.slug, ['owner'])
      const { backup, at, as } = request.body
      // A restore as a new tenant creates one: only those who may create tenants.
      if (as !== undefined && access !== 'platform') throw new HttpError('FORBIDDEN', 'Restoring as a new tenant creates one: platform admins only')
      const result = await tenantry.tenants.restore(tenant.slug, { ...(at === undefined ? { backup: backup! } : { at }), actor: actor(request), ...(as === undefined ? {} : { as }) })
      return { tenant: view(result.tenant), backup: backupOf(result.backup), migrated: result.migrated }
    },
  )

  /** A tenant's quotas, with what it uses of those that are counted. */
  async function quotasOf(tenant: TenantRecord) {
    const [view, storageBytes, tokens, fileBytes] = await Promise.all([
      tenantry.quotas.get(tenant.slug),
      tenantry.storageBytes(tenant).catch(() => undefined),
      tenantry.tokens.list(tenant.slug),
      tenantry.files.driver.usage(tenant.id),
    ])
    const now = new Date().toISOString()
    const live = tokens.filter((t) => !t.revokedAt && (!t.expiresAt || t.expiresAt > now)).length
    return { ...view, usage: { storageBytes: storageBytes ?? null, tokens: live, fileBytes } }
  }

  app.get(
    '/api/admin/tenants/:slug/quotas',
    { schema: { tags, summary: "A tenant's quotas (defaults and overrides) and what it uses of them", params: slugParams, querystring: noQuery, response: { 200: quotasView } } },
    async (request) => {
      const { tenant } = await tenantAccess(request, request.params.slug, ['owner', 'admin'])
      return quotasOf(tenant)
    },
  )

  app.put(
    '/api/admin/tenants/:slug/quotas',
    {
      // A tenant's owners must not raise their own quotas: platform admins only.
      ...platformOnly,
      schema: {
        tags,
        summary: "Set a tenant's quotas (platform admins): absent ones follow the config's defaults, null is unlimited",
        params: slugParams,
        querystring: noQuery,
        body: putQuotasBody,
        response: { 200: quotasView },
      },
    },
    async (request) => {
      const { tenant } = await tenantAccess(request, request.params.slug, [])
      await tenantry.quotas.set(tenant.slug, request.body, { actor: actor(request), replace: true })
      return quotasOf(tenant)
    },
  )

  /** A tenant's limits: what applies and where from, its own values, and the plans there are. */
  async function limitsOfTenant(tenant: TenantRecord) {
    const { overrides } = await tenantry.limits.get(tenant.slug)
    return { tenantId: tenant.id, slug: tenant.slug, limits: effectiveLimits(config, tenant.slug, overrides), overrides, plans: [...tenantry.limits.plans] }
  }

  app.get(
    '/api/admin/tenants/:slug/limits',
    { schema: { tags, summary: "A tenant's limits (rate-limit plan, SQL-over-HTTP and data API), and where each comes from", params: slugParams, querystring: noQuery, response: { 200: limitsView } } },
    async (request) => {
      const { tenant } = await tenantAccess(request, request.params.slug, ['owner', 'admin'])
      return limitsOfTenant(tenant)
    },
  )

  app.put(
    '/api/admin/tenants/:slug/limits',
    {
      // A tenant's owners must not raise their own limits: platform admins only.
      ...platformOnly,
      schema: {
        tags,
        summary: "Set a tenant's limits (platform admins): absent ones follow the server config; an unknown plan is 400",
        params: slugParams,
        querystring: noQuery,
        body: putLimitsBody,
        response: { 200: limitsView },
      },
    },
    async (request) => {
      const { tenant } = await tenantAccess(request, request.params.slug, [])
      await tenantry.limits.set(tenant.slug, request.body, { actor: actor(request), replace: true })
      return limitsOfTenant(tenant)
    },
  )

  app.get(
    '/api/admin/tenants/:slug/usage',
    { schema: { tags, summary: "A tenant's metered usage per UTC day, oldest first", params: slugParams, querystring: usageQuery, response: { 200: usageView } } },
    async (request) => {
      const { tenant } = await tenantAccess(request, request.params.slug, ['owner', 'admin'])
      return tenantry.usageOf(tenant.slug, request.query.days ? { days: request.query.days } : {})
    },
  )

  app.get(
    '/api/admin/migrations',
    { ...platformOnly, schema: { tags, summary: 'Migration status across all tenants (platform admins)', querystring: noQuery, response: { 200: migrationStatus } } },
    async () => tenantry.migrationStatus(),
  )

  app.post(
    '/api/admin/migrations/run',
    {
      ...platformOnly,
      schema: {
        tags,
        summary: 'Run the fan-out and answer its report (platform admins)',
        querystring: noQuery,
        body: runMigrationsBody,
        response: { 200: fanOutReport },
      },
    },
    async (request) => {
      const concurrency = request.body?.concurrency
      if (running) throw new HttpError('MIGRATION_LOCKED', 'A migration run started here is still going; poll GET /api/admin/migrations/run')
      const current: MigrationRun = { id: randomUUID(), startedAt: new Date().toISOString(), finishedAt: null, total: null, results: [], report: null, error: null }
      run = current
      let report: FanOutReport | undefined
      running = (async () => {
        try {
          report = await tenantry.migrate({
            ...(concurrency ? { concurrency } : {}),
            onStart: ({ behind }) => void (current.total = behind),
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
      return report!
    },
  )

  app.get(
    '/api/admin/migrations/run',
    {
      ...platformOnly,
      schema: { tags, summary: 'Progress of the current (or last) fan-out run started through this server', querystring: noQuery, response: { 200: migrationRun } },
    },
    async () => ({ run: run && { ...run, running: run.finishedAt === null, done: run.results.length } }),
  )
}
