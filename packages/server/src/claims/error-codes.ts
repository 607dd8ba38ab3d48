/** Codes the claim routes answer with besides the server's own (statuses: errors.ts). */
export const CLAIM_ERROR_CODES = {
  CLAIM_INCOMPLETE: 'Some chunks of the claim were not staged: send them, then commit again',
  CLAIM_TOO_LARGE: 'The claim is larger than the server accepts',
  CLAIM_INVALID_REFERENCE: 'A row of the claim refers to a row that is not in the claim',
} as const

export type ClaimErrorCode = keyof typeof CLAIM_ERROR_CODES
