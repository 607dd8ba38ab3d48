import { z } from 'zod'

/** A database login that reads this tenant and nothing else. */
export const readOnlyAccessGrant = z.object({
  role: z.string().describe('The login role'),
  url: z.string().describe('A connection URL for psql or a BI tool; it carries the password'),
})

/** Whether this tenant offers read-only database access, without granting it. */
export const readOnlyAccessOffer = z.object({
  available: z.boolean().describe('Whether POST grants a login here (Postgres schema and database tenants)'),
  engine: z.string().describe("The tenant's database software"),
  isolation: z.string().describe("The tenant's isolation"),
  reason: z.string().optional().describe('Where it is not available: why, and what to use instead (SQL-over-HTTP with a read-only token)'),
})
