import type { FastifyReply, FastifyRequest } from 'fastify'
import { SLUG_PATTERN, isTenantryError, type TenantRecord, type Tenantry } from 'tenantry'
import { HttpError } from '../errors.js'
import type { AdmittedTenant } from '../principal.js'
import { lazyChild } from '../observability/lazy-child.js'
import type { Organizations } from './organizations.js'

/** Where the request names its tenant: the `:slug` path parameter, or the session's (or token's) active tenant. */
export type TenantSource = 'path' | 'active'

export interface AdmitTenantOptions {
  tenantry: Tenantry
  organizations: Organizations
  source: TenantSource
}

const notFound = () => new HttpError('TENANT_NOT_FOUND')

/**
 * Admits a request to a tenant, or throws. A tenant the caller may not see answers exactly
 * like one that does not exist (404 `TENANT_NOT_FOUND`); only an admitted caller learns that
 * a tenant is suspended (409 `TENANT_NOT_READY`).
 */
export async function admitTenant(request: FastifyRequest, options: AdmitTenantOptions): Promise<AdmittedTenant> {
  const { tenantry, source } = options
  const principal = request.principal
  if (!principal) throw new HttpError('UNAUTHENTICATED')

  let key: string | { id: string } | undefined
  if (source === 'path') {
    const slug = (request.params as { slug?: unknown }).slug
    if (typeof slug !== 'string' || !SLUG_PATTERN.test(slug)) throw notFound()
    key = slug
  } else {
    const id = principal.kind === 'token' ? principal.tenantId : principal.activeTenantId
    key = id ? { id } : undefined
  }
  // A fresh placement in the router's cache is taken synchronously: no promise on the hot path.
  const tenant = key === undefined ? undefined : (tenantry.router.cached(key) ?? (await lookUp(tenantry, key)))
  if (!tenant || tenant.purgedAt || tenant.status === 'deleted') throw notFound()

  let admitted: AdmittedTenant
  if (principal.kind === 'token') {
    if (principal.tenantId !== tenant.id) throw notFound()
    admitted = { id: tenant.id, slug: tenant.slug, role: 'token', readOnly: principal.readOnly }
  } else {
    const membership = await options.organizations.membershipIn(principal.userId, tenant.id)
    if (membership) admitted = { id: tenant.id, slug: tenant.slug, role: membership.role, readOnly: false }
    else if (principal.platformAdmin) admitted = { id: tenant.id, slug: tenant.slug, role: 'admin', readOnly: false }
    else throw notFound()
  }
  if (tenant.status !== 'ready') throw new HttpError('TENANT_NOT_READY', `Tenant "${tenant.slug}" is ${tenant.status}`)
  return admitted
}

/**
 * The tenant through the router's placement cache, as `withTenant` sees it, so a request does
 * not read the catalog twice; `undefined` when there is no such tenant.
 */
function lookUp(tenantry: Tenantry, tenant: string | { id: string }): Promise<TenantRecord | undefined> {
  return tenantry.router.resolve(tenant).catch((error: unknown) => {
    if (isTenantryError(error, 'TENANT_NOT_FOUND')) return undefined
    throw error
  })
}

/** A Fastify hook that admits the request to its tenant and tags its log lines with the tenant id. */
export function admitTenantHook(options: AdmitTenantOptions) {
  return async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    request.tenant = await admitTenant(request, options)
    // Lazy: most requests write no line at the configured level, and pino's child costs µs each.
    request.log = lazyChild(request.log, { tenantId: request.tenant.id })
    reply.log = request.log
  }
}

/** Runs `fn` inside the admitted tenant's context. */
export function inTenant<T>(tenantry: Tenantry, request: FastifyRequest, fn: () => Promise<T>): Promise<T> {
  if (!request.tenant) throw new HttpError('TENANT_NOT_FOUND')
  return tenantry.withTenant({ id: request.tenant.id }, fn)
}

/** Throws `READ_ONLY` (403) for read-only tokens. */
export function assertWritable(request: FastifyRequest): void {
  if (request.tenant?.readOnly) throw new HttpError('READ_ONLY')
}

/**
 * The admitted tenant's owners and admins, in person (a session, never a token): those who
 * manage a tenant's credentials. Anyone else admitted to the tenant gets 403 `FORBIDDEN`.
 */
export function requireTenantManager(request: FastifyRequest, what: string): { slug: string; actor: string } {
  const tenant = request.tenant
  if (!tenant) throw new HttpError('TENANT_NOT_FOUND')
  if (request.principal?.kind !== 'user' || (tenant.role !== 'owner' && tenant.role !== 'admin')) {
    throw new HttpError('FORBIDDEN', `Only the tenant’s owners and admins manage ${what}`)
  }
  return { slug: tenant.slug, actor: `user:${request.principal.userId}` }
}
