import { z } from 'zod'

/**
 * The claim routes' schemas (routes.ts): they validate requests, serialize answers and are the
 * OpenAPI document. Row values are checked against each collection's create schema in the
 * handler, so that a refusal names the row by its local id rather than by its index.
 */

/** Claim ids: chosen by the client (a UUID fits), unguessable enough to name one attempt. */
export const CLAIM_ID_PATTERN = /^[A-Za-z0-9_-]{8,128}$/

/** A row's id in the browser's store: an integer key, or a text key. */
export const localId = z.union([z.number().int().safe(), z.string().min(1).max(200)]).describe('The row’s id in the browser’s local store')

export const claimParams = z.object({
  claimId: z
    .string()
    .regex(CLAIM_ID_PATTERN, 'use 8 to 128 of A-Z, a-z, 0-9, _ and -')
    .describe('The claim’s id, chosen by the client (e.g. a UUID)')
    .meta({ example: '0f8e2c1a-4b7d-4c3e-9a51-2d6f8b9e7c10' }),
})

export const chunkParams = claimParams.extend({
  seq: z
    .string()
    .regex(/^\d{1,6}$/, 'expected a chunk number from 0')
    .transform(Number)
    .describe('The chunk’s number, 0 to N-1; sending a number again replaces that chunk')
    .meta({ example: '0' }),
})

/** `PUT …/claims/:claimId/chunks/:seq`. */
export function chunkBody(collections: readonly string[]) {
  const row = z.strictObject({
    localId,
    values: z.record(z.string(), z.unknown()).describe('The row as the collection’s create body (POST /data/<collection>); a reference column holds the referenced row’s local id'),
  })
  const rows = z.partialRecord(z.enum(collections as [string, ...string[]]), z.array(row)).describe('Rows by collection')
  return z.strictObject({ rows })
}

export const stagedResponse = z.object({
  claimId: z.string(),
  seq: z.number().int(),
  rows: z.number().int().describe('Rows in this chunk'),
  totalRows: z.number().int().describe('Rows staged for the claim so far'),
})

export const commitBody = z.strictObject({
  chunks: z.number().int().min(1).max(1_000_000).describe('How many chunks the claim has (seq 0 to chunks-1)'),
})

export const committedResponse = z
  .object({
    claimId: z.string(),
    status: z.literal('committed'),
    counts: z.record(z.string(), z.number().int()).describe('Rows inserted, by collection'),
    ids: z.record(z.string(), z.record(z.string(), z.union([z.number(), z.string()]))).describe('By collection: local id → the id the server gave the row'),
  })
  .describe('A committed claim (the same answer on every retry)')

export const pendingResponse = z
  .object({
    claimId: z.string(),
    status: z.literal('pending'),
    chunks: z.array(z.number().int()).describe('Seqs staged so far'),
  })
  .describe('A claim not committed yet')

export const claimStatusResponse = z.union([committedResponse, pendingResponse])
