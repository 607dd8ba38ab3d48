/**
 * The data API's schemas are the collections' own, built by core (`tenantry`'s
 * collections/schemas.ts) from `server.collections`: the same objects validate
 * `tenantry.collection(name)`'s arguments and this API's requests, serialize answers and
 * document each collection in the OpenAPI document.
 */
export { BULK_MAX, FILTER_OPERATORS, bulkDeleted, collectionSchemas, countResponse, type CollectionSchemas, type FilterOperator } from 'tenantry'
export { valueSchema } from '@tenantry/client/semantics'
