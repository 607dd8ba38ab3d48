import { randomBytes } from 'node:crypto'
import { getCurrentAdapter, type Auth } from 'better-auth'
import { APIError } from 'better-auth/api'
import { getOrgAdapter, organization } from 'better-auth/plugins'
import { isTenantryError, slugProblem, type Logger, type TenantRecord, type Tenantry } from 'tenantry'
import { AUTH_ERROR_CODES } from '../auth/error-codes.js'
import { invitationEmail, type EmailSender } from '../auth/email.js'
import { statusOf, type ErrorCode } from '../errors.js'
import { verifiedTokens } from '../tokens/verified-tokens.js'

/**
 * Organizations are tenants: one Better Auth organization per tenant, with the same slug,
 * linked by `organization.tenantId`. This module is the only code that reads or writes
 * Better Auth's organization tables (`organization`, `member`, `invitation`), and it does so
 * only through Better Auth: its endpoints (`auth.api.*`) where one fits a server-side call,
 * otherwise its organization adapter (`getOrgAdapter`) and database adapter, which follow
 * Better Auth's own schema, field names and date handling on every catalog engine.
 */

/** A user's place in one tenant. */
export interface Membership {
  organizationId: string
  tenantId: string
  role: 'owner' | 'admin' | 'member'
}

/** The organization schema Tenantry adds to Better Auth's: the tenant an organization stands for. */
const ORGANIZATION_SCHEMA = {
  organization: { additionalFields: { tenantId: { type: 'string', required: false, input: false } } },
} as const

const RANK = { member: 0, admin: 1, owner: 2 } as const

/** Better Auth may store several roles as `admin,member`: the strongest one counts. */
export function strongestRole(roles: string): Membership['role'] {
  let best: Membership['role'] = 'member'
  for (const role of roles.split(',').map((r) => r.trim())) {
    if (role in RANK && RANK[role as Membership['role']] > RANK[best]) best = role as Membership['role']
  }
  return best
}

/** Personal tenants: `u_` + 16 characters, never derived from a name or an email. */
export function personalSlug(): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789'
  return `u_${[...randomBytes(16)].map((b) => alphabet[b % alphabet.length]).join('')}`
}

/** A Better Auth error with one of our codes, at the status `STATUS_BY_CODE` gives that code. */
function authError(code: ErrorCode, message: string, cause?: unknown): APIError {
  return APIError.from(statusOf(code) as ConstructorParameters<typeof APIError>[0], { code, message }, cause === undefined ? undefined : { cause })
}

/** How invitations leave: the app's email sender and the server's public URL (the console's). */
export interface InvitationMail {
  sendEmail?: EmailSender
  baseURL?: string
}

/**
 * Better Auth's organization plugin, configured so that organizations are tenants: creating
 * one provisions its tenant (or creates nothing), its slug is checked as a tenant slug and can
 * never change, and organizations are never deleted through Better Auth (a tenant is deleted
 * through the admin API, which removes its organization).
 */
export function tenantOrganizations(tenantry: Tenantry, organizations: () => Organizations, mail: InvitationMail = {}) {
  return organization({
    creatorRole: 'owner',
    disableOrganizationDeletion: true,
    // The invitee gets a link to the console's `/invitations/<id>` page, through the app's
    // `sendEmail` (without one, the logging sender notes that an email was due).
    sendInvitationEmail: async ({ id, email, role, organization: org, inviter }) => {
      if (!mail.sendEmail || !mail.baseURL) return
      const who = inviter.user.name || inviter.user.email
      // Better Auth has stored the invitation by now: a mailer failure must not answer 500 for
      // an invitation that exists (inviting again would then be refused as a duplicate). It
      // stays pending, listed with the others, and the operator hears of the failure.
      try {
        await mail.sendEmail(invitationEmail({ id, email, role: String(role), organizationName: org.name, inviter: who }, mail.baseURL))
      } catch (err) {
        tenantry.logger.error({ err, invitationId: id, organizationId: org.id }, 'The invitation email could not be sent; the invitation is pending (cancel it and invite again to resend)')
      }
    },
    // Knowing an invitation's id is not proof of owning its address: anyone could sign up with
    // the invited email. Accepting (or rejecting) needs that email verified.
    requireEmailVerificationOnInvitation: true,
    schema: ORGANIZATION_SCHEMA,
    organizationHooks: {
      beforeCreateOrganization: async ({ organization: org, user }) => {
        const problem = slugProblem(org.slug)
        if (problem) throw authError('INVALID_SLUG', `Invalid tenant slug: ${problem}`)
        // The config's quotas.organizationsPerUser: organizations the user owns, their personal tenant included.
        const limit = tenantry.quotas.organizationsPerUser
        if (limit !== null && user && (await organizations().ownedBy(user.id)) >= limit) {
          throw authError('QUOTA_EXCEEDED', `You own ${limit} organizations, as many as you may (quotas.organizationsPerUser)`)
        }
        try {
          await tenantry.tenants.plan({ slug: org.slug! })
        } catch (error) {
          if (isTenantryError(error)) throw authError(error.code, error.message, error)
          throw error
        }
      },
      afterCreateOrganization: async ({ organization: org, user }) => {
        await organizations().provision({ id: org.id, slug: org.slug, name: org.name }, `user:${user.id}`)
      },
      // A member who no longer manages the tenant (removed, or demoted to member) must not keep
      // managing it through the tokens they created: those are revoked with the membership.
      afterRemoveMember: async ({ member }) => {
        await organizations().revokeTokensOf(member.userId, member.organizationId, 'member removed')
      },
      afterUpdateMemberRole: async ({ member }) => {
        if (strongestRole(String(member.role)) === 'member') {
          await organizations().revokeTokensOf(member.userId, member.organizationId, 'member demoted')
        }
      },
      beforeUpdateOrganization: async ({ organization: org, member }) => {
        if (org.slug === undefined) return
        const current = await organizations().slugOf(member.organizationId)
        if (current !== undefined && current !== org.slug) throw authError('SLUG_IMMUTABLE', AUTH_ERROR_CODES.SLUG_IMMUTABLE)
      },
    },
  })
}

/**
 * What this module needs of the Better Auth instance (`TenantryAuth`): its context (adapters)
 * and the organization endpoints it calls server-side. Declared here, not taken from
 * `TenantryAuth`, whose type is built from this module's plugin.
 */
export interface OrganizationsAuth {
  /** Better Auth's context; its type depends on the instance's options, so it is read as the generic `AuthContext`. */
  $context: Promise<object>
  api: {
    createOrganization(input: { body: { name: string; slug: string; userId: string; metadata: Record<string, unknown> } }): Promise<unknown>
    setActiveOrganization(input: { headers: Headers; body: { organizationId: string } }): Promise<unknown>
    addMember(input: { body: { userId: string; role: 'owner' | 'admin' | 'member'; organizationId: string } }): Promise<unknown>
  }
}

type AuthContext = Awaited<Auth['$context']>

interface OrganizationRow {
  id: string
  slug: string
  tenantId?: string | null
  createdAt?: Date | string
}

/** An organization a crash left without its tenant (see `Organizations.halfMade`). */
export interface HalfMadeOrganization {
  id: string
  slug: string
  problem: 'no tenant' | 'tenant purged'
  repair: 'link' | 'remove' | 'wait'
  /** The tenant `link` links it to. */
  tenantId?: string
}

/** Organizations and memberships, read and written through Better Auth (see the module comment). */
export class Organizations {
  readonly #auth: OrganizationsAuth
  readonly #tenantry: Tenantry
  readonly #logger: Logger

  /** @param logger where failures handled here are reported; @default tenantry.logger */
  constructor(auth: OrganizationsAuth, tenantry: Tenantry, logger: Logger = tenantry.logger) {
    this.#auth = auth
    this.#tenantry = tenantry
    this.#logger = logger
  }

  /** The user's membership in the tenant with this id, if any. */
  async membershipIn(userId: string, tenantId: string): Promise<Membership | undefined> {
    const context = await this.#context()
    const org = await (await getCurrentAdapter(context.adapter)).findOne<OrganizationRow>({
      model: 'organization',
      where: [{ field: 'tenantId', value: tenantId }],
    })
    if (!org) return undefined
    const member = await getOrgAdapter(context, { schema: ORGANIZATION_SCHEMA }).checkMembership({ userId, organizationId: org.id })
    return member ? { organizationId: org.id, tenantId, role: strongestRole(String(member.role)) } : undefined
  }

  /** Every tenant the user belongs to, oldest membership first. */
  async membershipsOf(userId: string): Promise<Membership[]> {
    const adapter = await getCurrentAdapter((await this.#context()).adapter)
    const members = await adapter.findMany<{ organizationId: string; role: string }>({
      model: 'member',
      where: [{ field: 'userId', value: userId }],
      sortBy: { field: 'createdAt', direction: 'asc' },
    })
    if (members.length === 0) return []
    const orgs = await adapter.findMany<OrganizationRow>({
      model: 'organization',
      where: [{ field: 'id', operator: 'in', value: members.map((m) => m.organizationId) }],
    })
    const tenantOf = new Map(orgs.map((o) => [o.id, o.tenantId]))
    return members.flatMap((m) => {
      const tenantId = tenantOf.get(m.organizationId)
      return tenantId ? [{ organizationId: m.organizationId, tenantId, role: strongestRole(String(m.role)) }] : []
    })
  }

  /** How many organizations the user owns. */
  async ownedBy(userId: string): Promise<number> {
    return (await this.membershipsOf(userId)).filter((m) => m.role === 'owner').length
  }

  /** The tenant id an organization stands for. */
  async tenantIdOf(organizationId: string): Promise<string | undefined> {
    return (await this.#findOrganization(organizationId))?.tenantId ?? undefined
  }

  /** The slug of an organization. */
  async slugOf(organizationId: string): Promise<string | undefined> {
    return (await this.#findOrganization(organizationId))?.slug
  }

  /** The id of the user with this email, if any. */
  async userIdByEmail(email: string): Promise<string | undefined> {
    const found = await (await this.#context()).internalAdapter.findUserByEmail(email.toLowerCase())
    return found?.user.id
  }

  /**
   * The organization a new session of this user starts on: their first membership, after
   * giving a user who has none (a first sign-in) a personal tenant.
   */
  async startingOrganization(userId: string): Promise<string | null> {
    let first = (await this.membershipsOf(userId))[0]
    if (!first) {
      const user = await (await this.#context()).internalAdapter.findUserById(userId)
      if (!user) return null
      // A server-side call with a userId and no headers: the organization plugin treats it as a system action.
      await this.#auth.api.createOrganization({
        body: { name: `${user.name || user.email}'s workspace`, slug: personalSlug(), userId: user.id, metadata: { personal: true } },
      })
      first = (await this.membershipsOf(userId))[0]
    }
    return first?.organizationId ?? null
  }

  /**
   * Revokes the integration tokens the user created for the organization's tenant: called when
   * they leave it, are removed, or are demoted below admin (tokens are created by owners and
   * admins only, and must not outlive that right).
   */
  async revokeTokensOf(userId: string, organizationId: string, reason: string): Promise<void> {
    const tenantId = await this.tenantIdOf(organizationId)
    if (!tenantId) return
    const revoked = await this.#tenantry.tokens.revokeCreatedBy(tenantId, `user:${userId}`, { reason })
    for (const token of revoked) verifiedTokens(this.#tenantry).invalidate(token.id)
    if (revoked.length > 0) {
      this.#logger.info({ tenantId, userId, tokenIds: revoked.map((t) => t.id), reason }, 'Revoked the tokens of a user who no longer manages the tenant')
    }
  }

  /**
   * Throws Better Auth's own `403 USER_IS_NOT_A_MEMBER_OF_THE_ORGANIZATION` when a
   * `/organization/set-active` body names an organization (by id or slug) the user is not a
   * member of, before Better Auth would clear the session's active organization. A body that
   * names none, or one that does not exist, is left to Better Auth.
   */
  async assertMayActivate(userId: string, body: unknown): Promise<void> {
    const { organizationId, organizationSlug } = (body ?? {}) as { organizationId?: unknown; organizationSlug?: unknown }
    let target: string | undefined
    if (typeof organizationId === 'string') target = organizationId
    else if (organizationId === undefined && typeof organizationSlug === 'string') {
      const adapter = await getCurrentAdapter((await this.#context()).adapter)
      target = (await adapter.findOne<OrganizationRow>({ model: 'organization', where: [{ field: 'slug', value: organizationSlug }] }))?.id
    }
    if (target === undefined) return
    const context = await this.#context()
    if (await getOrgAdapter(context, { schema: ORGANIZATION_SCHEMA }).checkMembership({ userId, organizationId: target })) return
    throw APIError.from('FORBIDDEN', {
      code: 'USER_IS_NOT_A_MEMBER_OF_THE_ORGANIZATION',
      message: 'User is not a member of the organization',
    })
  }

  /** Makes the organization the session's active one (the caller's headers carry the session). */
  async setActive(headers: Headers, organizationId: string): Promise<void> {
    await this.#auth.api.setActiveOrganization({ headers, body: { organizationId } })
  }

  /**
   * Creates the tenant an organization stands for and links them, or removes the organization
   * again: never one without the other. Runs inside Better Auth's create-organization call.
   */
  async provision(org: { id: string; slug: string; name: string }, actor: string): Promise<void> {
    const context = await this.#context()
    try {
      const tenant = await this.#tenantry.createTenant({ slug: org.slug, name: org.name, actor })
      await (await getCurrentAdapter(context.adapter)).update({
        model: 'organization',
        where: [{ field: 'id', value: org.id }],
        update: { tenantId: tenant.id },
      })
    } catch (error) {
      await getOrgAdapter(context, { schema: ORGANIZATION_SCHEMA }).deleteOrganization(org.id)
      if (isTenantryError(error) && (error.code === 'SLUG_TAKEN' || error.code === 'INVALID_SLUG')) throw authError(error.code, error.message, error)
      // The client is told only that it failed; the cause is logged here, once.
      this.#logger.error({ err: error, slug: org.slug, organizationId: org.id }, 'Provisioning the tenant of a new organization failed; the organization was removed')
      throw authError('TENANT_PROVISIONING_FAILED', AUTH_ERROR_CODES.TENANT_PROVISIONING_FAILED, error)
    }
  }

  /**
   * The organization of a tenant created outside Better Auth (the admin API), so members can
   * be invited, with `ownerUserId` as its owner. Throws if it cannot be written; what was
   * written is removed first.
   */
  async createForTenant(tenant: TenantRecord, ownerUserId?: string): Promise<void> {
    const context = await this.#context()
    const orgs = getOrgAdapter(context, { schema: ORGANIZATION_SCHEMA })
    const org = await orgs.createOrganization({
      organization: { name: tenant.name, slug: tenant.slug, tenantId: tenant.id, createdAt: new Date() },
    })
    if (!ownerUserId) return
    try {
      await this.#auth.api.addMember({ body: { userId: ownerUserId, role: 'owner', organizationId: org.id } })
    } catch (error) {
      await orgs.deleteOrganization(org.id)
      throw error
    }
  }

  /** Removes the organizations of a purged tenant, with their members and invitations: its slug is free again. Returns how many went. */
  async removeForTenant(tenantId: string): Promise<number> {
    const context = await this.#context()
    const orgs = await (await getCurrentAdapter(context.adapter)).findMany<OrganizationRow>({
      model: 'organization',
      where: [{ field: 'tenantId', value: tenantId }],
    })
    const adapter = getOrgAdapter(context, { schema: ORGANIZATION_SCHEMA })
    for (const org of orgs) await adapter.deleteOrganization(org.id)
    return orgs.length
  }

  /**
   * Organizations a crash left half-made, older than `graceMs` (younger ones may still be
   * being created): with no tenant (a sign-up or create-organization cut short before the
   * tenant was linked), or linked to a tenant that was purged (a purge cut short before its
   * organization was removed). Each comes with its repair: `link` when the organization's own
   * create made a tenant that is ready and unclaimed (its creator, in the audit log, is the
   * organization's owner), else `remove`, which frees the slug. `wait`: its tenant is still
   * being created or deleted; the tenant's own repair settles it first.
   */
  async halfMade(graceMs: number): Promise<HalfMadeOrganization[]> {
    const adapter = await getCurrentAdapter((await this.#context()).adapter)
    const before = Date.now() - graceMs
    const old = (org: OrganizationRow) => new Date(org.createdAt ?? 0).getTime() <= before
    const found: HalfMadeOrganization[] = []
    const unlinked = await adapter.findMany<OrganizationRow>({ model: 'organization', where: [{ field: 'tenantId', value: null }] })
    for (const org of unlinked.filter(old)) {
      const tenant = await this.#tenantry.catalog.findTenantBySlug(org.slug)
      if (tenant && (tenant.status === 'provisioning' || tenant.status === 'deleting')) {
        found.push({ id: org.id, slug: org.slug, problem: 'no tenant', repair: 'wait' })
      } else if (tenant?.status === 'ready' && (await this.#createdBy(org, tenant.id))) {
        found.push({ id: org.id, slug: org.slug, problem: 'no tenant', repair: 'link', tenantId: tenant.id })
      } else {
        found.push({ id: org.id, slug: org.slug, problem: 'no tenant', repair: 'remove' })
      }
    }
    const purged = (await this.#tenantry.catalog.listTenants({ includePurged: true })).filter((t) => t.purgedAt).map((t) => t.id)
    if (purged.length > 0) {
      const orphans = await adapter.findMany<OrganizationRow>({ model: 'organization', where: [{ field: 'tenantId', operator: 'in', value: purged }] })
      for (const org of orphans) found.push({ id: org.id, slug: org.slug, problem: 'tenant purged', repair: 'remove' })
    }
    return found
  }

  /** Repairs what `halfMade(graceMs)` finds; returns what it did. */
  async repairHalfMade(graceMs: number): Promise<Array<{ target: string; action: string }>> {
    const context = await this.#context()
    const actions: Array<{ target: string; action: string }> = []
    for (const org of await this.halfMade(graceMs)) {
      const target = `organization ${org.slug} (${org.id})`
      if (org.repair === 'link') {
        await (await getCurrentAdapter(context.adapter)).update({ model: 'organization', where: [{ field: 'id', value: org.id }, { field: 'tenantId', value: null }], update: { tenantId: org.tenantId } })
        actions.push({ target, action: 'linked to the tenant its create made' })
      } else if (org.repair === 'remove') {
        await getOrgAdapter(context, { schema: ORGANIZATION_SCHEMA }).deleteOrganization(org.id)
        actions.push({ target, action: org.problem === 'no tenant' ? 'removed: it has no tenant; its slug is free' : "removed: its tenant was purged" })
      }
    }
    for (const action of actions) this.#logger.info({ ...action }, 'Repaired a half-made organization')
    return actions
  }

  /**
   * Whether the tenant was created by this organization's create: by its owner (the creator,
   * in the tenant's audit log) and claimed by no other organization.
   */
  async #createdBy(org: OrganizationRow, tenantId: string): Promise<boolean> {
    const adapter = await getCurrentAdapter((await this.#context()).adapter)
    if (await adapter.findOne<OrganizationRow>({ model: 'organization', where: [{ field: 'tenantId', value: tenantId }] })) return false
    const owners = await adapter.findMany<{ userId: string; role: string }>({ model: 'member', where: [{ field: 'organizationId', value: org.id }] })
    const creators = new Set(owners.filter((m) => strongestRole(String(m.role)) === 'owner').map((m) => `user:${m.userId}`))
    const log = await this.#tenantry.catalog.auditLog(tenantId)
    return log.some((event) => event.action === 'tenant.create.started' && creators.has(event.actor))
  }

  async #context(): Promise<AuthContext> {
    return (await this.#auth.$context) as AuthContext
  }

  async #findOrganization(organizationId: string): Promise<OrganizationRow | undefined> {
    const adapter = await getCurrentAdapter((await this.#context()).adapter)
    return (await adapter.findOne<OrganizationRow>({ model: 'organization', where: [{ field: 'id', value: organizationId }] })) ?? undefined
  }
}
