/**
 * The rules for raw SQL over HTTP live in core (`tenantry`), because they run inside the
 * executor processes that hold the tenant's connection; see core's executor/statement-guard.ts.
 */
export { ALLOWED_LEADING_KEYWORDS, leadingKeyword, prepareGuarded, StatementRefused } from 'tenantry'
export type { Bindings } from 'tenantry'
