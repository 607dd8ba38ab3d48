/**
 * The data API's semantics that do not depend on where the rows live: how a declared column's
 * values are validated, how `q` is folded for search, and in which order collections that
 * reference each other are written. The server's data API and this
 * package's backends use these same definitions (`@tenantry/client/semantics`, which loads no
 * browser storage), so the two cannot drift apart.
 */
export { BULK_MAX, DATE_PATTERN, DEFAULT_MAX_LENGTH, valueSchema, type ValueColumn } from './schemas.js'
export { foldSearch, matchesSearch, SEARCH_MAX_LENGTH } from './search.js'
export { referenceOrder, type Referencing } from './declaration.js'
