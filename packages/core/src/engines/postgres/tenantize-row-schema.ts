import { CompiledQuery, sql, type Kysely } from 'kysely'
import { quoteIdentifier, quoteLiteral, quoteReportedName as quote } from '../../identifiers.js'
import { ROW_POLICY, ROW_SCHEMA, ROW_TENANT_FUNCTION, TENANT_SETTING } from './postgres-names.js'

/** Runs one statement with `$n` parameters and returns its rows: a pg client's or a Kysely connection's. */
export type RunQuery = <R>(text: string, values?: unknown[]) => Promise<R[]>

/** `tenant_rows.tenantry_tenant_id()`, as policies and defaults call it. */
export const ROW_TENANT_CALL = `${quoteIdentifier(ROW_SCHEMA)}.${quoteIdentifier(ROW_TENANT_FUNCTION)}()`

/** What RLS compares `tenant_id` with, in `USING` and in `WITH CHECK`. */
export const ROW_POLICY_EXPRESSION = `tenant_id = ${ROW_TENANT_CALL}`

/**
 * The body of `ROW_TENANT_FUNCTION`. A row tenant's login role `t_<id>_app` maps to `<id>`: a
 * statement cannot change its own `current_user` (the role is a member of no other tenant's
 * role, and `SET SESSION AUTHORIZATION` needs a superuser). The admin, who owns the tables and
 * is under FORCE ROW LEVEL SECURITY too, names the tenant with `TENANT_SETTING` instead; any
 * other role (the row group role after `SET ROLE`, the app role) gets NULL: nothing. Everything
 * is qualified with `pg_catalog`, so a caller's `search_path` changes nothing; plain SQL, STABLE
 * and not SECURITY DEFINER, so the planner inlines it and `tenant_id` indexes are used.
 */
function rowTenantFunctionBody(admin: string): string {
  return (
    `SELECT CASE WHEN CURRENT_USER OPERATOR(pg_catalog.=) ${quoteLiteral(admin)}::pg_catalog.name ` +
    `THEN pg_catalog.current_setting('${TENANT_SETTING}', true) ` +
    `ELSE pg_catalog.substring(CURRENT_USER::pg_catalog.text, '^t_(t[a-z2-7]{19})_app$') END`
  )
}

/**
 * Creates `ROW_TENANT_FUNCTION` in the row schema, or brings its body back in step, as the
 * admin (who becomes its owner and the one role that may use the setting). Idempotent; only
 * writes when the body differs.
 */
export async function ensureRowTenantFunction(run: RunQuery): Promise<void> {
  const [{ admin }] = (await run<{ admin: string }>('SELECT current_user AS admin')) as [{ admin: string }]
  const body = rowTenantFunctionBody(admin)
  const [existing] = await run<{ src: string }>(
    `SELECT p.prosrc AS src FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = $1 AND p.proname = $2 AND p.pronargs = 0`,
    [ROW_SCHEMA, ROW_TENANT_FUNCTION],
  )
  if (existing?.src === body) return
  await run(`CREATE OR REPLACE FUNCTION ${ROW_TENANT_CALL} RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS $tenantry$${body}$tenantry$`)
  // Anyone may call it (RLS calls it as the querying role); it reveals only the caller's own tenant.
  await run(`GRANT EXECUTE ON FUNCTION ${ROW_TENANT_CALL} TO PUBLIC`)
}

/**
 * Whether a policy's deparsed expression is `ROW_POLICY_EXPRESSION`. Postgres prints the
 * function with its schema or without, depending on the reader's `search_path`.
 */
export function isRowPolicyExpression(deparsed: string | null): boolean {
  if (deparsed === null) return false
  const bare = deparsed.replace(/\s+/g, ' ').replace(/"?tenant_rows"?\./g, '')
  return bare === `(tenant_id = ${ROW_TENANT_FUNCTION}())`
}

/** Whether a column default is a call of `ROW_TENANT_FUNCTION`. */
export function isRowTenantDefault(deparsed: string | null): boolean {
  return deparsed !== null && deparsed.replace(/"?tenant_rows"?\./g, '') === `${ROW_TENANT_FUNCTION}()`
}

/** Kysely's migration tables (`TENANT_MIGRATION_TABLE` and its lock): Tenantry's, not the app's, and never per tenant. */
const INTERNAL_TABLES = ['tenantry_migration', 'tenantry_migration_lock']

interface Constraint {
  table: string
  name: string
  kind: 'p' | 'u' | 'f'
  columns: string[]
  refTable: string | null
  refColumns: string[] | null
  onDelete: string
  onUpdate: string
  /** `ON DELETE SET NULL (…)`'s columns, where the app named some (Postgres 15+). */
  deleteSets: string[]
}

const ACTIONS: Record<string, string> = { a: 'NO ACTION', r: 'RESTRICT', c: 'CASCADE', n: 'SET NULL', d: 'SET DEFAULT' }

/**
 * Turns the tables the app's migrations created in the shared schema into row-isolated
 * ones, inside the migration's own transaction, so that migrations are written once for
 * every isolation. Idempotent: what already leads with `tenant_id` is left alone.
 *
 * - every table gets `tenant_id text NOT NULL`, defaulting to the querying tenant
 *   (`tenantry_tenant_id()`: the login role's tenant, or the admin's setting);
 * - primary keys, unique constraints and indexes lead with `tenant_id` (one tenant's rows
 *   are one index range, and ids may collide between tenants);
 * - foreign keys become composite, `(tenant_id, col) → (tenant_id, id)`, so a row can never
 *   point at another tenant's row; `ON DELETE SET NULL` and `SET DEFAULT` clear the app's
 *   columns only (Postgres 15+; before, a delete that reaches such a key fails on tenant_id's
 *   NOT NULL); a later migration's key to an existing table is made so before it runs (see
 *   row-foreign-keys.ts);
 * - RLS is enabled and forced, with one policy for reading (`USING`) and writing
 *   (`WITH CHECK`) that keys on the login role (see `ROW_TENANT_FUNCTION`). A role that is no
 *   row tenant compares with NULL: it sees and writes nothing.
 *
 * Tables made before policies keyed on the role (when they compared with a setting any
 * statement could change) get the new policy and default here, as they do from `confine`.
 */
export async function tenantizeRowSchema(db: Kysely<any>): Promise<void> {
  const run: RunQuery = async <R>(text: string, values: unknown[] = []) => (await db.executeQuery<R>(CompiledQuery.raw(text, values))).rows as R[]
  await ensureRowTenantFunction(run)
  const schema = quoteIdentifier(ROW_SCHEMA)
  const tables = (
    await sql<{ name: string }>`
      select c.relname as name from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = ${ROW_SCHEMA} and c.relkind in ('r', 'p') and c.relname <> all(${INTERNAL_TABLES})
      order by c.relname`.execute(db)
  ).rows.map((r) => r.name)
  if (tables.length === 0) return

  for (const table of tables) {
    const hasColumn = await sql`
      select 1 from information_schema.columns
      where table_schema = ${ROW_SCHEMA} and table_name = ${table} and column_name = 'tenant_id'`.execute(db)
    if (hasColumn.rows.length === 0) {
      await sql.raw(
        `ALTER TABLE ${schema}.${quote(table)} ADD COLUMN tenant_id text NOT NULL DEFAULT ${ROW_TENANT_CALL}`,
      ).execute(db)
    }
  }

  // `ON DELETE SET NULL (columns)` came with Postgres 15.
  const [{ version }] = (await run<{ version: number }>(`SELECT current_setting('server_version_num')::int AS version`)) as [{ version: number }]
  const setColumns = version >= 150000
  const constraints = (
    await sql<{ table: string; name: string; kind: 'p' | 'u' | 'f'; columns: string[]; ref_table: string | null; ref_columns: string[] | null; on_delete: string; on_update: string; delete_sets: string[] | null }>`
      select t.relname as table, con.conname as name, con.contype as kind,
        array(select a.attname from unnest(con.conkey) with ordinality k(n, i) join pg_attribute a on a.attrelid = con.conrelid and a.attnum = k.n order by k.i)::text[] as columns,
        rt.relname as ref_table,
        case when con.contype = 'f' then array(select a.attname from unnest(con.confkey) with ordinality k(n, i) join pg_attribute a on a.attrelid = con.confrelid and a.attnum = k.n order by k.i)::text[] end as ref_columns,
        con.confdeltype as on_delete, con.confupdtype as on_update,
        ${setColumns ? sql`array(select a.attname from unnest(con.confdelsetcols) k(n) join pg_attribute a on a.attrelid = con.conrelid and a.attnum = k.n)::text[]` : sql`null::text[]`} as delete_sets
      from pg_constraint con
      join pg_class t on t.oid = con.conrelid join pg_namespace n on n.oid = t.relnamespace
      left join pg_class rt on rt.oid = con.confrelid
      where n.nspname = ${ROW_SCHEMA} and con.contype in ('p', 'u', 'f') and t.relname = any(${tables})`.execute(db)
  ).rows.map(
    (r): Constraint => ({
      table: r.table,
      name: r.name,
      kind: r.kind,
      columns: r.columns,
      refTable: r.ref_table,
      refColumns: r.ref_columns,
      onDelete: r.on_delete,
      onUpdate: r.on_update,
      deleteSets: r.delete_sets ?? [],
    }),
  )
  const leads = (c: Constraint) => c.columns[0] === 'tenant_id'
  const foreign = constraints.filter((c) => c.kind === 'f' && !leads(c))
  const keys = constraints.filter((c) => c.kind !== 'f' && !leads(c))

  // Foreign keys depend on the keys they reference: drop them, rebuild the keys, re-add them composite.
  for (const fk of foreign) await sql.raw(`ALTER TABLE ${schema}.${quote(fk.table)} DROP CONSTRAINT ${quote(fk.name)}`).execute(db)
  for (const key of keys) {
    const kind = key.kind === 'p' ? 'PRIMARY KEY' : 'UNIQUE'
    await sql.raw(
      `ALTER TABLE ${schema}.${quote(key.table)} DROP CONSTRAINT ${quote(key.name)}, ` +
        `ADD CONSTRAINT ${quote(key.name)} ${kind} (${['tenant_id', ...key.columns].map(quote).join(', ')})`,
    ).execute(db)
  }
  for (const fk of foreign) {
    await sql.raw(
      `ALTER TABLE ${schema}.${quote(fk.table)} ADD CONSTRAINT ${quote(fk.name)} ` +
        `FOREIGN KEY (${['tenant_id', ...fk.columns].map(quote).join(', ')}) ` +
        `REFERENCES ${schema}.${quote(fk.refTable!)} (${['tenant_id', ...fk.refColumns!].map(quote).join(', ')}) ` +
        `ON DELETE ${onDelete(fk, setColumns)} ON UPDATE ${ACTIONS[fk.onUpdate] ?? 'NO ACTION'}`,
    ).execute(db)
  }

  // Plain indexes (not backing a constraint) on columns, rebuilt to lead with tenant_id.
  const indexes = (
    await sql<{ name: string; table: string; unique: boolean; columns: string[]; has_expressions: boolean }>`
      select i.relname as name, t.relname as table, x.indisunique as unique,
        array(select coalesce(a.attname, '') from unnest(x.indkey::int2[]) with ordinality k(n, o) left join pg_attribute a on a.attrelid = t.oid and a.attnum = k.n order by k.o)::text[] as columns,
        x.indexprs is not null as has_expressions
      from pg_index x join pg_class i on i.oid = x.indexrelid join pg_class t on t.oid = x.indrelid
      join pg_namespace n on n.oid = t.relnamespace
      where n.nspname = ${ROW_SCHEMA} and t.relname = any(${tables})
        and not exists (select 1 from pg_constraint c where c.conindid = x.indexrelid)`.execute(db)
  ).rows
  for (const index of indexes) {
    if (index.columns[0] === 'tenant_id' || index.has_expressions) continue
    const definition = (await sql<{ def: string }>`select pg_get_indexdef(${`${ROW_SCHEMA}.${index.name}`}::regclass) as def`.execute(db)).rows[0]!.def
    // Keep everything (method, order, predicate) and put tenant_id first: `… USING btree (tenant_id, a DESC) WHERE …`.
    const rebuilt = definition.replace(/ USING (\w+) \(/, (_m, method: string) => ` USING ${method} (tenant_id, `)
    await sql.raw(`DROP INDEX ${schema}.${quote(index.name)}`).execute(db)
    await sql.raw(rebuilt).execute(db)
  }

  for (const table of tables) {
    const qualified = `${schema}.${quote(table)}`
    await sql.raw(`ALTER TABLE ${qualified} ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY`).execute(db)
    await keyOnRole(run, table)
  }
}

/** A composite key's `ON DELETE`: SET NULL and SET DEFAULT name the app's columns, never tenant_id (where Postgres can). */
function onDelete(fk: Constraint, setColumns: boolean): string {
  const action = ACTIONS[fk.onDelete] ?? 'NO ACTION'
  if (!setColumns || (fk.onDelete !== 'n' && fk.onDelete !== 'd')) return action
  const columns = fk.deleteSets.length ? fk.deleteSets : fk.columns
  return `${action} (${columns.map(quote).join(', ')})`
}

/**
 * Gives `table` the policy and the `tenant_id` default that key on the login role, replacing
 * the setting-keyed ones of earlier versions. Writes only what differs (a policy change takes
 * the table's strongest lock).
 */
export async function keyOnRole(run: RunQuery, table: string): Promise<void> {
  const qualified = `${quoteIdentifier(ROW_SCHEMA)}.${quote(table)}`
  const [column] = await run<{ def: string | null }>(
    `SELECT pg_get_expr(d.adbin, d.adrelid) AS def FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
     WHERE a.attrelid = ${quoteLiteral(qualified)}::regclass AND a.attname = 'tenant_id'`,
  )
  if (column && !isRowTenantDefault(column.def)) await run(`ALTER TABLE ${qualified} ALTER COLUMN tenant_id SET DEFAULT ${ROW_TENANT_CALL}`)
  const policies = await run<{ name: string; qual: string | null; check: string | null; cmd: string; roles: string[]; permissive: string }>(
    `SELECT policyname AS name, qual, with_check AS check, cmd, roles::text[] AS roles, permissive FROM pg_policies
     WHERE schemaname = ${quoteLiteral(ROW_SCHEMA)} AND tablename = ${quoteLiteral(table)}`,
  )
  const ours = policies.find((p) => p.name === ROW_POLICY)
  const right =
    ours && ours.cmd === 'ALL' && ours.permissive === 'PERMISSIVE' && ours.roles.join() === 'public' && isRowPolicyExpression(ours.qual) && isRowPolicyExpression(ours.check)
  if (right) return
  if (ours) await run(`DROP POLICY ${quote(ROW_POLICY)} ON ${qualified}`)
  // For every role: under FORCE, a role without a policy would see nothing, and one with a wider policy would see all.
  await run(`CREATE POLICY ${quote(ROW_POLICY)} ON ${qualified} FOR ALL USING (${ROW_POLICY_EXPRESSION}) WITH CHECK (${ROW_POLICY_EXPRESSION})`)
}

