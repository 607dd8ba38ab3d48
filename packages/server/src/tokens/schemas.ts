import { parseDuration } from 'tenantry'
import { z } from 'zod'

/** An integration token as listings show it: never its secret or its hash. */
export const tokenRecord = z.object({
  id: z.string(),
  tenantId: z.string(),
  name: z.string(),
  prefix: z.string().describe('The start of the token (tnt_<id>_xxxx), to recognise it'),
  readOnly: z.boolean(),
  createdAt: z.string(),
  expiresAt: z.string().nullable(),
  revokedAt: z.string().nullable(),
  lastUsedAt: z.string().nullable(),
  createdBy: z.string(),
})

export const tokenList = z.object({ items: z.array(tokenRecord).describe('Oldest first, revoked ones included') })

export const createTokenBody = z.strictObject({
  name: z.string().min(1).max(100).optional().describe('A label for listings; default "token"'),
  readOnly: z.boolean().optional().describe('Read-only tokens never change data or schema; default false'),
  expiresIn: z
    .string()
    .regex(/^\d{1,6}[smhdw]$/, 'expected a duration like 30d, 12h or 90m')
    .refine((text) => parseDuration(text) !== undefined, 'expected a positive duration like 30d, 12h or 90m')
    .optional()
    .describe('Lifetime from now: 45s, 90m, 12h, 30d, 2w. None: the token lives until revoked'),
})

export const createdToken = z.object({
  token: z.string().describe('The secret, shown this once: Authorization: Bearer tnt_…'),
  record: tokenRecord,
  sqlUrl: z.string().describe('The URL to give @libsql/client with this token (SQL-over-HTTP)'),
})

export const tokenIdParams = z.object({ id: z.string().max(200).describe('The token id, as listings show it') })
