import { isTenantryError, type TenantryErrorCode } from 'tenantry'

/** Server-side codes on top of the core's. */
export const SERVER_ERROR_CODES = {
  UNAUTHENTICATED: 'Sign in or present a valid token',
  FORBIDDEN: 'Not allowed',
  NOT_FOUND: 'Not found',
  READ_ONLY: 'This token is read-only',
  VALIDATION_FAILED: 'The request is invalid',
  PAYLOAD_TOO_LARGE: 'The request body is too large',
  RATE_LIMITED: 'Too many requests',
  SQL_UNAVAILABLE: 'SQL-over-HTTP is not offered for this tenant',
  INVALID_BATON: 'Unknown or expired stream baton',
} as const

export type ServerErrorCode = keyof typeof SERVER_ERROR_CODES
export type ErrorCode = ServerErrorCode | TenantryErrorCode

/** An error with an HTTP status, answered as `{ error: { code, message } }`. */
export class HttpError extends Error {
  override readonly name = 'HttpError'
  constructor(
    readonly status: number,
    readonly code: ErrorCode,
    message?: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message ?? (SERVER_ERROR_CODES as Record<string, string>)[code] ?? code)
  }
}

/**
 * The one place core error codes become HTTP statuses. A tenant that exists but is not
 * yours answers exactly like one that does not exist, so ids cannot be probed.
 */
const STATUS_BY_CODE: Partial<Record<TenantryErrorCode, number>> = {
  NO_TENANT: 404,
  TENANT_MISMATCH: 404,
  TENANT_NOT_FOUND: 404,
  TENANT_NOT_READY: 409,
  INVALID_SLUG: 400,
  INVALID_IDENTIFIER: 400,
  SLUG_TAKEN: 409,
  INVALID_TRANSITION: 409,
  DATA_SOURCE_NOT_FOUND: 400,
  UNSUPPORTED_PLACEMENT: 400,
  MIGRATION_LOCKED: 409,
  INVALID_MIGRATION: 400,
  INVALID_CONFIG: 500,
  PROVISIONING_FAILED: 500,
  MIGRATION_FAILED: 500,
  CLOSED: 503,
  TOKEN_NOT_FOUND: 404,
  INVALID_OPTION: 400,
  INTERNAL: 500,
}

/** Turns any thrown value into an `HttpError`; unknown errors become a 500 that reveals nothing. */
export function toHttpError(error: unknown): HttpError {
  if (error instanceof HttpError) return error
  if (isTenantryError(error)) return new HttpError(STATUS_BY_CODE[error.code] ?? 500, error.code, error.message)
  const fastify = error as { statusCode?: number; code?: string; message?: string; validation?: unknown }
  if (fastify?.statusCode === 413 || fastify?.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return new HttpError(413, 'PAYLOAD_TOO_LARGE')
  if (fastify?.validation || (fastify?.statusCode === 400 && fastify.code?.startsWith('FST_'))) {
    return new HttpError(400, 'VALIDATION_FAILED', fastify.message)
  }
  if (fastify?.statusCode === 404) return new HttpError(404, 'NOT_FOUND')
  return new HttpError(500, 'INTERNAL', 'Internal error')
}
