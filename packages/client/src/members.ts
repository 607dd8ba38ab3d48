import { TenantryClientError } from './errors.js'

/**
 * Members and invitations of a workspace (a Better Auth organization, which is a tenant with
 * the same slug), over Better Auth's organization routes (`/api/auth/organization/…`) through
 * the auth client's `$fetch`: no organization client plugin, so the SDK's bundle does not grow
 * for apps that never manage members. Workspaces are named as `Workspace` carries them, by
 * slug, or by organization id; every failure is a `TenantryClientError` with Better Auth's code
 * (e.g. `EMAIL_VERIFICATION_REQUIRED_BEFORE_ACCEPTING_OR_REJECTING_INVITATION`).
 */

export type WorkspaceRole = 'owner' | 'admin' | 'member'

/** A workspace: its slug (a string, or a `Workspace`), or its organization's id. */
export type WorkspaceRef = string | { slug: string } | { organizationId: string }

export interface WorkspaceMember {
  /** The membership's id (what `changeRole` and `remove` take). */
  id: string
  organizationId: string
  userId: string
  role: WorkspaceRole
  /** When they joined (ISO date). */
  createdAt: string
  user: { id: string; email: string; name: string; image: string | null }
}

export interface Invitation {
  id: string
  email: string
  role: WorkspaceRole
  organizationId: string
  inviterId: string
  status: 'pending' | 'accepted' | 'rejected' | 'canceled' | (string & {})
  /** ISO date. */
  expiresAt: string
}

/** An invitation the signed-in user received, with the workspace it is for. */
export interface ReceivedInvitation extends Invitation {
  organizationName: string
  /** The workspace's slug (known when read one by one with `invitation(id)`). */
  organizationSlug?: string
  inviterEmail?: string
}

export interface MembersClient {
  /** The workspace's members (any member may list them). */
  list(workspace: WorkspaceRef): Promise<WorkspaceMember[]>
  /** Invites `email` (owners and admins); the invitee gets an email with a link to accept. */
  invite(workspace: WorkspaceRef, input: { email: string; role: WorkspaceRole }): Promise<Invitation>
  /** The workspace's pending invitations (owners and admins). */
  invitations(workspace: WorkspaceRef): Promise<Invitation[]>
  cancelInvitation(invitationId: string): Promise<void>
  /** The pending invitations the signed-in user received (their email must be verified). */
  received(): Promise<ReceivedInvitation[]>
  /** One invitation to the signed-in user, with its workspace's name and slug (their email must be verified). */
  invitation(invitationId: string): Promise<ReceivedInvitation>
  /** Accepts an invitation to the signed-in user (their email must be verified): they become a member. */
  accept(invitationId: string): Promise<{ invitation: Invitation; member: { id: string; organizationId: string; role: WorkspaceRole } }>
  reject(invitationId: string): Promise<void>
  /** Changes a member's role (owners and admins; only owners make owners). */
  changeRole(workspace: WorkspaceRef, memberId: string, role: WorkspaceRole): Promise<void>
  /** Removes a member, by membership id or email (owners and admins). */
  remove(workspace: WorkspaceRef, memberIdOrEmail: string): Promise<void>
  /** The signed-in user leaves the workspace (its last owner cannot). */
  leave(workspace: WorkspaceRef): Promise<void>
  /** Creates an organization workspace (a new tenant, same slug) owned by the signed-in user. */
  createOrganization(input: { name: string; slug: string }): Promise<{ organizationId: string; slug: string; name: string }>
}

type BetterAuthError = { code?: string; message?: string; status: number; statusText?: string }
type Fetched<T> = Promise<{ data: T | null; error: BetterAuthError | null }>
/** The auth client's `$fetch`, as this module uses it. */
export type AuthFetch = <T>(path: string, options: { method: 'GET' | 'POST'; body?: unknown; query?: Record<string, string> }) => Fetched<T>
/** The auth module's `call`: a `{ data, error }` answer as a value or a thrown client error. */
export type AuthCall = <T>(run: () => Fetched<T>) => Promise<T>

const RANK: Record<WorkspaceRole, number> = { member: 0, admin: 1, owner: 2 }

/** Better Auth may store several roles as `admin,member`: the strongest counts, as on the server. */
function strongestRole(roles: unknown): WorkspaceRole {
  let best: WorkspaceRole = 'member'
  for (const role of String(roles ?? '').split(',').map((r) => r.trim())) {
    if (role in RANK && RANK[role as WorkspaceRole] > RANK[best]) best = role as WorkspaceRole
  }
  return best
}

/** Better Auth's client may revive dates: answered as ISO strings either way. */
const iso = (value: unknown): string => (value instanceof Date ? value.toISOString() : String(value ?? ''))

function toInvitation(raw: Record<string, unknown>): Invitation {
  return {
    id: String(raw.id),
    email: String(raw.email),
    role: strongestRole(raw.role),
    organizationId: String(raw.organizationId),
    inviterId: String(raw.inviterId),
    status: String(raw.status),
    expiresAt: iso(raw.expiresAt),
  }
}

function toReceived(raw: Record<string, unknown>): ReceivedInvitation {
  return {
    ...toInvitation(raw),
    organizationName: String(raw.organizationName ?? ''),
    ...(typeof raw.organizationSlug === 'string' ? { organizationSlug: raw.organizationSlug } : {}),
    ...(typeof raw.inviterEmail === 'string' ? { inviterEmail: raw.inviterEmail } : {}),
  }
}

function toMember(raw: Record<string, unknown>): WorkspaceMember {
  const user = (raw.user ?? {}) as Record<string, unknown>
  return {
    id: String(raw.id),
    organizationId: String(raw.organizationId),
    userId: String(raw.userId),
    role: strongestRole(raw.role),
    createdAt: iso(raw.createdAt),
    user: { id: String(user.id ?? raw.userId), email: String(user.email ?? ''), name: String(user.name ?? ''), image: typeof user.image === 'string' ? user.image : null },
  }
}

const ROLES = new Set<string>(['owner', 'admin', 'member'])

function checkRole(role: string): void {
  if (!ROLES.has(role)) throw new TenantryClientError('VALIDATION_FAILED', `Unknown role "${role}": owner, admin or member`, 400)
}

function checkId(what: string, id: string): void {
  if (typeof id !== 'string' || id.trim() === '') throw new TenantryClientError('VALIDATION_FAILED', `${what} is required`, 400)
}

/** The members face of `createAuth` (see the module comment). */
export function membersClient($fetch: AuthFetch, call: AuthCall): MembersClient {
  /** Slug → organization id, learnt from the members list (a slug never changes). */
  const organizationIds = new Map<string, string>()

  const listRaw = async (workspace: WorkspaceRef): Promise<Record<string, unknown>[]> => {
    const slug = typeof workspace === 'string' ? workspace : 'slug' in workspace ? workspace.slug : undefined
    const id = typeof workspace !== 'string' && 'organizationId' in workspace ? workspace.organizationId : undefined
    if (!slug && !id) throw new TenantryClientError('VALIDATION_FAILED', 'A workspace (slug or organization id) is required', 400)
    const query: Record<string, string> = slug ? { organizationSlug: slug } : { organizationId: id! }
    const data = await call(() => $fetch<{ members: Record<string, unknown>[] }>('/organization/list-members', { method: 'GET', query }))
    const members = data?.members ?? []
    if (slug && members[0]) organizationIds.set(slug, String(members[0].organizationId))
    return members
  }

  const organizationId = async (workspace: WorkspaceRef): Promise<string> => {
    if (typeof workspace !== 'string' && 'organizationId' in workspace) return workspace.organizationId
    const slug = typeof workspace === 'string' ? workspace : workspace.slug
    const known = organizationIds.get(slug)
    if (known) return known
    await listRaw(slug)
    const found = organizationIds.get(slug)
    if (!found) throw new TenantryClientError('TENANT_NOT_FOUND', `No workspace ${slug} among yours`, 404)
    return found
  }

  const post = <T>(path: string, body: unknown) => call(() => $fetch<T>(path, { method: 'POST', body }))

  return {
    list: async (workspace) => (await listRaw(workspace)).map(toMember),
    invite: async (workspace, { email, role }) => {
      checkRole(role)
      if (typeof email !== 'string' || !/^[^\s@]+@[^\s@]+$/.test(email.trim())) throw new TenantryClientError('VALIDATION_FAILED', `Not an email address: "${String(email)}"`, 400)
      return toInvitation(await post<Record<string, unknown>>('/organization/invite-member', { email: email.trim(), role, organizationId: await organizationId(workspace) }))
    },
    invitations: async (workspace) => {
      const id = await organizationId(workspace)
      const all = await call(() => $fetch<Record<string, unknown>[]>('/organization/list-invitations', { method: 'GET', query: { organizationId: id } }))
      return (all ?? []).map(toInvitation).filter((i) => i.status === 'pending')
    },
    cancelInvitation: async (invitationId) => {
      checkId('An invitation id', invitationId)
      await post('/organization/cancel-invitation', { invitationId })
    },
    received: async () => (await call(() => $fetch<Record<string, unknown>[]>('/organization/list-user-invitations', { method: 'GET' })) ?? []).map(toReceived),
    invitation: async (invitationId) => {
      checkId('An invitation id', invitationId)
      return toReceived(await call(() => $fetch<Record<string, unknown>>('/organization/get-invitation', { method: 'GET', query: { id: invitationId } })))
    },
    accept: async (invitationId) => {
      checkId('An invitation id', invitationId)
      const data = await post<{ invitation: Record<string, unknown>; member: Record<string, unknown> }>('/organization/accept-invitation', { invitationId })
      return {
        invitation: toInvitation(data.invitation),
        member: { id: String(data.member.id), organizationId: String(data.member.organizationId), role: strongestRole(data.member.role) },
      }
    },
    reject: async (invitationId) => {
      checkId('An invitation id', invitationId)
      await post('/organization/reject-invitation', { invitationId })
    },
    changeRole: async (workspace, memberId, role) => {
      checkRole(role)
      checkId('A member id', memberId)
      await post('/organization/update-member-role', { memberId, role, organizationId: await organizationId(workspace) })
    },
    remove: async (workspace, memberIdOrEmail) => {
      checkId('A member id or email', memberIdOrEmail)
      await post('/organization/remove-member', { memberIdOrEmail, organizationId: await organizationId(workspace) })
    },
    leave: async (workspace) => {
      await post('/organization/leave', { organizationId: await organizationId(workspace) })
    },
    createOrganization: async ({ name, slug }) => {
      if (typeof name !== 'string' || name.trim() === '') throw new TenantryClientError('VALIDATION_FAILED', 'A workspace name is required', 400)
      checkId('A workspace slug', slug)
      const org = await post<Record<string, unknown>>('/organization/create', { name: name.trim(), slug: slug.trim() })
      organizationIds.set(String(org.slug), String(org.id))
      return { organizationId: String(org.id), slug: String(org.slug), name: String(org.name) }
    },
  }
}
