import { z } from 'zod'

const role = z.enum(['owner', 'admin', 'member']).describe("The caller's role in the tenant")

/** A tenant the caller belongs to. */
export const memberTenant = z.object({
  id: z.string(),
  slug: z.string(),
  name: z.string(),
  status: z.string().describe('ready, suspended, …: only ready tenants serve data'),
  role,
})

/** `GET /api/me` for a signed-in user. */
const userMe = z.object({
  user: z.object({ id: z.string(), email: z.string(), platformAdmin: z.boolean() }),
  activeTenant: memberTenant.nullable().describe('The tenant /api/tenant/… serves'),
  tenants: z.array(memberTenant).describe('Oldest membership first'),
})

/** `GET /api/me` for an integration token. */
const tokenMe = z.object({
  token: z.object({ id: z.string(), readOnly: z.boolean() }),
  tenant: z.object({ id: z.string(), slug: z.string() }).nullable(),
})

export const meResponse = z.union([userMe, tokenMe]).describe('The caller: a user with their tenants, or a token with its tenant')

export const switchTenantBody = z.strictObject({ slug: z.string().describe('A tenant you belong to') })

export const switchTenantResponse = z.object({
  activeTenant: z.object({ id: z.string(), slug: z.string(), role }),
})
