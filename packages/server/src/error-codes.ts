/**
 * Codes every server feature may answer with, and their default messages. Codes that belong
 * to one feature live in that feature's `error-codes.ts`; core's are `TENANTRY_ERROR_CODES`.
 * Each code's HTTP status is in `STATUS_BY_CODE` (errors.ts), the one table for all of them.
 */
export const SERVER_ERROR_CODES = {
  UNAUTHENTICATED: 'Sign in or present a valid token',
  FORBIDDEN: 'Not allowed',
  NOT_FOUND: 'Not found',
  READ_ONLY: 'This token is read-only',
  VALIDATION_FAILED: 'The request is invalid',
  UNSUPPORTED_MEDIA_TYPE: 'Send the body as application/json',
  PAYLOAD_TOO_LARGE: 'The request body is too large',
  RATE_LIMITED: 'Too many requests',
  REQUEST_TIMEOUT: 'The request took too long to arrive',
  HEADERS_TOO_LARGE: 'The request headers are too large',
} as const

export type ServerErrorCode = keyof typeof SERVER_ERROR_CODES
