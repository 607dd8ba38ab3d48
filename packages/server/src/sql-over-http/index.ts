/**
 * SQL-over-HTTP: libSQL's Hrana v2 and v3 pipelines (`POST /v2/pipeline`, `/v3/pipeline`, `/v3/cursor`, and in protobuf
 * `/v3-protobuf/pipeline`, `/v3-protobuf/cursor`) and Hrana over
 * WebSocket (`/`, for `ws://` and `libsql://` URLs) for integration tokens, on tenants whose database itself confines raw
 * SQL. One plugin, `sqlOverHttp` (routes.ts: the HTTP routes; websocket.ts: the socket; streams.ts: the streams and their
 * limits, shared; hrana.ts: the requests, shared; protobuf.ts: Hrana 3's protobuf encoding, a codec over the
 * JSON encoding's shapes); the statement rules are in statement-guard.ts.
 */
export { sqlOverHttp } from './routes.js'
export type { SqlOverHttpOptions } from './routes.js'
export { prepareGuarded, leadingKeyword, StatementRefused, ALLOWED_LEADING_KEYWORDS } from './statement-guard.js'
export { SQL_OVER_HTTP_ERROR_CODES, type SqlOverHttpErrorCode } from './error-codes.js'
