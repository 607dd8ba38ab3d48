import { sql, type Kysely } from 'kysely'
import { quoteIdentifier, quoteReportedName as quote } from '../../identifiers.js'
import { ROW_SCHEMA, TENANT_SETTING } from './postgres-names.js'

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
}

const ACTIONS: Record<string, string> = { a: 'NO ACTION', r: 'RESTRICT', c: 'CASCADE', n: 'SET NULL', d: 'SET DEFAULT' }

/**
 * Turns the tables the app's migrations created in the shared schema into row-isolated
 * ones, inside the migration's own transaction, so that migrations are written once for
 * every isolation. Idempotent: what already leads with `tenant_id` is left alone.
 *
 * - every table gets `tenant_id text NOT NULL`, defaulting to the transaction's tenant;
 * - primary keys, unique constraints and indexes lead with `tenant_id` (one tenant's rows
 *   are one index range, and ids may collide between tenants);
 * - foreign keys become composite, `(tenant_id, col) → (tenant_id, id)`, so a row can never
 *   point at another tenant's row;
 * - RLS is enabled and forced, with one policy for reading (`USING`) and writing
 *   (`WITH CHECK`). An unset tenant compares with NULL: it sees and writes nothing.
 */
export async function tenantizeRowSchema(db: Kysely<any>): Promise<void> {
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
        `ALTER TABLE ${schema}.${quote(table)} ADD COLUMN tenant_id text NOT NULL DEFAULT current_setting('${TENANT_SETTING}', true)`,
      ).execute(db)
    }
  }

  const constraints = (
    await sql<{ table: string; name: string; kind: 'p' | 'u' | 'f'; columns: string[]; ref_table: string | null; ref_columns: string[] | null; on_delete: string; on_update: string }>`
      select t.relname as table, con.conname as name, con.contype as kind,
        array(select a.attname from unnest(con.conkey) with ordinality k(n, i) join pg_attribute a on a.attrelid = con.conrelid and a.attnum = k.n order by k.i)::text[] as columns,
        rt.relname as ref_table,
        case when con.contype = 'f' then array(select a.attname from unnest(con.confkey) with ordinality k(n, i) join pg_attribute a on a.attrelid = con.confrelid and a.attnum = k.n order by k.i)::text[] end as ref_columns,
        con.confdeltype as on_delete, con.confupdtype as on_update
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
        `ON DELETE ${ACTIONS[fk.onDelete] ?? 'NO ACTION'} ON UPDATE ${ACTIONS[fk.onUpdate] ?? 'NO ACTION'}`,
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
    const policy = await sql`select 1 from pg_policies where schemaname = ${ROW_SCHEMA} and tablename = ${table} and policyname = 'tenant_isolation'`.execute(db)
    if (policy.rows.length === 0) {
      const check = `tenant_id = current_setting('${TENANT_SETTING}', true)`
      // For every role: under FORCE, a role without a policy would see nothing, and one with a wider policy would see all.
      await sql.raw(`CREATE POLICY tenant_isolation ON ${qualified} FOR ALL USING (${check}) WITH CHECK (${check})`).execute(db)
    }
  }
}
