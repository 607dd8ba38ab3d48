/**
 * `@tenantry/client`: Tenantry in the browser. Typed collections from the same declarations as
 * the server's config, over the server's data API (`remoteBackend`) or IndexedDB
 * (`localBackend`), with the same behaviour on both.
 */
export { createClient, type CollectionClient, type CreateClientOptions, type ListParams, type Page, type TenantryClient } from './client.js'
export type { Backend } from './backend.js'
export { remoteBackend, type RemoteBackendOptions, type WriteOp } from './remote.js'
export { queuedBackend, type QueuedBackend, type QueuedBackendOptions, type QueuedWrite, type QueueStatus } from './queue.js'
export { localBackend, type LocalBackend, type LocalBackendOptions } from './local.js'
export { claimLocalData, resumeClaim, hasPendingClaim, abandonClaim, type ClaimLocalDataOptions, type ClaimOutcome, type ClaimProgress } from './claim.js'
export { isPassingFailure, jsonRequest, type JsonRequestInit, type RetryOptions, type ServerTarget } from './http.js'
export {
  defineCollections,
  resolveCollection,
  FILTER_OPERATORS,
  type ColumnDeclaration,
  type ColumnType,
  type CollectionDeclaration,
  type CollectionsDeclaration,
  type CreateOf,
  type FilterOperator,
  type IdOf,
  type OrderOf,
  type ResolvedCollection,
  type RowOf,
  type UpdateOf,
  type WhereOf,
} from './declaration.js'
export { TenantryClientError, isTenantryClientError, type TenantryClientErrorCode } from './errors.js'
export { foldSearch, matchesSearch, SEARCH_MAX_LENGTH } from './search.js'
export type { ListOptions } from './query.js'
export { createAuth, type AuthOptions, type AuthProvider, type Me, type Session, type SessionUser, type TenantryAuthClient, type Workspace } from './auth.js'
export type { Invitation, MembersClient, ReceivedInvitation, WorkspaceMember, WorkspaceRef, WorkspaceRole } from './members.js'
export {
  createIntegrations,
  type CreatedIntegrationToken,
  type CreateTokenInput,
  type IntegrationsClient,
  type IntegrationToken,
  type ReadOnlyAccessGrant,
  type ReadOnlyAccessOffer,
} from './integrations.js'
export {
  createAdmin,
  type AddDataSourceInput,
  type AdminClient,
  type AdminTenant,
  type AdminTenantDetail,
  type AuditEntry,
  type CreateTenantInput,
  type DataSource,
  type DataSourceChange,
  type DataSourceMode,
  type DataSourceTest,
  type ErasedTenant,
  type TenantBackup,
  type RestoredTenant,
  type FanOutReport,
  type Isolation,
  type MigrationRun,
  type MigrationStatus,
  type TenantLimitOverrides,
  type TenantLimits,
  type TenantMigrationResult,
  type TenantQuotas,
  type TenantQuotaValues,
  type TenantUsage,
  type UsageDay,
} from './admin.js'
