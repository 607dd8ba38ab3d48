/**
 * `@tenantry/client`: Tenantry in the browser. Typed collections from the same declarations as
 * the server's config, over the server's data API (`remoteBackend`) or IndexedDB
 * (`localBackend`), with the same behaviour on both.
 */
export { createClient, type CollectionClient, type CreateClientOptions, type ListParams, type Page, type TenantryClient } from './client.js'
export type { Backend } from './backend.js'
export { remoteBackend, type RemoteBackendOptions } from './remote.js'
export { localBackend, type LocalBackendOptions } from './local.js'
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
