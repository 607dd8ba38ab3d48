import type { Generated } from 'kysely'
import type { EngineName, Isolation } from '../engines/engine.js'

/** Lifecycle states. `failed` is visible and retryable; see docs/architecture.md. */
export type TenantStatus = 'provisioning' | 'ready' | 'suspended' | 'moving' | 'deleting' | 'deleted' | 'failed'

/** The lifecycle operation that put a tenant in its current status; a `failed` tenant retries it. */
export type TenantOperation = 'create' | 'suspend' | 'resume' | 'delete' | 'purge' | 'move'

export type DataSourceMode = 'shared' | 'dedicated' | 'byod'

export interface TenantsTable {
  id: string
  slug: string
  name: string
  status: TenantStatus
  operation: TenantOperation
  /** Why the last operation failed, when `status` is `failed`. */
  status_reason: string | null
  created_at: string
  updated_at: string
  /** Set when the tenant's data is gone for good; frees the slug. */
  purged_at: string | null
  /** The tenant's id in another system (migration 0010), unique among tenants not purged. */
  external_id?: string | null
  /** Maintenance mode (migration 0009): writes are refused with this message; null when off. */
  maintenance_message?: string | null
}

export interface PlacementsTable {
  tenant_id: string
  isolation: Isolation
  data_source_id: string
  locator: string
  created_at: string
}

export interface DataSourcesTable {
  id: string
  engine: EngineName
  mode: DataSourceMode
  /** Non-secret connection facts as JSON (a directory, a host). Credentials never live here in clear. */
  config: string
  capacity: number | null
  region: string | null
  /** Sealed credentials (`SecretBox`), bound to `data-source:<id>`. */
  secret: string | null
  created_at: string
}

/** The ledger: one row per tenant per applied tenant migration. */
export interface TenantMigrationsTable {
  tenant_id: string
  migration: string
  applied_at: string
}

export interface AuditLogTable {
  /** integer on SQLite, bigserial on Postgres (which node-postgres returns as a string). */
  id: Generated<number | string>
  at: string
  tenant_id: string | null
  action: string
  actor: string
  details: string | null
}

export interface LocksTable {
  name: string
  holder: string
  pid: number
  host: string
  acquired_at: string
  heartbeat_at: string
}

/** An integration token. The secret itself is never stored: only its SHA-256. */
export interface TokensTable {
  id: string
  tenant_id: string
  name: string
  /** The start of the token (`tnt_<id>_` + 4 characters), shown in listings to recognise it. */
  prefix: string
  /** Hex SHA-256 of the secret part. */
  secret_hash: string
  /** 1 or 0 (an integer on both engines). */
  read_only: number
  created_at: string
  expires_at: string | null
  revoked_at: string | null
  /** Updated at most once a minute per token. */
  last_used_at: string | null
  created_by: string
}

/** A tenant's own settings (quotas…) as JSON; no row means the config's defaults. */
export interface TenantSettingsTable {
  tenant_id: string
  /** JSON: `TenantSettings` (see quotas/quotas.ts). */
  settings: string
  updated_at: string
  updated_by: string
}

/** Usage of one tenant on one UTC day. bigint columns come back from node-postgres as strings. */
export interface TenantUsageTable {
  tenant_id: string
  /** `YYYY-MM-DD`, UTC. */
  day: string
  requests: number | string
  statements: number | string
  rows_read: number | string
  rows_written: number | string
  exec_ms: number | string
  storage_bytes: number | string | null
  updated_at: string
}

/** A deployment secret sealed with the SecretBox, bound to `sealed-value:<name>`. */
export interface SealedValuesTable {
  name: string
  sealed: string
  updated_at: string
}

/** One staged chunk of a claim (claims/claim-store.ts). */
export interface ClaimChunksTable {
  tenant_id: string
  /** 8 to 128 of [A-Za-z0-9_-], chosen by the client. */
  claim_id: string
  /** 0 to N-1; re-sending a seq replaces the chunk. */
  seq: number
  /** Who staged it (`user:<id>` or `token:<id>`): nobody else sees or commits it. */
  owner: string
  /** JSON: `{ [collection]: Array<{ localId, values }> }`, already validated. */
  rows: string
  row_count: number
  created_at: string
}

/** A tenant's data key (services/secrets), sealed by the master key and bound to `tenant-key:<tenant id>`. */
export interface TenantKeysTable {
  tenant_id: string
  sealed: string
  created_at: string
}

/** A tenant's secret, sealed with the tenant's data key and bound to `tenant-secret:<tenant id>:<name>`. */
export interface TenantSecretsTable {
  tenant_id: string
  name: string
  sealed: string
  created_at: string
  updated_at: string
  created_by: string
  updated_by: string
}

/** A backup of one tenant (`tenantry.tenants.backup`). */
export interface TenantBackupsTable {
  id: string
  tenant_id: string
  engine: EngineName
  isolation: Isolation
  data_source_id: string
  /** `sqlite-backup-api`, `pg_dump` or `rows` (the export codec). */
  method: string
  /** The backup file's path. */
  location: string
  bytes: number
  /** sha256 of the file, hex. */
  checksum: string
  /** The tenant's migration ledger when the backup was taken: JSON `[{ name, appliedAt }]`. */
  migrations: string
  created_by: string
  created_at: string
}

/** A live move of one tenant (lifecycle/tenant-move.ts): where from, where to, how far it got. */
export interface TenantMovesTable {
  tenant_id: string
  from_data_source_id: string
  from_isolation: Isolation
  from_locator: string
  to_data_source_id: string
  to_isolation: Isolation
  to_locator: string
  /** `copying` until the placement flips, then `flipped`, then `verified` once the copies matched. */
  phase: string
  actor: string
  started_at: string
  updated_at: string
  flipped_at: string | null
}

export interface CatalogDatabase {
  tenants: TenantsTable
  placements: PlacementsTable
  data_sources: DataSourcesTable
  tenant_migrations: TenantMigrationsTable
  audit_log: AuditLogTable
  locks: LocksTable
  tokens: TokensTable
  tenant_settings: TenantSettingsTable
  tenant_usage: TenantUsageTable
  sealed_values: SealedValuesTable
  tenant_keys: TenantKeysTable
  tenant_secrets: TenantSecretsTable
  claim_chunks: ClaimChunksTable
  tenant_backups: TenantBackupsTable
  tenant_moves: TenantMovesTable
}
