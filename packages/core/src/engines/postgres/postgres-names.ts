import { TenantryError } from '../../errors.js'
import { assertTemplateKey, assertTenantId, IDENTIFIER_PATTERN } from '../../identifiers.js'
import { TENANT_MIGRATION_LOCK_TABLE, TENANT_MIGRATION_TABLE } from '../../migrations/migration-set.js'

/**
 * How Tenantry names what it makes on a Postgres server, each derived from an id and never
 * from input. The rules these names follow, and their quoting, are in `identifiers.ts`.
 */

/** The schema holding the shared tables of row-isolated tenants, in each Postgres data source. */
export const ROW_SCHEMA = 'tenant_rows'

/**
 * The transaction-local setting the admin sets to reach one row tenant's rows (migrations and
 * `drop`). It is honoured for the admin alone: see `ROW_TENANT_FUNCTION`.
 */
export const TENANT_SETTING = 'tenantry.tenant_id'

/**
 * The SQL function in `ROW_SCHEMA` that RLS policies and `tenant_id` defaults call: the tenant
 * id of the row tenant's login role `current_user` (`t_<id>_app`), or for the admin the
 * `TENANT_SETTING`, and NULL for anyone else. A statement can change a setting, not its role.
 */
export const ROW_TENANT_FUNCTION = 'tenantry_tenant_id'

/** The policy every row-isolated table carries. */
export const ROW_POLICY = 'tenant_isolation'

/**
 * The NOLOGIN group role that holds the privileges on the shared tables of row isolation:
 * each row tenant's login role is a member, so a new table needs one grant, not one per tenant.
 */
export function rowGroupRoleName(dataSourceId: string): string {
  return `tenantry_rows_${dataSourceId}`
}

/** The comment the row group role carries, so that it can be found (`tenantry doctor`, test clean-up). */
export function rowGroupRoleComment(dataSourceId: string): string {
  return `tenantry row group role of data source ${dataSourceId}`
}

/** Postgres data source ids are shorter than others: they name the app role and template databases, within 63 characters. */
export const MAX_POSTGRES_DATA_SOURCE_ID_LENGTH = 49

export function assertPostgresDataSourceId(id: string): void {
  if (!IDENTIFIER_PATTERN.test(id) || id.length > MAX_POSTGRES_DATA_SOURCE_ID_LENGTH) {
    throw new TenantryError(
      'INVALID_IDENTIFIER',
      `Postgres data source ids have at most ${MAX_POSTGRES_DATA_SOURCE_ID_LENGTH} characters of a-z, 0-9 and "_": ${id}`,
    )
  }
}

/** The app role of a data source: owns nothing, cannot create, alter or drop, cannot bypass RLS. */
export function appRoleName(dataSourceId: string): string {
  return `tenantry_app_${dataSourceId}`
}

/** A tenant's schema (schema isolation) or database (database isolation): `t_<tenant id>`. */
export function tenantStorageName(tenantId: string): string {
  assertTenantId(tenantId)
  return `t_${tenantId}`
}

/** Tenantry's own tables inside a tenant's storage: the migration records and their lock. Only the admin writes them. */
export const TENANT_MIGRATION_TABLES = [TENANT_MIGRATION_TABLE, TENANT_MIGRATION_LOCK_TABLE] as const

/**
 * A tenant's own login role, which its app handles connect as: under schema or database
 * isolation it has rights on that tenant's schema or database alone, and under row isolation
 * RLS keys on it, so raw SQL cannot reach another tenant's data.
 */
export function tenantRoleName(tenantId: string): string {
  return `${tenantStorageName(tenantId)}_app`
}

/** The comment every tenant role of a data source carries, so that it can be found (`tenantry doctor`, test clean-up). */
export function tenantRoleComment(dataSourceId: string): string {
  return `tenantry tenant role of data source ${dataSourceId}`
}

/** A tenant's read-only login role. */
export function readOnlyRoleName(tenantId: string): string {
  return `${tenantStorageName(tenantId)}_ro`
}

/** The prefix of a data source's template databases, for finding them all. */
export function templateDatabasePrefix(dataSourceId: string): string {
  return `tpl_${dataSourceId}_`
}

/** The template database of a migration set (database isolation), named by its content hash. */
export function templateDatabaseName(dataSourceId: string, key: string): string {
  assertTemplateKey(key)
  return `${templateDatabasePrefix(dataSourceId)}${key.slice(0, 16)}`
}
