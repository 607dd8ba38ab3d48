import type { Kysely } from 'kysely'

/** A user's place in one tenant, read from Better Auth's organization tables in the catalog. */
export interface Membership {
  organizationId: string
  tenantId: string
  role: 'owner' | 'admin' | 'member'
}

const RANK = { member: 0, admin: 1, owner: 2 } as const

/** Better Auth may store several roles as `admin,member`: the strongest one counts. */
export function strongestRole(roles: string): Membership['role'] {
  let best: Membership['role'] = 'member'
  for (const role of roles.split(',').map((r) => r.trim())) {
    if (role in RANK && RANK[role as Membership['role']] > RANK[best]) best = role as Membership['role']
  }
  return best
}

/** The user's memberships with their tenant, before any narrowing. */
function membershipQuery(db: Kysely<any>, userId: string) {
  return db
    .selectFrom('member')
    .innerJoin('organization', 'organization.id', 'member.organizationId')
    .select(['member.organizationId as organizationId', 'organization.tenantId as tenantId', 'member.role as role'])
    .where('member.userId', '=', userId)
}

function toMembership(row: { organizationId: string; tenantId: string; role: unknown }): Membership {
  return { organizationId: row.organizationId, tenantId: row.tenantId, role: strongestRole(String(row.role)) }
}

/** The user's membership in the tenant with this id, if any. */
export async function membershipIn(db: Kysely<any>, userId: string, tenantId: string): Promise<Membership | undefined> {
  const row = await membershipQuery(db, userId).where('organization.tenantId', '=', tenantId).executeTakeFirst()
  return row ? toMembership(row) : undefined
}

/** Every tenant the user belongs to, oldest membership first. */
export async function membershipsOf(db: Kysely<any>, userId: string): Promise<Membership[]> {
  const rows = await membershipQuery(db, userId)
    .where('organization.tenantId', 'is not', null)
    .orderBy('member.createdAt')
    .orderBy('member.id')
    .execute()
  return rows.map(toMembership)
}

/** The user's first membership (their personal tenant, for a user who joined no other first). */
export async function firstMembership(db: Kysely<any>, userId: string): Promise<Membership | undefined> {
  return (await membershipsOf(db, userId))[0]
}

/** The tenant id an organization stands for. */
export async function tenantIdOfOrganization(db: Kysely<any>, organizationId: string): Promise<string | undefined> {
  const row = await db.selectFrom('organization').select('tenantId').where('id', '=', organizationId).executeTakeFirst()
  return row?.tenantId ?? undefined
}
