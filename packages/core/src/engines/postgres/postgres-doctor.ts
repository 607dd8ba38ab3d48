import type { EngineCheck, EngineDoctorContext } from '../engine.js'
import type { PostgresContext } from './isolation-kind.js'
import { ROW_POLICY, ROW_SCHEMA, ROW_TENANT_FUNCTION, rowGroupRoleName, TENANT_MIGRATION_TABLES, tenantRoleComment, tenantRoleName } from './postgres-names.js'
import { APP_PRIVILEGES, privilegeList } from './postgres-privileges.js'
import { isRowPolicyExpression, isRowTenantDefault } from './tenantize-row-schema.js'

/** Every table privilege there is: a tenant role must hold exactly the data source's `appPrivileges` of them. */
const TABLE_PRIVILEGES = `array['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER']`

/** `<schema>.<table>` and the privileges `$1` holds on each tenant table (not Tenantry's migration tables) of the schemas `$2`. */
const HELD_PRIVILEGES = `select n.nspname || '.' || c.relname as name,
    array(select p from unnest(${TABLE_PRIVILEGES}) p where has_table_privilege($1, c.oid, p))::text[] as held
  from pg_class c join pg_namespace n on n.oid = c.relnamespace
  where n.nspname = any($2) and c.relkind in ('r', 'p') and c.relname <> all($3)`

/** Schemas that belong to Postgres itself, not to anything Tenantry or the app created. */
const SYSTEM_SCHEMAS = `n.nspname not in ('pg_catalog', 'information_schema', 'pg_toast') and n.nspname not like 'pg_temp_%' and n.nspname not like 'pg_toast_temp_%'`

/**
 * `tenantry doctor` on a Postgres data source: the app role is least-privilege and owns
 * nothing, every tenant's storage exists and belongs to the admin, nothing in a tenant's
 * storage runs with another role's rights, tables with `tenant_id` have RLS forced, and each
 * tenant has its own login role holding exactly the data source's `appPrivileges`. Under row
 * isolation: each row tenant's role is in the row group role and in no other role, the group
 * holds what the shared tables need and no more, and every policy keys on the login role
 * (a statement cannot change it). Read-only, as the admin.
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
  const rowTenants = stored.filter((t) => t.placement.isolation === 'row')
  const expected = privilegeList(context.appPrivileges)
  /** Roles that exist, of those named. */
  const existing = async (names: string[]) =>
    new Set((await inspect<{ rolname: string }>('select rolname from pg_roles where rolname = any($1)', [names])).map((r) => r.rolname))
  const tenantRoles = await existing([...schemaTenants, ...databaseTenants, ...rowTenants].map((t) => tenantRoleName(t.id)))
  /** Tables whose privileges for a tenant role (or the row group) are not `appPrivileges`. */
  const privilegeProblems: string[] = []
  const comparePrivileges = (rows: Array<{ name: string; held: string[] }>, who: string, at: (what: string) => string) => {
    for (const row of rows) {
      const held = privilegeList(APP_PRIVILEGES.filter((p) => row.held.includes(p)))
      const extra = row.held.filter((p) => !(APP_PRIVILEGES as readonly string[]).includes(p))
      if (held !== expected || extra.length) privilegeProblems.push(at(`${who} has ${row.held.join(', ') || 'nothing'} on ${row.name}, not ${expected} (appPrivileges)`))
    }
  }

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
  const databases: Array<{ label: string; name: string | undefined; tenantSchemas: string[] | undefined; tenantRole?: string }> = [
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
        databases.push({ label: t.placement.locator, name: t.placement.locator, tenantSchemas: undefined, tenantRole: tenantRoleName(t.id) })
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

    // 6. Row isolation: a table in the row schema, or one the app role can read, that carries tenant_id must have RLS on and forced.
    const rowRows = await inspect<{ name: string; enabled: boolean; forced: boolean }>(
      `select n.nspname || '.' || c.relname as name, c.relrowsecurity as enabled, c.relforcerowsecurity as forced
         from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where c.relkind in ('r', 'p') and ${SYSTEM_SCHEMAS}
          and exists (select 1 from pg_attribute a where a.attrelid = c.oid and a.attname = 'tenant_id' and not a.attisdropped)
          and (has_table_privilege($1, c.oid, 'SELECT') or (n.nspname = $2 and $3))`,
      [role, ROW_SCHEMA, !db.name],
      db.name,
    )
    rowTables += rowRows.length
    unprotected.push(...rowRows.filter((r) => !r.enabled || !r.forced).map((r) => at(`${r.name} (RLS ${r.enabled ? 'enabled, not forced' : 'off'})`)))

    // 6b. Each schema and database tenant's role holds exactly `appPrivileges` on its tables.
    if (db.tenantRole && tenantRoles.has(db.tenantRole)) {
      comparePrivileges(await inspect(HELD_PRIVILEGES, [db.tenantRole, ['public'], [...TENANT_MIGRATION_TABLES]], db.name), db.tenantRole, at)
    }
    if (!db.name) {
      for (const t of schemaTenants) {
        const own = tenantRoleName(t.id)
        if (tenantRoles.has(own)) comparePrivileges(await inspect(HELD_PRIVILEGES, [own, [t.placement.locator], [...TENANT_MIGRATION_TABLES]]), own, at)
      }
    }
  }
  add('app role owns nothing', owned.length ? 'fail' : 'ok', owned.length ? `${role} owns ${owned.join(', ')}` : `${role} owns no objects in ${databases.length} database(s)`)
  add('app role cannot create', creatable.length ? 'fail' : 'ok', creatable.length ? `${role} has CREATE on ${creatable.join(', ')}` : `${role} has no CREATE on public, tenant schemas or databases`)
  add('views and definer functions', definers.length ? 'fail' : 'ok', definers.length ? definers.join('; ') : `none owned by a role other than ${admin} in tenant storage`)
  // The row group role holds exactly `appPrivileges` on the shared tables (row tenants' roles inherit them).
  const group = rowGroupRoleName(context.dataSourceId)
  if (rowTenants.length && (await existing([group])).has(group)) {
    comparePrivileges(await inspect(HELD_PRIVILEGES, [group, [ROW_SCHEMA], [...TENANT_MIGRATION_TABLES]]), group, (what) => what)
  }

  // 7. Each tenant's own role exists: its app handles log in as it, and it is the raw-SQL boundary.
  const ownRoles = [...schemaTenants, ...databaseTenants, ...rowTenants]
  if (ownRoles.length) {
    const missing = ownRoles.filter((t) => !tenantRoles.has(tenantRoleName(t.id)))
    add(
      'tenant roles',
      missing.length ? 'fail' : 'ok',
      missing.length
        ? `no login role for ${missing.map((t) => `${t.slug} (${tenantRoleName(t.id)})`).join(', ')}: open each such tenant once (\`tenantry.withTenant\`), which makes its role, or recreate it`
        : `${ownRoles.length} tenant(s), each with its own login role`,
    )
    add(
      'app privileges',
      privilegeProblems.length ? 'fail' : 'ok',
      privilegeProblems.length
        ? `${privilegeProblems.join('; ')}: a tenant's next migration brings its grants in step`
        : `each tenant role holds ${expected} on its tables`,
    )
  }

  // 8. The shared app role reaches no tenant (it did before tenants had roles of their own;
  // opening such a tenant takes it back).
  if (ownRoles.length) {
    const reached = await inspect<{ name: string }>(
      `select nspname as name from pg_namespace where nspname = any($2) and has_schema_privilege($1, oid, 'USAGE')
       union all
       select datname from pg_database where datname = any($3) and has_database_privilege($1, oid, 'CONNECT')`,
      [role, [...schemaTenants.map((t) => t.placement.locator), ...(rowTenants.length ? [ROW_SCHEMA] : [])], databaseTenants.map((t) => t.placement.locator)],
    )
    add(
      'app role reaches no tenant storage',
      reached.length ? 'fail' : 'ok',
      reached.length
        ? `${role} can still use ${reached.map((r) => r.name).join(', ')}: open each tenant once (its role is then made and the app role's rights taken back)`
        : `${role} has no USAGE on tenant schemas and no CONNECT on tenant databases`,
    )
  }

  // 9. No tenant role can become another: tenant roles are members of no role but (row tenants) the row group,
  // and no role is a member of a tenant role but the admin (made one to drop it).
  const rowProblems: string[] = []
  const memberships = await inspect<{ role: string; member: string }>(
    `select pg_get_userbyid(m.roleid) as role, pg_get_userbyid(m.member) as member from pg_auth_members m
      where m.member in (select r.oid from pg_roles r join pg_shdescription d on d.objoid = r.oid and d.classoid = 'pg_authid'::regclass where d.description = $1)
         or m.roleid in (select r.oid from pg_roles r join pg_shdescription d on d.objoid = r.oid and d.classoid = 'pg_authid'::regclass where d.description = $1)
         or pg_get_userbyid(m.member) = any($2) or pg_get_userbyid(m.roleid) = any($2)
         or pg_get_userbyid(m.roleid) = $3 or pg_get_userbyid(m.member) = $3`,
    [tenantRoleComment(context.dataSourceId), [...tenantRoles], group],
  )
  const rowRoleNames = new Set(rowTenants.map((t) => tenantRoleName(t.id)))
  const isTenantRole = (name: string) => /^t_t[a-z2-7]{19}_app$/.test(name)
  const crossings = memberships.filter(({ role: of, member }) => {
    if (member === admin) return false // the admin is made a member of the roles it creates
    if (of === group) return !(isTenantRole(member) && (rowRoleNames.has(member) || !tenantRoles.has(member))) // a row tenant's role (or one not in the catalog view)
    return true // a tenant role or the group as a member of anything else, or anyone else a member of a tenant role
  })
  add(
    'tenant role memberships',
    crossings.length ? 'fail' : 'ok',
    crossings.length
      ? `${crossings.map((c) => `${c.member} is a member of ${c.role}`).join('; ')}: a role may SET ROLE to any role it is a member of; revoke these`
      : `no tenant role is a member of another${rowTenants.length ? ` (row tenants' roles are members of ${group} alone)` : ''}`,
  )

  // 10. Row isolation confined by Postgres: each row tenant's role in the group, the group with what it needs and no more,
  // and every policy and default keyed on the login role.
  if (rowTenants.length) {
    const [groupRole] = await inspect<{ rolcanlogin: boolean; rolsuper: boolean; rolbypassrls: boolean; rolcreatedb: boolean; rolcreaterole: boolean; rolinherit: boolean }>(
      'select rolcanlogin, rolsuper, rolbypassrls, rolcreatedb, rolcreaterole, rolinherit from pg_roles where rolname = $1',
      [group],
    )
    if (!groupRole) {
      rowProblems.push(`the row group role ${group} does not exist: open a row tenant once, which makes it`)
    } else {
      const wide = Object.entries({ LOGIN: groupRole.rolcanlogin, SUPERUSER: groupRole.rolsuper, BYPASSRLS: groupRole.rolbypassrls, CREATEDB: groupRole.rolcreatedb, CREATEROLE: groupRole.rolcreaterole })
        .filter(([, on]) => on)
        .map(([name]) => name)
      if (wide.length) rowProblems.push(`${group} has ${wide.join(', ')}`)
      const members = new Set(memberships.filter((m) => m.role === group).map((m) => m.member))
      const outside = rowTenants.filter((t) => tenantRoles.has(tenantRoleName(t.id)) && !members.has(tenantRoleName(t.id)))
      if (outside.length) rowProblems.push(`not in ${group}: ${outside.map((t) => tenantRoleName(t.id)).join(', ')} (their handles can read nothing)`)
      const creates = await inspect<{ target: string }>(
        `select 'schema ' || nspname as target from pg_namespace where (nspname = $2 or nspname = 'public') and has_schema_privilege($1, oid, 'CREATE')
         union all select 'database ' || current_database() where has_database_privilege($1, current_database(), 'CREATE')`,
        [group, ROW_SCHEMA],
      )
      if (creates.length) rowProblems.push(`${group} has CREATE on ${creates.map((c) => c.target).join(', ')}`)
      const migrationWrites = await inspect<{ name: string }>(
        `select c.relname as name from pg_class c join pg_namespace n on n.oid = c.relnamespace
          where n.nspname = $2 and c.relname = any($3) and (has_table_privilege($1, c.oid, 'INSERT') or has_table_privilege($1, c.oid, 'UPDATE') or has_table_privilege($1, c.oid, 'DELETE') or has_table_privilege($1, c.oid, 'TRUNCATE'))`,
        [group, ROW_SCHEMA, [...TENANT_MIGRATION_TABLES]],
      )
      if (migrationWrites.length) rowProblems.push(`${group} can write ${migrationWrites.map((m) => m.name).join(', ')}`)
    }
    const [fn] = await inspect<{ secdef: boolean; owner: string; src: string }>(
      `select p.prosecdef as secdef, pg_get_userbyid(p.proowner) as owner, p.prosrc as src from pg_proc p join pg_namespace n on n.oid = p.pronamespace
        where n.nspname = $1 and p.proname = $2 and p.pronargs = 0`,
      [ROW_SCHEMA, ROW_TENANT_FUNCTION],
    )
    if (!fn) rowProblems.push(`function ${ROW_SCHEMA}.${ROW_TENANT_FUNCTION}() is missing`)
    else if (fn.secdef || fn.owner !== admin || !fn.src.includes("'^t_(t[a-z2-7]{19})_app$'") || !fn.src.includes(`'${admin.replace(/'/g, "''")}'`)) {
      rowProblems.push(`function ${ROW_SCHEMA}.${ROW_TENANT_FUNCTION}() has been changed (owner ${fn.owner}${fn.secdef ? ', SECURITY DEFINER' : ''})`)
    }
    const tables = await inspect<{ name: string; def: string | null; policies: Array<{ name: string; cmd: string; permissive: string; roles: string[]; qual: string | null; check: string | null }> | null }>(
      `select c.relname as name, pg_get_expr(d.adbin, d.adrelid) as def,
              (select json_agg(json_build_object('name', p.policyname, 'cmd', p.cmd, 'permissive', p.permissive, 'roles', p.roles, 'qual', p.qual, 'check', p.with_check))
                 from pg_policies p where p.schemaname = n.nspname and p.tablename = c.relname) as policies
         from pg_class c join pg_namespace n on n.oid = c.relnamespace
         join pg_attribute a on a.attrelid = c.oid and a.attname = 'tenant_id' and not a.attisdropped
         left join pg_attrdef d on d.adrelid = c.oid and d.adnum = a.attnum
        where n.nspname = $1 and c.relkind in ('r', 'p')`,
      [ROW_SCHEMA],
    )
    for (const table of tables) {
      const policies = table.policies ?? []
      const ours = policies.find((p) => p.name === ROW_POLICY)
      const others = policies.filter((p) => p !== ours)
      if (!ours) rowProblems.push(`${ROW_SCHEMA}.${table.name} has no ${ROW_POLICY} policy`)
      else if (ours.cmd !== 'ALL' || ours.permissive !== 'PERMISSIVE' || ours.roles.join() !== 'public' || !isRowPolicyExpression(ours.qual) || !isRowPolicyExpression(ours.check)) {
        rowProblems.push(`${ROW_SCHEMA}.${table.name}: policy ${ROW_POLICY} does not key on the login role (USING ${ours.qual ?? 'none'}, WITH CHECK ${ours.check ?? 'none'})`)
      }
      if (others.length) rowProblems.push(`${ROW_SCHEMA}.${table.name} has other policies: ${others.map((p) => p.name).join(', ')} (permissive ones widen what a tenant sees)`)
      if (!isRowTenantDefault(table.def)) rowProblems.push(`${ROW_SCHEMA}.${table.name}.tenant_id defaults to ${table.def ?? 'nothing'}, not ${ROW_TENANT_FUNCTION}()`)
    }
  }

  // 11a. Shared tables (`public`, `migrations.shared`): the roles tenants' connections log in as may read there what the
  // app declared readable, and never write (the shared tables are the platform's, not any tenant's).
  if (schemaTenants.length || rowTenants.length) {
    const readers = [role, ...(await existing([group])), ...schemaTenants.map((t) => tenantRoleName(t.id)).filter((r) => tenantRoles.has(r))]
    const writable = await inspect<{ what: string }>(
      `select r.name || ' can write public.' || c.relname as what
         from pg_class c join pg_namespace n on n.oid = c.relnamespace, unnest($1::text[]) as r(name)
        where n.nspname = 'public' and c.relkind in ('r', 'p', 'v', 'm', 'f')
          and (has_table_privilege(r.name, c.oid, 'INSERT') or has_table_privilege(r.name, c.oid, 'UPDATE')
               or has_table_privilege(r.name, c.oid, 'DELETE') or has_table_privilege(r.name, c.oid, 'TRUNCATE'))`,
      [[...new Set(readers)]],
    )
    add(
      'shared tables read-only',
      writable.length ? 'fail' : 'ok',
      writable.length
        ? `${writable.map((w) => w.what).join('; ')}: tenants' raw SQL could change shared data; \`tenantry migrate --shared-only\` takes it back`
        : "no tenant's role, the row group or the app role can write a table of public",
    )
  }

  // 11. Raw SQL: every tenant is confined by its own role (row tenants by policies keyed on it).
  add(
    'raw SQL boundary',
    rowProblems.length || crossings.length ? 'fail' : 'ok',
    rowProblems.length
      ? `row isolation is not confined by Postgres: ${rowProblems.join('; ')}`
      : crossings.length
        ? 'a tenant role can become another role (see tenant role memberships)'
        : `raw SQL of each tenant runs as its own role${rowTenants.length ? ', which row isolation\'s policies key on' : ''}: it reaches its own data alone`,
  )

  add(
    'row isolation',
    unprotected.length ? 'fail' : 'ok',
    unprotected.length ? `tenant_id tables without forced RLS: ${unprotected.join(', ')}` : rowTables ? `${rowTables} row-isolated table(s): RLS enabled and forced` : 'no row-isolated tables',
  )
  return checks
}
