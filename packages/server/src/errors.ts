import { isTenantryError, TENANTRY_ERROR_CODES, type TenantryErrorCode } from 'tenantry'
import { ADMIN_ERROR_CODES, type AdminErrorCode } from './admin/error-codes.js'
import { AUTH_ERROR_CODES, type AuthErrorCode } from './auth/error-codes.js'
import { CLAIM_ERROR_CODES, type ClaimErrorCode } from './claims/error-codes.js'
import { DATA_ERROR_CODES, type DataErrorCode } from './data/error-codes.js'
import { SERVER_ERROR_CODES, type ServerErrorCode } from './error-codes.js'
import { SQL_OVER_HTTP_ERROR_CODES, type SqlOverHttpErrorCode } from './sql-over-http/error-codes.js'
import { SERVICES_ERROR_CODES, type ServicesErrorCode } from './services/error-codes.js'

/** Every code the server answers with: its own, its features' and core's. */
export type ErrorCode =
  | ServerErrorCode
  | AuthErrorCode
  | DataErrorCode
  | ClaimErrorCode
  | SqlOverHttpErrorCode
  | ServicesErrorCode
  | AdminErrorCode
  | TenantryErrorCode

/** Default messages, by code. */
const MESSAGES: Record<ErrorCode, string> = {
  ...TENANTRY_ERROR_CODES,
  ...SERVER_ERROR_CODES,
  ...AUTH_ERROR_CODES,
  ...DATA_ERROR_CODES,
  ...CLAIM_ERROR_CODES,
  ...SQL_OVER_HTTP_ERROR_CODES,
  ...SERVICES_ERROR_CODES,
  ...ADMIN_ERROR_CODES,
}

/**
 * The one place an error code becomes an HTTP status: every route, hook and Better Auth
 * hook answers a code with this status and no other. A tenant that exists but is not yours
 * answers exactly like one that does not exist (404), so ids cannot be probed.
 */
export const STATUS_BY_CODE: Readonly<Record<ErrorCode, number>> = {
  // the server's
  VALIDATION_FAILED: 400,
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  READ_ONLY: 403,
  NOT_FOUND: 404,
  REQUEST_TIMEOUT: 408,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  HEADERS_TOO_LARGE: 431,
  RATE_LIMITED: 429,
  // auth (raised inside Better Auth's organization hooks)
  SLUG_IMMUTABLE: 400,
  INVALID_ORIGIN: 403,
  TENANT_PROVISIONING_FAILED: 500,
  // data API
  CONSTRAINT_VIOLATION: 409,
  // claims
  CLAIM_INCOMPLETE: 409,
  CLAIM_TOO_LARGE: 413,
  CLAIM_INVALID_REFERENCE: 400,
  // SQL-over-HTTP
  INVALID_BATON: 400,
  SQL_UNAVAILABLE: 403,
  // tenant services: jobs without services.jobs in the config (not offered, as SQL_UNAVAILABLE).
  JOBS_UNAVAILABLE: 403,
  // admin: data sources. A failed connection test is 422, not 5xx: the source described (or
  // recorded) does not answer as given, which the same request would meet again.
  DATA_SOURCE_EXISTS: 409,
  DATA_SOURCE_IN_CONFIG: 409,
  DATA_SOURCE_TEST_FAILED: 422,
  // core
  INVALID_SLUG: 400,
  INVALID_IDENTIFIER: 400,
  INVALID_OPTION: 400,
  INVALID_MIGRATION: 400,
  // tenant import: the export file is damaged, of another format version, or ahead of this deployment's migrations
  INVALID_EXPORT: 400,
  // tenant adopt: the database does not match the migration set; an external id another tenant carries
  ADOPT_MISMATCH: 422,
  EXTERNAL_ID_TAKEN: 409,
  // tenant restore: no such backup of this tenant (404); its file is missing, changed, or ahead of this deployment (409: the backup's state, not the request's form)
  BACKUP_NOT_FOUND: 404,
  INVALID_BACKUP: 409,
  DATA_SOURCE_NOT_FOUND: 400,
  UNSUPPORTED_PLACEMENT: 400,
  // Every data source that could take a new tenant is down: the server's outage, passing, not the request's fault.
  DATA_SOURCE_UNAVAILABLE: 503,
  // Raw SQL cannot run confined on this server (its executor processes' memory limit cannot be set): the deployment's to fix.
  EXECUTOR_UNAVAILABLE: 503,
  NO_TENANT: 404,
  TENANT_MISMATCH: 404,
  TENANT_NOT_FOUND: 404,
  TOKEN_NOT_FOUND: 404,
  SLUG_TAKEN: 409,
  TENANT_NOT_READY: 409,
  INVALID_TRANSITION: 409,
  MIGRATION_LOCKED: 409,
  // Idempotency keys (the write ledger): a key held by a write still running is passing (409,
  // retry to get the replay); the same key sent with another request is the client's mistake.
  IDEMPOTENCY_KEY_IN_USE: 409,
  IDEMPOTENCY_KEY_REUSED: 422,
  // tenantry.state's compare-and-set: the entry moved on since it was read.
  VERSION_CONFLICT: 409,
  // tenantry.files: a refused path, a file over the size limit, a file where a folder is (or the reverse).
  INVALID_PATH: 400,
  FILE_TOO_LARGE: 413,
  PATH_CONFLICT: 409,
  RANGE_NOT_SATISFIABLE: 416,
  INVALID_CONFIG: 500,
  PROVISIONING_FAILED: 500,
  MIGRATION_FAILED: 500,
  INTERNAL: 500,
  CLOSED: 503,
  // tenant move and maintenance mode: writes paused for a moment (retry) or refused until maintenance ends; reads are served
  TENANT_MOVING: 503,
  TENANT_MAINTENANCE: 503,
  // core, raw SQL (SQL-over-HTTP). A deadline is 408, not 503: the statement's own doing, which
  // the same request would hit again, and no sign of an unwell server (5xx is what pages people).
  STATEMENT_TIMEOUT: 408,
  TRANSACTION_TIMEOUT: 408,
  RESULT_TOO_LARGE: 422,
  CONCURRENCY_LIMITED: 429,
  // A quota (storage, tokens, rows per bulk request, organizations per user): the same request
  // fails again until an operator raises the quota or the tenant frees some. 403, not 413: the
  // request itself is well-formed and may be small; the tenant's allowance is what refuses it.
  QUOTA_EXCEEDED: 403,
  // A lock held by another connection, or every executor busy: passing, so 503 with Retry-After.
  DATABASE_BUSY: 503,
}

/** The status `code` is answered with (500 for a code the table does not know, which the types prevent). */
export function statusOf(code: string): number {
  return (STATUS_BY_CODE as Record<string, number>)[code] ?? 500
}

/**
 * An error answered as `status` + `{ error: { code, message } }`. The status comes from
 * `STATUS_BY_CODE`, never from the caller, so one code cannot mean two statuses.
 *
 * @example throw new HttpError('FORBIDDEN', 'Only owners manage tokens', { cause })
 */
export class HttpError extends Error {
  override readonly name = 'HttpError'
  readonly status: number

  constructor(
    readonly code: ErrorCode,
    /** @default the code's default message */
    message?: string,
    options?: ErrorOptions,
  ) {
    super(message ?? MESSAGES[code] ?? code, options)
    this.status = statusOf(code)
  }
}

/** What Fastify (and fastify-type-provider-zod) put on an error: a status, an `FST_` code, validation issues. */
interface FastifyErrorLike {
  statusCode?: number
  code?: string
  message?: string
  validation?: Array<{ instancePath?: string; message?: string; keyword?: string; params?: { keys?: unknown } }>
  validationContext?: string
}

/**
 * Turns any thrown value into an `HttpError`. Core errors keep their code; a request Fastify
 * refused (bad JSON, wrong content type, too large, failed schema) keeps its 4xx meaning;
 * anything else is a 500 that reveals nothing.
 */
export function toHttpError(error: unknown): HttpError {
  if (error instanceof HttpError) return error
  if (isTenantryError(error)) return new HttpError(error.code, error.message, { cause: error })
  // SQLite's own refusal at the tenant's storage quota (max_page_count), from an in-process handle.
  if ((error as { code?: unknown } | null)?.code === 'SQLITE_FULL') {
    return new HttpError('QUOTA_EXCEEDED', "The write would take the tenant past its storage quota; nothing was written", { cause: error })
  }
  const fastify = (error ?? {}) as FastifyErrorLike
  if (Array.isArray(fastify.validation)) {
    return new HttpError('VALIDATION_FAILED', validationMessage(fastify.validation, fastify.validationContext), { cause: error })
  }
  const status = fastify.statusCode
  if (typeof status === 'number' && status >= 400 && status < 500) {
    if (status === 413) return new HttpError('PAYLOAD_TOO_LARGE', undefined, { cause: error })
    if (status === 415) return new HttpError('UNSUPPORTED_MEDIA_TYPE', undefined, { cause: error })
    if (status === 404) return new HttpError('NOT_FOUND', undefined, { cause: error })
    // Malformed JSON, an empty JSON body, a bad Content-Length…: the client's request is invalid.
    return new HttpError('VALIDATION_FAILED', fastify.message || undefined, { cause: error })
  }
  return new HttpError('INTERNAL', 'Internal error', { cause: error })
}

/** `body: unknown field "access"; body.expiresIn: Invalid input: expected string, received number` */
function validationMessage(issues: NonNullable<FastifyErrorLike['validation']>, context = 'request'): string {
  const parts = issues.map((issue) => {
    const path = (issue.instancePath ?? '').split('/').filter(Boolean)
    const where = [context, ...path].join('.')
    const keys = issue.params?.keys
    if (issue.keyword === 'unrecognized_keys' && Array.isArray(keys)) {
      return `${where}: unknown field${keys.length > 1 ? 's' : ''} ${keys.map((k) => JSON.stringify(String(k))).join(', ')}`
    }
    return `${where}: ${issue.message ?? 'invalid'}`
  })
  return parts.length ? parts.join('; ') : SERVER_ERROR_CODES.VALIDATION_FAILED
}
