export { sqlOverHttp } from './plugin.js'
export type { SqlOverHttpOptions } from './plugin.js'
export { prepareGuarded, leadingKeyword, StatementRefused, ALLOWED_LEADING_KEYWORDS } from './statement-guard.js'
