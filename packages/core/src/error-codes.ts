/**
 * Every error Tenantry throws carries one of these codes. Messages here are the
 * defaults; a thrown error may say more about the input that caused it.
 */
export const TENANTRY_ERROR_CODES = {
  NO_TENANT: 'No tenant in context: wrap tenant data access in withTenant()',
  TENANT_MISMATCH: 'A tenant database handle was used outside its own tenant context',
  INVALID_SLUG: 'Invalid tenant slug',
  INVALID_IDENTIFIER: 'Invalid identifier',
  SLUG_TAKEN: 'Tenant slug is already taken',
  TENANT_NOT_FOUND: 'Tenant not found',
  TENANT_NOT_READY: 'Tenant is not ready',
  INVALID_TRANSITION: 'Tenant lifecycle transition not allowed',
  DATA_SOURCE_NOT_FOUND: 'Data source not found',
  UNSUPPORTED_PLACEMENT: 'This isolation is not available on this data source',
  PROVISIONING_FAILED: 'Provisioning failed',
  MIGRATION_FAILED: 'Migration failed',
  MIGRATION_LOCKED: 'Another migration runner holds the lock',
  INVALID_MIGRATION: 'Invalid migration',
  INVALID_CONFIG: 'Invalid configuration',
  CLOSED: 'Tenantry is closed',
  TOKEN_NOT_FOUND: 'Token not found',
  INVALID_OPTION: 'Invalid option',
  STATEMENT_TIMEOUT: 'The statement ran past its deadline and was stopped',
  TRANSACTION_TIMEOUT: 'The transaction stayed open past its deadline and was rolled back',
  RESULT_TOO_LARGE: 'The statement reached a row, size or memory cap',
  DATABASE_BUSY: 'The database is busy; retry shortly',
  CONCURRENCY_LIMITED: 'The tenant runs as many statements at once as it may; retry shortly',
  QUOTA_EXCEEDED: "The tenant's quota does not allow this",
  VALIDATION_FAILED: 'The request is invalid',
  NOT_FOUND: 'Not found',
  INVALID_PATH: 'Invalid file path',
  FILE_TOO_LARGE: 'The file is larger than allowed',
  PATH_CONFLICT: 'A file and a folder would share this path',
  CONSTRAINT_VIOLATION: 'The change breaks a rule of the database: a reference, a unique value, a required value or a check',
  IDEMPOTENCY_KEY_IN_USE: 'The idempotency key is taken by a write that is still running or just committed; retry shortly',
  IDEMPOTENCY_KEY_REUSED: 'The idempotency key was already used for a different request',
  VERSION_CONFLICT: 'The entry changed since it was read (compare-and-set); read it again and retry',
  INVALID_EXPORT: 'The file is not a Tenantry export this version can import (damaged, cut short, another format version, or unknown migrations)',
  INTERNAL: 'Internal error',
} as const

export type TenantryErrorCode = keyof typeof TENANTRY_ERROR_CODES
