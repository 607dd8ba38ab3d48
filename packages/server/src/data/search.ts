/**
 * `?q=` is matched by core's collections (`tenantry`'s collections/search.ts), the one
 * implementation behind `tenantry.collection(name)` and this API.
 */
export { searchCondition, foldSearch, ftsFold, SEARCH_MAX_LENGTH, type SearchIndexUse } from 'tenantry'
