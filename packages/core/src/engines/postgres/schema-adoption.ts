import type pg from 'pg'
import { TenantryError } from '../../errors.js'
import { quoteIdentifier, quoteReportedName } from '../../identifiers.js'
import type { PostgresContext, PostgresTenant } from './isolation-kind.js'
import { ROW_SCHEMA } from './postgres-names.js'
import { grantSharedReads } from './shared-tables.js'
import { dropLoginRole, grantAppAccessOnMigratedSchema, revokeAppRoleFromSchema, roleLock, upsertTenantRole } from './postgres-privileges.js'

/** Schemas that are never adopted: Postgres's own, the shared row schema, and tenants' own (`t_<id>`). */
function refusal(schema: string): string | undefined {
  if (schema === 'public') return 'the public schema is shared by everything in the database'
  if (/^pg_/.test(schema) || schema === 'information_schema') return 'it is a Postgres system schema'
  if (schema === ROW_SCHEMA) return "it holds row-isolated tenants' shared tables"
  if (/^t_t[a-z2-7]{19}$/.test(schema)) return "it is a Tenantry tenant's schema already"
  return undefined
}

/** The relations of `schema` by kind, for `ALTER … OWNER`: tables, views, materialized views, sequences not owned by a column. */
const RELATION_KEYWORD: Record<string, string> = { r: 'TABLE', p: 'TABLE', v: 'VIEW', m: 'MATERIALIZED VIEW', f: 'FOREIGN TABLE', S: 'SEQUENCE' }

/**
 * Moves an existing schema of the data source's database in as `tenant`'s storage, in one
 * transaction: renamed to the tenant's locator (`t_<id>`, derived from the tenant id, never
 * from input), given to the admin (the schema, its tables, views, sequences and functions, as
 * a schema Tenantry made is), every other role's privileges on it taken back (a legacy app
 * user, PUBLIC), and the tenant's own role granted exactly what a provisioned tenant's has
 * (`appPrivileges`, migration tables read-only). `tenantry doctor` then sees it as any other
 * schema tenant. The admin must be allowed to take ownership (a superuser, or a member of the
 * current owners). Rejects, changing nothing, when the schema is missing or refused.
 */
export async function adoptSchema(context: PostgresContext, tenant: PostgresTenant, existing: string): Promise<void> {
  const { connection } = context
  const refused = refusal(existing)
  if (refused) throw new TenantryError('INVALID_OPTION', `Schema ${quoteReportedName(existing)} cannot be adopted: ${refused}`)
  const login = context.tenantLogin(tenant)
  await connection.transaction((client) => upsertTenantRole(client, context.dataSourceId, login), roleLock(login.name))
  try {
    await connection.transaction(async (client) => {
      const found = await client.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [existing])
      if (!found.rowCount) throw new TenantryError('INVALID_OPTION', `Schema ${quoteReportedName(existing)} does not exist on data source ${context.dataSourceId}`)
      const schema = quoteIdentifier(tenant.name)
      await client.query(`ALTER SCHEMA ${quoteIdentifier(existing)} RENAME TO ${schema}`)
      await client.query(`ALTER SCHEMA ${schema} OWNER TO CURRENT_USER`)
      await ownEverything(client, tenant.name)
      await revokeOthers(client, tenant.name)
      await grantAppAccessOnMigratedSchema(client, tenant.name, login.name, context.appPrivileges)
      await revokeAppRoleFromSchema(client, tenant.name, context.appRole)
      await grantSharedReads(client, context, login.name)
    })
  } catch (error) {
    await connection.transaction((client) => dropLoginRole(client, login.name), roleLock(login.name)).catch(() => undefined)
    throw error
  }
}

/**
 * Undoes `adoptSchema` after a later step failed: drops `created` (tables the adopt made in the
 * schema, such as Tenantry's migration records), renames the schema back to `existing`, and
 * drops the tenant's role with its grants. Ownership stays with the admin. Idempotent.
 */
export async function releaseSchema(context: PostgresContext, tenant: PostgresTenant, existing: string, created: readonly string[]): Promise<void> {
  const { connection } = context
  await connection.transaction(async (client) => {
    const found = await client.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [tenant.name])
    if (!found.rowCount) return
    for (const table of created) await client.query(`DROP TABLE IF EXISTS ${quoteIdentifier(tenant.name)}.${quoteReportedName(table)} CASCADE`)
    await client.query(`ALTER SCHEMA ${quoteIdentifier(tenant.name)} RENAME TO ${quoteIdentifier(existing)}`)
  })
  const role = context.tenantLogin(tenant).name
  await connection.transaction((client) => dropLoginRole(client, role), roleLock(role))
}

export async function ownEverything(client: pg.ClientBase, schema: string): Promise<void> {
  const relations = await client.query<{ name: string; kind: string }>(
    `select c.relname as name, c.relkind as kind from pg_class c join pg_namespace n on n.oid = c.relnamespace
     left join pg_depend d on d.objid = c.oid and d.deptype in ('a', 'i') and d.classid = 'pg_class'::regclass and c.relkind = 'S'
     where n.nspname = $1 and c.relkind in ('r', 'p', 'v', 'm', 'f', 'S') and d.objid is null and c.relowner <> (select oid from pg_roles where rolname = current_user)
     order by c.relname`,
    [schema],
  )
  for (const r of relations.rows) {
    await client.query(`ALTER ${RELATION_KEYWORD[r.kind]!} ${quoteIdentifier(schema)}.${quoteReportedName(r.name)} OWNER TO CURRENT_USER`)
  }
  const routines = await client.query<{ signature: string }>(
    `select quote_ident(n.nspname) || '.' || quote_ident(p.proname) || '(' || pg_get_function_identity_arguments(p.oid) || ')' as signature
     from pg_proc p join pg_namespace n on n.oid = p.pronamespace
     where n.nspname = $1 and p.proowner <> (select oid from pg_roles where rolname = current_user)`,
    [schema],
  )
  for (const r of routines.rows) await client.query(`ALTER ROUTINE ${r.signature} OWNER TO CURRENT_USER`)
}

/** Takes back every privilege on the schema and its tables, sequences and routines from anyone but their owner (the admin). */
export async function revokeOthers(client: pg.ClientBase, schema: string): Promise<void> {
  const grantees = await client.query<{ grantee: string | null }>(
    `select distinct case when a.grantee = 0 then null else pg_get_userbyid(a.grantee) end as grantee from (
       select n.nspacl as acl, n.nspowner as owner from pg_namespace n where n.nspname = $1
       union all
       select c.relacl, c.relowner from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = $1
       union all
       select p.proacl, p.proowner from pg_proc p join pg_namespace n on n.oid = p.pronamespace where n.nspname = $1
     ) o, aclexplode(o.acl) a where a.grantee <> o.owner`,
    [schema],
  )
  const on = quoteIdentifier(schema)
  // Routines are executable by PUBLIC by default, which aclexplode does not list while the ACL is unset.
  const everyone = new Set([...grantees.rows.map((r) => (r.grantee === null ? 'PUBLIC' : quoteReportedName(r.grantee))), 'PUBLIC'])
  for (const grantee of everyone) {
    await client.query(`REVOKE ALL ON SCHEMA ${on} FROM ${grantee}`)
    await client.query(`REVOKE ALL ON ALL TABLES IN SCHEMA ${on} FROM ${grantee}`)
    await client.query(`REVOKE ALL ON ALL SEQUENCES IN SCHEMA ${on} FROM ${grantee}`)
    await client.query(`REVOKE ALL ON ALL ROUTINES IN SCHEMA ${on} FROM ${grantee}`)
  }
}
