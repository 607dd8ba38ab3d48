import { TenantryError } from '../../errors.js'
import { TENANTRY_ERROR_CODES, type TenantryErrorCode } from '../../error-codes.js'
import type { Logger } from '../../logger.js'
import type { MigrationSetSource } from '../../migrations/migration-set.js'
import type { EnginePlacement } from '../engine.js'
import type { SqliteSynchronous } from './sqlite-engine.js'

/** What `SqliteMigrationPool` and its worker threads say to each other. */

/** The worker's start: how its engine opens files, and which migration set to load. */
export interface MigrationWorkerData {
  engine: { directory: string; synchronous: SqliteSynchronous; busyTimeoutMs: number }
  /** The engine leaves checkpoints to point-in-time restore's shipper (`manageCheckpoints`). */
  manualCheckpoints: boolean
  source: MigrationSetSource
}

/** One tenant to migrate. `storageLimit`: the tenant's storage quota where the process knows it. */
export interface MigrationJob {
  id: number
  placement: EnginePlacement
  storageLimit?: number | null
}

/** An error as data: enough to throw the same code and message in the process. */
export interface SerializedError {
  name: string
  message: string
  code?: string
  stack?: string
}

export interface MigrationOutcomeMessage {
  applied: string[]
  executed: Array<{ name: string; appliedAt: string }>
  /** The migration that failed, rolled back (the migrator's error). */
  error?: SerializedError
}

export type WorkerMessage =
  | { id: number; outcome: MigrationOutcomeMessage }
  /** The job could not run (the file would not open, the set would not load). */
  | { id: number; failed: SerializedError }
  | { log: { level: keyof Logger; facts: Record<string, unknown>; message: string } }

export function serializeError(error: unknown): SerializedError {
  if (!(error instanceof Error)) return { name: 'Error', message: String(error) }
  const code = (error as { code?: unknown }).code
  return { name: error.name, message: error.message, ...(typeof code === 'string' ? { code } : {}), ...(error.stack ? { stack: error.stack } : {}) }
}

/** The error again, on this side: a `TenantryError` keeps its code, anything else its message and `code`. */
export function deserializeError(error: SerializedError): Error {
  const revived =
    error.code !== undefined && Object.hasOwn(TENANTRY_ERROR_CODES, error.code)
      ? new TenantryError(error.code as TenantryErrorCode, error.message)
      : Object.assign(new Error(error.message), error.code !== undefined ? { code: error.code } : {})
  if (error.stack) revived.stack = error.stack
  return revived
}
