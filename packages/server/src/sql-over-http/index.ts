/**
 * SQL-over-HTTP: libSQL's Hrana v2 and v3 pipelines (`POST /v2/pipeline`, `/v3/pipeline`, `/v3/cursor`) for integration tokens, on
 * tenants whose database itself confines raw SQL. One plugin, `sqlOverHttp` (routes.ts: the
 * routes and their streams); the statement rules are in statement-guard.ts.
 */
export { sqlOverHttp } from './routes.js'
export type { SqlOverHttpOptions } from './routes.js'
export { prepareGuarded, leadingKeyword, StatementRefused, ALLOWED_LEADING_KEYWORDS } from './statement-guard.js'
export { SQL_OVER_HTTP_ERROR_CODES, type SqlOverHttpErrorCode } from './error-codes.js'
