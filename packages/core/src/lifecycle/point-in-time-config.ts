import { TenantryError } from '../errors.js'
import { parseDuration } from '../tokens/token-store.js'

/** `backups.pointInTime` as resolved from the config. */
export interface ResolvedPointInTimeConfig {
  /** How far back a restore may go (ms). */
  retentionMs: number
  /** How often new WAL frames are shipped (ms): the resolution of a restore. */
  intervalMs: number
  /** A chain older than this starts over with a new base, so chains past the retention can go (ms). */
  rebaseAfterMs: number
}

export interface PointInTimeConfigInput {
  retention?: string | number
  intervalMs?: number
  rebaseAfter?: string | number
}

const DEFAULT_RETENTION_MS = 7 * 86_400_000
const DEFAULT_INTERVAL_MS = 1000

export function resolvePointInTimeConfig(input: PointInTimeConfigInput): ResolvedPointInTimeConfig {
  const retentionMs = durationOf(input.retention, DEFAULT_RETENTION_MS, 'retention')
  const intervalMs = input.intervalMs ?? DEFAULT_INTERVAL_MS
  if (!Number.isInteger(intervalMs) || intervalMs < 10) throw new TenantryError('INVALID_CONFIG', `backups.pointInTime.intervalMs must be a whole number of milliseconds ≥ 10, not ${JSON.stringify(input.intervalMs)}`)
  // Half the retention by default: the chain reaching past the window is then at most half of it.
  const rebaseAfterMs = durationOf(input.rebaseAfter, Math.max(intervalMs, Math.min(86_400_000, Math.floor(retentionMs / 2))), 'rebaseAfter')
  return { retentionMs, intervalMs, rebaseAfterMs }
}

function durationOf(value: string | number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback
  const ms = typeof value === 'string' ? parseDuration(value) : value
  if (ms === undefined || !Number.isInteger(ms) || ms <= 0) throw new TenantryError('INVALID_CONFIG', `backups.pointInTime.${name} must be a duration (7d, 12h, 30m) or a positive number of ms, not ${JSON.stringify(value)}`)
  return ms
}
