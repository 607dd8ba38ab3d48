import { TENANTRY_ERROR_CODES, type TenantryErrorCode } from './error-codes.js'

export interface TenantryErrorOptions {
  cause?: unknown
  /** Extra machine-readable facts about the failure (never secrets). */
  details?: Record<string, unknown>
}

/** The one base error of the `tenantry` package: a stable `code`, a readable message, the cause passed through. */
export class TenantryError extends Error {
  override readonly name: string = 'TenantryError'
  readonly code: TenantryErrorCode
  readonly details: Record<string, unknown> | undefined

  constructor(code: TenantryErrorCode, message?: string, options: TenantryErrorOptions = {}) {
    super(message ?? TENANTRY_ERROR_CODES[code], options.cause === undefined ? undefined : { cause: options.cause })
    this.code = code
    this.details = options.details
  }
}

/** Thrown by any tenant data access that runs with no tenant in context. Fails closed. */
export class NoTenantError extends TenantryError {
  override readonly name = 'NoTenantError'
  constructor(message?: string) {
    super('NO_TENANT', message)
  }
}

export function isTenantryError(error: unknown, code?: TenantryErrorCode): error is TenantryError {
  return error instanceof TenantryError && (code === undefined || error.code === code)
}
