export { createTenantry, Tenantry } from './tenantry.js'
export type { CreateTenantryOptions, MigrationStatus, ReadOnlyAccessOptions } from './tenantry.js'
export { defineConfig, loadConfig, resolveConfig, findConfigFile } from './config.js'
export type { TenantryConfig, ResolvedConfig } from './config.js'
export { currentTenant, requireTenant } from './context.js'
export type { TenantRef } from './context.js'
export { TenantryError, NoTenantError, isTenantryError } from './errors.js'
export { TENANTRY_ERROR_CODES } from './error-codes.js'
export type { TenantryErrorCode } from './error-codes.js'
export { assertValidSlug, slugProblem, SLUG_PATTERN, RESERVED_SLUGS, IDENTIFIER_PATTERN, TENANT_ID_PATTERN, assertValidIdentifier } from './identifiers.js'
export { Catalog, isPostgresUrl } from './catalog/catalog.js'
export type { TenantRecord, Placement, DataSourceRecord, LockInfo, CatalogLock } from './catalog/catalog.js'
export type { TenantStatus, TenantOperation, DataSourceMode } from './catalog/catalog-schema.js'
export { Router } from './router/router.js'
export type { TenantDb, RouterOptions, RouterStats } from './router/router.js'
export type { PreparedQuery } from './router/prepared-query.js'
export { PostgresChangeFeed, SqliteChangeFeed, CHANGE_CHANNEL, CHANGE_FEED_APPLICATION_NAME } from './cluster/change-feed.js'
export type { CatalogChange, ChangeFeed, ChangeListener, PostgresChangeFeedOptions } from './cluster/change-feed.js'
export { TenantMigrationSet, migrateHandle, TENANT_MIGRATION_TABLE } from './migrations/migration-set.js'
export type { TenantMigration, TenantMigrationContext, MigrateHandleOptions } from './migrations/migration-set.js'
export { forEachBounded, runFanOut, THREADS_FROM_TENANTS } from './migrations/fan-out.js'
export { forEachTenant, TENANT_PAGE_SIZE } from './cross-tenant/for-each-tenant.js'
export type { ForEachTenantContext, ForEachTenantDeps, ForEachTenantOptions, TenantFilter, TenantResult } from './cross-tenant/for-each-tenant.js'
export { SharedMigrations, SHARED_MIGRATION_TABLE } from './migrations/shared-migrations.js'
export type { SharedMigrationReport, SharedMigrationStatus, SharedMigrationsDeps } from './migrations/shared-migrations.js'
export type { SharedTables } from './engines/engine.js'
export type { SharedMigrationsConfig, ResolvedSharedMigrations } from './config.js'
export type { FanOutDeps, FanOutOptions, FanOutReport, TenantMigrationResult } from './migrations/fan-out.js'
export { Provisioner, PROVISIONING_STEPS, createLockName } from './provisioning/provisioner.js'
export type { CreateTenantOptions, CreateHooks, DeleteTenantOptions, PlacementPolicy, ProvisioningStep } from './provisioning/provisioner.js'
export { SqliteEngine } from './engines/sqlite/sqlite-engine.js'
export { SqliteExecutor } from './executor/sqlite-executor.js'
export { ExecutorDialect, ExecutorStatementError } from './executor/executor-dialect.js'
export { BOUNDED_STATEMENT_TIMEOUT_MS } from './bounded.js'
export type { BoundedConfig } from './bounded.js'
export type { SqliteExecutorOptions, SqliteExecutorStats, ExecutorSessionOptions } from './executor/sqlite-executor.js'
export { prepareGuarded, leadingKeyword, StatementRefused, ALLOWED_LEADING_KEYWORDS } from './executor/statement-guard.js'
export type { Bindings } from './executor/statement-guard.js'
export type { SqliteEngineOptions, SqliteSynchronous } from './engines/sqlite/sqlite-engine.js'
export type {
  BoundedQueries,
  BoundedQueryOptions,
  BoundedQueryTarget,
  BuiltInEngineName,
  DatabaseEngine,
  DoctorTenant,
  EngineCheck,
  EngineDoctorContext,
  EngineHandle,
  EngineName,
  EnginePlacement,
  EngineRole,
  EngineTemplate,
  Isolation,
  RawSession,
  RawSessionOptions,
  RawSessions,
  RawSqlValue,
  RawStatement,
  RawStatementFailure,
  RawCursor,
  RawStatementSuccess,
  RawStatementDescription,
  ReadOnlyAccess,
  ReadOnlyCredentials,
  SqliteRawSession,
  TenantRows,
} from './engines/engine.js'
export { registerEngine, registeredEngines, engineDefinition, parseDataSourceConfig, describeDataSource } from './engines/registry.js'
export type { DataSourceConfigs, DataSourceConfig, DataSourceConfigInput } from './engines/registry.js'
export type {
  EngineDefinition,
  DataSourceBase,
  DataSourceInput,
  DataSourceRecordParts,
  DataSourceResolveContext,
  EngineFactoryContext,
} from './engines/engine-definition.js'
export type { SqliteDataSourceConfig, SqliteDataSourceInput, SqliteRawSqlConfig } from './engines/sqlite/sqlite-definition.js'
export type { PostgresDataSourceConfig } from './engines/postgres/postgres-definition.js'
export { DataSources } from './data-sources/data-sources.js'
export { SecretBox } from './secrets/secret-box.js'
export {
  openSecretBox,
  rotateSecretKey,
  secretKeySource,
  SECRET_KEY_ENV,
  SECRET_KEY_FILE,
  type RotateSecretKeyOptions,
  type RotateSecretKeyResult,
  type SecretKeySource,
} from './secrets/secret-key.js'
export { PostgresEngine } from './engines/postgres/postgres-engine.js'
export type { PostgresEngineOptions } from './engines/postgres/postgres-engine.js'
export { TokenStore, TOKEN_PREFIX, TOKEN_PATTERN, parseDuration } from './tokens/token-store.js'
export type { TokenRecord, CreateTokenOptions, TokenStoreOptions } from './tokens/token-store.js'
export { runDoctor, type DoctorCheck } from './doctor/doctor.js'
export {
  checkHalfMade,
  findStuckTenants,
  repairHalfMade,
  DEFAULT_REPAIR_GRACE_MS,
  type HalfMadeOptions,
  type RepairAction,
} from './doctor/repair.js'
export type { Logger } from './logger.js'
export { SILENT_LOGGER } from './logger.js'
export { Quotas, parseBytes, formatBytes, resolveQuotasConfig, TENANT_QUOTA_NAMES, DEFAULT_QUOTAS, DEFAULT_ORGANIZATIONS_PER_USER } from './quotas/quotas.js'
export { TenantLimits, TENANT_LIMIT_NAMES, planNamesOf } from './limits/tenant-limits.js'
export type { TenantLimitOverrides, TenantLimitName, TenantLimitChanges, TenantLimitsView, SetTenantLimitsOptions } from './limits/tenant-limits.js'
export type { TenantQuotas, TenantQuotaName, QuotasConfig, ResolvedQuotasConfig, QuotaView, QuotaChanges, SetQuotasOptions } from './quotas/quotas.js'
export { UsageMeter, UsagePlugin } from './usage/usage-meter.js'
export type { UsageMeterOptions } from './usage/usage-meter.js'
export type { UsageCounts, UsageDay, UsageDelta } from './catalog/catalog.js'
export type { TenantStorage, StatementSink } from './engines/engine.js'
export { searchDeclarations, searchIndexStep, searchIndexTable, searchIndexName, trigramSchema, SEARCH_TOKENIZER, SEARCH_INDEX_STEP_PREFIX } from './search-index/search-index.js'
export type { SearchIndexDeclaration } from './search-index/search-index.js'
export type { DerivedStep } from './migrations/derived-step.js'
export { findLedgerEntry, recordLedgerEntry, pruneLedger, ledgerStep, LEDGER_TABLE, LEDGER_STEP_NAME, LEDGER_RETENTION_MS, LEDGER_PRUNE_BATCH, LEDGER_CLAIM_PREFIX, LEDGER_CLAIM_RETENTION_MS } from './ledger/ledger.js'
export type { LedgerEntry } from './ledger/ledger.js'
export { ClaimStore, applyClaim, claimProblems } from './claims/index.js'
export type { ClaimRows, StagedChunk, StageResult, ApplyClaimOptions, ClaimCollection, ClaimProblem, ClaimResult } from './claims/index.js'
export { scopeTenant, TenantServices } from './services/scope.js'
export type { TenantService, PurgeReport } from './services/scope.js'
export { resolveServicesConfig } from './services/services-config.js'
export type { ServicesConfig, CacheConfig, CacheCommonConfig, ResolvedServicesConfig, ResolvedCacheConfig, FilesConfig, ResolvedFilesConfig, JobsConfig, ResolvedJobsConfig } from './services/services-config.js'
export { TenantCache, CACHE_MAX_KEY_LENGTH } from './services/cache/tenant-cache.js'
export type { CacheSetOptions, CacheStats } from './services/cache/tenant-cache.js'
export type { CacheDriver, SweepStep } from './services/cache/cache-driver.js'
export { MemoryCacheDriver } from './services/cache/memory-driver.js'
export { RedisCacheDriver } from './services/cache/redis-driver.js'
export type { RedisCacheDriverOptions } from './services/cache/redis-driver.js'
export { TenantSecrets, SECRET_NAME_PATTERN, SECRET_MAX_BYTES, tenantKeyPurpose, tenantSecretPurpose } from './services/secrets/tenant-secrets.js'
export type { SecretRecord, SecretWriteOptions } from './services/secrets/tenant-secrets.js'
export { TenantState, STATE_MAX_KEY_LENGTH, STATE_MAX_VALUE_BYTES } from './services/state/tenant-state.js'
export type { StateEntry, StateSetOptions, StateListOptions } from './services/state/tenant-state.js'
export { stateStep, STATE_TABLE, STATE_STEP_NAME } from './services/state/state-step.js'
export { TenantFiles, checkContentType } from './services/files/tenant-files.js'
export type { FileBody, FilePutOptions, FileListOptions, FileListPage } from './services/files/tenant-files.js'
export type { FileDriver, FilePutLimits, FileStat } from './services/files/file-driver.js'
export { LocalFileDriver } from './services/files/local-driver.js'
export { TenantJobs } from './services/jobs/tenant-jobs.js'
export type { JobDefinitionInput, JobContext, DefinedJob, DeadLetter } from './services/jobs/tenant-jobs.js'
export { checkFilePath, checkFilePrefix, FILE_PATH_MAX_BYTES, FILE_SEGMENT_MAX_BYTES } from './services/files/file-path.js'
export type { PurgeHook } from './provisioning/provisioner.js'
export {
  columnSchema,
  collectionSchema,
  collectionsSchema,
  parseCollections,
  resolveCollections,
  collectionsInReferenceOrder,
  COLLECTION_IDENTIFIER,
} from './collections/declaration.js'
export type { ColumnConfig, CollectionConfig, CollectionConfigInput } from './collections/declaration.js'
export { Collection, constraintViolation, type ListQuery } from './collections/collection.js'
export { collectionSchemas, BULK_MAX, FILTER_OPERATORS, countResponse, bulkDeleted, type CollectionSchemas, type FilterOperator } from './collections/schemas.js'
export { searchCondition, foldSearch, ftsFold, SEARCH_MAX_LENGTH, type SearchIndexUse } from './collections/search.js'
export { CollectionRepository, type CollectionRunner, type Page } from './collections/repository.js'
export { Collections, type CollectionsHost } from './collections/collections.js'
export { TenantCollection, zodMessage, type FindManyParams, type CountParams, type WriteOptions, type WhereValue } from './collections/tenant-collection.js'
export { assertIdempotencyKey, canonicalJson, requestHash, idempotentWrite, type WriteOutcome, type WriteRequest, type BoundedRun } from './collections/idempotency.js'
export { TenantLifecycle } from './lifecycle/tenant-lifecycle.js'
export type { ExportTenantOptions, ExportTenantResult, ImportTenantOptions, ImportTenantResult, EraseTenantOptions, EraseTenantResult, EraseHook, TransferProgress } from './lifecycle/tenant-lifecycle.js'
export { TenantBackups } from './lifecycle/tenant-backups.js'
export type { BackupTenantOptions, BackupProgress, TenantBackup, RestoreTenantOptions, RestoreTenantResult } from './lifecycle/tenant-backups.js'
export { PointInTimeArchive, type RestorableWindow } from './lifecycle/point-in-time.js'
export type { ResolvedPointInTimeConfig } from './lifecycle/point-in-time-config.js'
export type { EngineBackups, EngineRestoreOptions } from './engines/engine.js'
export { EXPORT_FORMAT, EXPORT_VERSION } from './lifecycle/export-format.js'
export type { ExportHeader, ExportTable, ExportColumn, ExportEnd, EncodedValue, ValueKind } from './lifecycle/export-format.js'
export { TenantAdoption, splitSlug } from './lifecycle/tenant-adopt.js'
export type { AdoptSource, AdoptTenantOptions, AdoptTenantResult, SplitTenantsOptions, SplitTenantResult, SplitTenantsResult } from './lifecycle/tenant-adopt.js'
export { externalIdProblem, MAX_EXTERNAL_ID_LENGTH } from './lifecycle/external-id.js'
export type { TenantKey } from './router/router.js'
export type { EngineAdoption } from './engines/engine.js'
export { TenantMove, MOVE_STEPS } from './lifecycle/tenant-move.js'
export type { MoveTenantOptions, MoveTenantResult, MoveProgress, MoveStep } from './lifecycle/tenant-move.js'
export { DEFAULT_MAINTENANCE_MESSAGE } from './lifecycle/tenant-maintenance.js'
export type { MaintenanceOptions } from './lifecycle/tenant-maintenance.js'
