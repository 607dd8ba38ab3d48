import { TenantryError } from '../../errors.js'
import { assertTemplateKey, assertTenantId, IDENTIFIER_PATTERN } from '../../identifiers.js'
import { TENANT_MIGRATION_LOCK_TABLE, TENANT_MIGRATION_TABLE } from '../../migrations/migration-set.js'

/**
 * How Tenantry names what it makes on a Postgres server, each derived from an id and never
 * from input. The rules these names follow, and their quoting, are in `identifiers.ts`.
 */

/** The schema holding the shared tables of row-isolated tenants, in each Postgres data source. */
export const ROW_SCHEMA = 'tenant_rows'

/** The transaction-local setting that RLS policies compare `tenant_id` with. */
export const TENANT_SETTING = 'tenantry.tenant_id'

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
 * A schema- or database-isolated tenant's own login role, which its app handles connect as:
 * it has rights on that tenant's schema or database alone, so raw SQL cannot reach another's.
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
