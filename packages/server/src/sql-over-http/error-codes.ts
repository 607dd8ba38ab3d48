/** Codes SQL-over-HTTP answers with besides the server's own (statuses: errors.ts). */
export const SQL_OVER_HTTP_ERROR_CODES = {
  SQL_UNAVAILABLE: 'SQL-over-HTTP is not offered for this tenant',
  INVALID_BATON: 'Unknown or expired stream baton',
} as const

export type SqlOverHttpErrorCode = keyof typeof SQL_OVER_HTTP_ERROR_CODES
