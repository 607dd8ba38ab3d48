import { existsSync } from 'node:fs'
import { readdir } from 'node:fs/promises'
import type { DataSourceRecord, TenantRecord } from '../catalog/catalog.js'
import type { TenantStatus } from '../catalog/catalog-schema.js'
import { PostgresEngine } from '../engines/postgres/postgres-engine.js'
import { SqliteEngine } from '../engines/sqlite/sqlite-engine.js'
import type { Tenantry } from '../tenantry.js'

/** One finding of `tenantry doctor`. `fail` means an isolation guarantee does not hold (or cannot be checked). */
export interface DoctorCheck {
  name: string
  status: 'ok' | 'warn' | 'fail'
  detail: string
  dataSource?: string
}

/** Tenants whose storage must exist: serving, paused, or deleted with their data kept. */
const STORED_STATUSES: readonly TenantStatus[] = ['ready', 'suspended', 'moving', 'deleted']

/** Schemas that belong to Postgres itself, not to anything Tenantry or the app created. */
const SYSTEM_SCHEMAS = `n.nspname not in ('pg_catalog', 'information_schema', 'pg_toast') and n.nspname not like 'pg_temp_%' and n.nspname not like 'pg_toast_temp_%'`

const SQLITE_TENANT_FILE = /^t[a-z2-7]{19}\.db$/

/**
 * Checks that what the catalog promises holds in the databases themselves: the app role is
 * least-privilege and owns nothing, every tenant's storage exists and belongs to the admin,
 * nothing in a tenant's storage runs with another role's rights, and SQLite directories
 * match the catalog. Read-only.
 */
export async function runDoctor(tenantry: Tenantry): Promise<DoctorCheck[]> {
  const [sources, tenants] = await Promise.all([
    tenantry.catalog.listDataSources(),
    tenantry.catalog.listTenants({ includePurged: true }),
  ])
  const checks: DoctorCheck[] = []
  for (const source of sources) {
    const own = tenants.filter((t) => t.placement.dataSourceId === source.id)
    const add = (name: string, status: DoctorCheck['status'], detail: string) =>
      checks.push({ name: `${source.id}: ${name}`, status, detail, dataSource: source.id })
    try {
      const engine = await tenantry.dataSources.engine(source.id)
      if (engine instanceof PostgresEngine) await checkPostgres(engine, own, add)
      else if (engine instanceof SqliteEngine) await checkSqlite(engine, own, add)
      else add('engine', 'warn', `no checks for engine ${source.engine}`)
    } catch (error) {
      // A data source that cannot be inspected proves nothing: that is a failure, not a pass.
      add('reachable', 'fail', `cannot inspect ${describe(source)}: ${(error as Error).message}`)
    }
  }
  return checks
}

type Add = (name: string, status: DoctorCheck['status'], detail: string) => void

async function checkPostgres(engine: PostgresEngine, tenants: TenantRecord[], add: Add): Promise<void> {
  const role = engine.appRoleName
  const [{ admin, database }] = (await engine.inspect<{ admin: string; database: string }>(
    'select current_user as admin, current_database() as database',
  )) as [{ admin: string; database: string }]
  const stored = tenants.filter((t) => !t.purgedAt && STORED_STATUSES.includes(t.status))
  const schemaTenants = stored.filter((t) => t.placement.isolation === 'schema')
  const databaseTenants = stored.filter((t) => t.placement.isolation === 'database')

  // 1. The role itself: a superuser or BYPASSRLS role crosses every boundary; CREATEDB/CREATEROLE widen it.
  const [attributes] = await engine.inspect<{ rolsuper: boolean; rolbypassrls: boolean; rolcreatedb: boolean; rolcreaterole: boolean }>(
    'select rolsuper, rolbypassrls, rolcreatedb, rolcreaterole from pg_roles where rolname = $1',
    [role],
  )
  if (!attributes) {
    // Created on the first tenant create; missing afterwards means someone dropped it.
    add('app role', tenants.length ? 'fail' : 'warn', `role ${role} does not exist${tenants.length ? '' : ' yet (created with the first tenant)'}`)
    return
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
    const rows = await engine.inspect<{ nspname: string; owner: string }>(
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
    const rows = await engine.inspect<{ datname: string; owner: string }>(
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
    const ownedRows = await engine.inspect<{ kind: string; name: string }>(
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
    const createRows = await engine.inspect<{ target: string }>(
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
      const definerRows = await engine.inspect<{ what: string }>(
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
    const rowRows = await engine.inspect<{ name: string; enabled: boolean; forced: boolean }>(
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
  add(
    'row isolation',
    unprotected.length ? 'fail' : 'ok',
    unprotected.length ? `tenant_id tables without forced RLS: ${unprotected.join(', ')}` : rowTables ? `${rowTables} row-isolated table(s): RLS enabled and forced` : 'no row-isolated tables',
  )
}

async function checkSqlite(engine: SqliteEngine, tenants: TenantRecord[], add: Add): Promise<void> {
  const stored = tenants.filter((t) => !t.purgedAt && STORED_STATUSES.includes(t.status))
  if (!existsSync(engine.directory)) {
    // The engine creates it on the first tenant; missing with tenants means their data is gone.
    add('directory', stored.length ? 'fail' : 'warn', `${engine.directory} does not exist${stored.length ? '' : ' yet (created with the first tenant)'}`)
    return
  }
  add('directory', 'ok', engine.directory)
  const files = new Set((await readdir(engine.directory)).filter((name) => SQLITE_TENANT_FILE.test(name)))
  const missing = stored.filter((t) => !files.has(t.placement.locator))
  add(
    'tenant files',
    missing.length ? 'fail' : 'ok',
    missing.length ? `missing: ${missing.map((t) => `${t.placement.locator} (${t.slug})`).join(', ')}` : `${stored.length} tenant file(s) present`,
  )
  // A purged tenant's file left behind is stray too: nothing routes to it, yet it holds someone's data.
  const known = new Set(tenants.filter((t) => !t.purgedAt).map((t) => t.placement.locator))
  const stray = [...files].filter((name) => !known.has(name)).sort()
  add('stray files', stray.length ? 'warn' : 'ok', stray.length ? `tenant files with no catalog row: ${stray.join(', ')}` : 'none')
}

function describe(source: DataSourceRecord): string {
  const config = source.config as { host?: string; port?: number; database?: string; directory?: string }
  return source.engine === 'postgres' ? `postgres ${config.host}:${config.port}/${config.database}` : `${source.engine} ${config.directory ?? ''}`
}
