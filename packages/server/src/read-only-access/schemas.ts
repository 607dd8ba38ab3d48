import { z } from 'zod'

/** A database login that reads this tenant and nothing else. */
export const readOnlyAccessGrant = z.object({
  role: z.string().describe('The login role'),
  url: z.string().describe('A connection URL for psql or a BI tool; it carries the password'),
})
