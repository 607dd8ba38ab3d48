/**
 * Codes a client error carries: the server's own (its `{ error: { code, message } }` answers,
 * passed through as they are, so any server code may appear) and the local backend's, which
 * uses the same codes for the same mistakes.
 */
export type TenantryClientErrorCode =
  | 'VALIDATION_FAILED'
  | 'NOT_FOUND'
  | 'CONSTRAINT_VIOLATION'
  | 'UNAUTHENTICATED'
  | 'FORBIDDEN'
  | 'RATE_LIMITED'
  | 'NETWORK_ERROR'
  | (string & {})

/** HTTP statuses of the codes the local backend raises, as the server answers them. */
export const STATUS_OF: Readonly<Record<string, number>> = { VALIDATION_FAILED: 400, NOT_FOUND: 404, CONSTRAINT_VIOLATION: 409 }

/** Every failure of a client call: `code` is what to branch on, `message` is for people. */
export class TenantryClientError extends Error {
  override readonly name = 'TenantryClientError'
  readonly code: TenantryClientErrorCode
  /** The HTTP status (the server's, or the one it would have answered); 0 when no answer came. */
  readonly status: number

  constructor(code: TenantryClientErrorCode, message: string, status = STATUS_OF[code] ?? 0, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
    this.status = status
  }
}

/** Whether `error` is a client error, optionally of `code`. */
export function isTenantryClientError(error: unknown, code?: TenantryClientErrorCode): error is TenantryClientError {
  return error instanceof TenantryClientError && (code === undefined || error.code === code)
}
