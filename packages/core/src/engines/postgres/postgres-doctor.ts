import type { EngineCheck, EngineDoctorContext } from '../engine.js'
import type { PostgresContext } from './isolation-kind.js'
import { tenantRoleName } from './postgres-names.js'

/** Schemas that belong to Postgres itself, not to anything Tenantry or the app created. */
const SYSTEM_SCHEMAS = `n.nspname not in ('pg_catalog', 'information_schema', 'pg_toast') and n.nspname not like 'pg_temp_%' and n.nspname not like 'pg_toast_temp_%'`

/**
 * `tenantry doctor` on a Postgres data source: the app role is least-privilege and owns
 * nothing, every tenant's storage exists and belongs to the admin, nothing in a tenant's
 * storage runs with another role's rights, tables with `tenant_id` have RLS forced, and each
 * schema or database tenant has its own login role. Warns while row-isolated tenants exist:
 * their boundary is a setting raw SQL can change.
 * Read-only, as the admin.
 */
export async function checkPostgres(context: PostgresContext, { tenants }: EngineDoctorContext): Promise<EngineCheck[]> {
  const checks: EngineCheck[] = []
  const add = (name: string, status: EngineCheck['status'], detail: string) => void checks.push({ name, status, detail })
  const role = context.appRole
  const inspect = context.connection.query.bind(context.connection)
  const [{ admin, database }] = (await inspect<{ admin: string; database: string }>(
    'select current_user as admin, current_database() as database',
  )) as [{ admin: string; database: string }]
  const stored = tenants.filter((t) => t.stored)
  const schemaTenants = stored.filter((t) => t.placement.isolation === 'schema')
  const databaseTenants = stored.filter((t) => t.placement.isolation === 'database')

  // 1. The role itself: a superuser or BYPASSRLS role crosses every boundary; CREATEDB/CREATEROLE widen it.
  const [attributes] = await inspect<{ rolsuper: boolean; rolbypassrls: boolean; rolcreatedb: boolean; rolcreaterole: boolean }>(
    'select rolsuper, rolbypassrls, rolcreatedb, rolcreaterole from pg_roles where rolname = $1',
    [role],
  )
  if (!attributes) {
    // Created on the first tenant create; missing afterwards means someone dropped it.
    add('app role', tenants.length ? 'fail' : 'warn', `role ${role} does not exist${tenants.length ? '' : ' yet (created with the first tenant)'}`)
    return checks
  }
  const granted = Object.entries({ SUPERUSER: attributes.rolsuper, BYPASSRLS: attributes.rolbypassrls, CREATEDB: attributes.rolcreatedb, CREATEROLE: attributes.rolcreaterole })
    .filter(([, on]) => on)
    .map(([name]) => name)
  add('app role attributes', granted.length ? 'fail' : 'ok', granted.length ? `${role} has ${granted.join(', ')}` : `${role}: LOGIN, no SUPERUSER, BYPASSRLS, CREATEDB or CREATEROLE`)

  // Each database to look into: the data source's own (schema tenants) and each tenant database.
  const databases: Array<{ label: string; name: string | undefined; tenantSchemas: string[] | undefined }> = [
    { label: database, name: undefined, tenantSchemas: schemaTenants.map((t) => t.placement.locator) },
  ]

  // 2. Every tenant's storage exists and belongs to the admin (the app role must not own it).
  const problems: string[] = []
  if (schemaTenants.length) {
    const rows = await inspect<{ nspname: string; owner: string }>(
      'select n.nspname, pg_get_userbyid(n.nspowner) as owner from pg_namespace n where n.nspname = any($1)',
      [schemaTenants.map((t) => t.placement.locator)],
    )
    const owners = new Map(rows.map((r) => [r.nspname, r.owner]))
    for (const t of schemaTenants) {
      const owner = owners.get(t.placement.locator)
      if (owner === undefined) problems.push(`schema ${t.placement.locator} of ${t.slug} is missing`)
      else if (owner !== admin) problems.push(`schema ${t.placement.locator} of ${t.slug} is owned by ${owner}, not ${admin}`)
    }
  }
  if (databaseTenants.length) {
    const rows = await inspect<{ datname: string; owner: string }>(
      'select datname, pg_get_userbyid(datdba) as owner from pg_database where datname = any($1)',
      [databaseTenants.map((t) => t.placement.locator)],
    )
    const owners = new Map(rows.map((r) => [r.datname, r.owner]))
    for (const t of databaseTenants) {
      const owner = owners.get(t.placement.locator)
      if (owner === undefined) {
        problems.push(`database ${t.placement.locator} of ${t.slug} is missing`)
      } else {
        if (owner !== admin) problems.push(`database ${t.placement.locator} of ${t.slug} is owned by ${owner}, not ${admin}`)
        databases.push({ label: t.placement.locator, name: t.placement.locator, tenantSchemas: undefined })
      }
    }
  }
  add('tenant storage', problems.length ? 'fail' : 'ok', problems.length ? problems.join('; ') : `${stored.length} tenant(s): storage present, owned by ${admin}`)

  const owned: string[] = []
  const creatable: string[] = []
  const definers: string[] = []
  const unprotected: string[] = []
  let rowTables = 0
  for (const db of databases) {
    // Tenant schemas of this database: named ones, or (in a tenant database) every non-system schema.
    const scope = (param: string) => (db.tenantSchemas ? `n.nspname = any(${param})` : SYSTEM_SCHEMAS)
    const at = (what: string) => (db.name ? `${db.label}: ${what}` : what)

    // 3. The app role owns nothing: an owner can ALTER, DROP, GRANT and disable RLS.
    const ownedRows = await inspect<{ kind: string; name: string }>(
      `with r as (select oid from pg_roles where rolname = $1)
       select 'schema' as kind, n.nspname as name from pg_namespace n, r where n.nspowner = r.oid
       union all
       select case c.relkind when 'S' then 'sequence' when 'v' then 'view' when 'm' then 'materialized view' when 'i' then 'index' else 'table' end,
              n.nspname || '.' || c.relname
         from pg_class c join pg_namespace n on n.oid = c.relnamespace, r where c.relowner = r.oid
       union all
       select 'function', n.nspname || '.' || p.proname from pg_proc p join pg_namespace n on n.oid = p.pronamespace, r where p.proowner = r.oid
       union all
       select 'type', n.nspname || '.' || t.typname from pg_type t join pg_namespace n on n.oid = t.typnamespace, r
        where t.typowner = r.oid and t.typrelid = 0 and t.typelem = 0
       union all
       select 'database', d.datname from pg_database d, r where d.datdba = r.oid and d.datname = current_database()`,
      [role],
      db.name,
    )
    owned.push(...ownedRows.map((row) => at(`${row.kind} ${row.name}`)))

    // 4. No CREATE for the app role: in a tenant schema it could plant objects it owns; on the database, new schemas.
    const createRows = await inspect<{ target: string }>(
      `select 'schema ' || n.nspname as target from pg_namespace n
        where (n.nspname = 'public' or ${scope('$2')}) and has_schema_privilege($1, n.oid, 'CREATE')
       union all
       select 'database ' || current_database() where has_database_privilege($1, current_database(), 'CREATE')`,
      db.tenantSchemas ? [role, db.tenantSchemas] : [role],
      db.name,
    )
    creatable.push(...createRows.map((r) => at(r.target)))

    // 5. Views and SECURITY DEFINER functions run with their owner's rights: any owner but the admin is a way around the boundary.
    if (!db.tenantSchemas || db.tenantSchemas.length) {
      const definerRows = await inspect<{ what: string }>(
        `select case c.relkind when 'm' then 'materialized view ' else 'view ' end || n.nspname || '.' || c.relname || ' owned by ' || pg_get_userbyid(c.relowner) as what
           from pg_class c join pg_namespace n on n.oid = c.relnamespace
          where c.relkind in ('v', 'm') and ${scope('$2')} and pg_get_userbyid(c.relowner) <> $1
         union all
         select 'security definer function ' || n.nspname || '.' || p.proname || ' owned by ' || pg_get_userbyid(p.proowner)
           from pg_proc p join pg_namespace n on n.oid = p.pronamespace
          where p.prosecdef and ${scope('$2')} and pg_get_userbyid(p.proowner) <> $1`,
        db.tenantSchemas ? [admin, db.tenantSchemas] : [admin],
        db.name,
      )
      definers.push(...definerRows.map((r) => at(r.what)))
    }

    // 6. Row isolation (forward-looking): a table the app role can read that carries tenant_id must have RLS on and forced.
    const rowRows = await inspect<{ name: string; enabled: boolean; forced: boolean }>(
      `select n.nspname || '.' || c.relname as name, c.relrowsecurity as enabled, c.relforcerowsecurity as forced
         from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where c.relkind in ('r', 'p') and ${SYSTEM_SCHEMAS}
          and exists (select 1 from pg_attribute a where a.attrelid = c.oid and a.attname = 'tenant_id' and not a.attisdropped)
          and has_table_privilege($1, c.oid, 'SELECT')`,
      [role],
      db.name,
    )
    rowTables += rowRows.length
    unprotected.push(...rowRows.filter((r) => !r.enabled || !r.forced).map((r) => at(`${r.name} (RLS ${r.enabled ? 'enabled, not forced' : 'off'})`)))
  }
  add('app role owns nothing', owned.length ? 'fail' : 'ok', owned.length ? `${role} owns ${owned.join(', ')}` : `${role} owns no objects in ${databases.length} database(s)`)
  add('app role cannot create', creatable.length ? 'fail' : 'ok', creatable.length ? `${role} has CREATE on ${creatable.join(', ')}` : `${role} has no CREATE on public, tenant schemas or databases`)
  add('views and definer functions', definers.length ? 'fail' : 'ok', definers.length ? definers.join('; ') : `none owned by a role other than ${admin} in tenant storage`)
  // 7. Each schema and database tenant's own role exists: its app handles log in as it, and it is the raw-SQL boundary.
  const ownRoles = [...schemaTenants, ...databaseTenants]
  if (ownRoles.length) {
    const names = ownRoles.map((t) => tenantRoleName(t.id))
    const found = new Set((await inspect<{ rolname: string }>('select rolname from pg_roles where rolname = any($1)', [names])).map((r) => r.rolname))
    const missing = ownRoles.filter((t) => !found.has(tenantRoleName(t.id)))
    add(
      'tenant roles',
      missing.length ? 'fail' : 'ok',
      missing.length
        ? `no login role for ${missing.map((t) => `${t.slug} (${tenantRoleName(t.id)})`).join(', ')}: its app handles cannot connect`
        : `${ownRoles.length} schema or database tenant(s), each with its own login role`,
    )
  }

  // 8. The shared app role reaches no schema or database tenant (it did before tenants had roles of their own;
  // opening such a tenant takes it back). Row tenants' raw SQL runs as the app role: this is their way across.
  if (ownRoles.length) {
    const reached = await inspect<{ name: string }>(
      `select nspname as name from pg_namespace where nspname = any($2) and has_schema_privilege($1, oid, 'USAGE')
       union all
       select datname from pg_database where datname = any($3) and has_database_privilege($1, oid, 'CONNECT')`,
      [role, schemaTenants.map((t) => t.placement.locator), databaseTenants.map((t) => t.placement.locator)],
    )
    add(
      'app role reaches no tenant storage',
      reached.length ? 'fail' : 'ok',
      reached.length
        ? `${role} can still use ${reached.map((r) => r.name).join(', ')}: open each tenant once (its role is then made and the app role's rights taken back)`
        : `${role} has no USAGE on tenant schemas and no CONNECT on tenant databases`,
    )
  }

  // 9. Raw SQL: schema and database tenants are confined by their own role; row tenants by a setting the SQL can change.
  const rowTenants = stored.filter((t) => t.placement.isolation === 'row')
  add(
    'raw SQL boundary',
    rowTenants.length ? 'warn' : 'ok',
    rowTenants.length
      ? `${rowTenants.length} row-isolated tenant(s) share ${role}: raw SQL that sets tenantry.tenant_id reaches another tenant's rows; give raw SQL access only to schema or database tenants`
      : 'raw SQL of each tenant runs as a role with rights on its own schema or database alone',
  )

  add(
    'row isolation',
    unprotected.length ? 'fail' : 'ok',
    unprotected.length ? `tenant_id tables without forced RLS: ${unprotected.join(', ')}` : rowTables ? `${rowTables} row-isolated table(s): RLS enabled and forced` : 'no row-isolated tables',
  )
  return checks
}
