import { z } from 'zod'

/**
 * The `server.claims` section: bounds of a claim (a browser's local data moving into a tenant,
 * see routes.ts). A chunk is one request, so its bounds keep a request small; a claim's total
 * bounds what one commit transaction may write.
 */
export const claimsConfigSchema = z
  .object({
    /** Most rows in one chunk (all collections together). @default 1000 */
    maxRowsPerChunk: z.number().int().positive().max(100_000).default(1000),
    /** Largest chunk body, in bytes. @default 4194304 (4 MiB) */
    maxChunkBytes: z.number().int().positive().max(64 * 1024 * 1024).default(4 * 1024 * 1024),
    /** Most rows in one claim. @default 100000 */
    maxRowsPerClaim: z.number().int().positive().max(10_000_000).default(100_000),
    /** Deadline of the commit, longer than ordinary writes': each statement's, and its transaction's on SQLite. @default 60000 */
    commitTimeoutMs: z.number().int().positive().default(60_000),
    /** Staged chunks of a claim not committed within this long are deleted. @default 86400000 (24 h) */
    abandonAfterMs: z.number().int().positive().default(24 * 60 * 60 * 1000),
  })
  .strict()

export type ClaimsConfig = z.infer<typeof claimsConfigSchema>
