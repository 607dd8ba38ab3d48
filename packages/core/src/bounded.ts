import { z } from 'zod'
import { TenantryError } from './errors.js'

/**
 * The deadline of one statement of `tenantry.bounded` (the server's data API) where neither
 * the call nor the data source sets one: short, since the data API's statements are pages,
 * counts and single-row writes. (Raw SQL over HTTP keeps its own, `rawSql.statementTimeoutMs`.)
 */
export const BOUNDED_STATEMENT_TIMEOUT_MS = 2000

/** A data source's `bounded` block: the deadlines of `tenantry.bounded` on its tenants. */
export interface BoundedConfig {
  /**
   * Longest one statement of `tenantry.bounded` (the data API's lists, counts and writes) may
   * run before it is stopped with `STATEMENT_TIMEOUT`. A tenant's own can be set over it by
   * the server (`server.dataApi.tenants`).
   * @default 2000
   */
  statementTimeoutMs?: number
}

/** The `bounded` block, strict: a misspelt key is refused. */
export const BOUNDED_CONFIG_SCHEMA = z.strictObject({
  statementTimeoutMs: z.number().int().positive().optional(),
})

/** A record's `bounded` block checked again (a record may come from an older version or another process's config). */
export function parseBoundedConfig(value: unknown, dataSourceId: string): BoundedConfig | undefined {
  if (value === undefined) return undefined
  const parsed = BOUNDED_CONFIG_SCHEMA.safeParse(value)
  if (!parsed.success) throw new TenantryError('INVALID_CONFIG', `Data source ${dataSourceId}: bounded: ${parsed.error.issues[0]?.message}`)
  return parsed.data
}

/** The deadline a bounded call runs under: the call's, else the data source's, else the default. */
export function boundedTimeout(callMs: number | undefined, config: BoundedConfig | undefined): number {
  const ms = callMs ?? config?.statementTimeoutMs ?? BOUNDED_STATEMENT_TIMEOUT_MS
  if (!Number.isInteger(ms) || ms <= 0) throw new TenantryError('INVALID_OPTION', `statementTimeoutMs must be a positive integer, not ${ms}`)
  return ms
}
