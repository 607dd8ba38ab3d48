/** Codes the data API answers with besides the server's own (statuses: errors.ts). */
export const DATA_ERROR_CODES = {
  CONSTRAINT_VIOLATION: 'The change breaks a rule of the database: a reference, a unique value, a required value or a check',
} as const

export type DataErrorCode = keyof typeof DATA_ERROR_CODES
