/** The change capture's bookkeeping inside a SQLite tenant file during a live move (see change-capture.ts). */
export const SQLITE_CAPTURE_STATE = '_tenantry_move_state'
export const SQLITE_CAPTURE_CHANGES = '_tenantry_move_changes'
export const SQLITE_CAPTURE_TABLES = [SQLITE_CAPTURE_STATE, SQLITE_CAPTURE_CHANGES] as const
/** Postgres: a schema of its own in the database that holds the tenant's tables. */
export const POSTGRES_CAPTURE_SCHEMA = 'tenantry_moves'
