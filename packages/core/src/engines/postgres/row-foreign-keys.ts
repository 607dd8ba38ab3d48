import { CompiledQuery, type DatabaseConnection } from 'kysely'
import { loadModule, parse, type ColumnDef, type Constraint, type Node, type RangeVar } from 'libpg-query'
import { deparse } from 'pgsql-deparser'
import { TenantryError } from '../../errors.js'
import { ROW_SCHEMA, ROW_TENANT_FUNCTION } from './postgres-names.js'

/**
 * Foreign keys to tables row isolation already keyed by tenant.
 *
 * `tenantizeRowSchema` makes every shared table's keys lead with `tenant_id`, so by the time a
 * later migration runs, `jobs` is keyed `(tenant_id, id)`: a new `REFERENCES jobs (id)` matches
 * no unique key, and Postgres refuses the whole migration ("there is no unique constraint
 * matching given keys"), where schema and database tenants take it. Before Postgres sees such a
 * statement, it is rewritten the way `tenantizeRowSchema` would have made the key had it been
 * created with its table: `FOREIGN KEY (tenant_id, job_id) REFERENCES jobs (tenant_id, id)`,
 * with the table's `tenant_id` column added where it has none yet (a table made by the same
 * statement). `ON DELETE SET NULL` and `SET DEFAULT` name the app's columns only, so a deleted
 * row never clears a `tenant_id`.
 *
 * Only statements with such a key are written again from their tree (Postgres's own parser,
 * libpg-query, and its deparser); everything else in the text is sent as written. A rewritten
 * statement is parsed once more and must give the same tree, or the migration stops with an
 * error that says so (never a statement that means something else). A key to a table the same
 * text creates is left alone: that table has no `tenant_id` yet, and `tenantizeRowSchema`
 * makes both composite after the migration.
 */

/**
 * The row admin handle's `rewrite` (see `ScopedPostgresDialectConfig.rewrite`): each statement's
 * foreign keys to tenantized tables made composite, the tables looked up on the statement's own
 * connection (inside the migration's transaction, where earlier statements' tables are seen).
 */
export async function rewriteRowStatement(query: CompiledQuery, connection: DatabaseConnection): Promise<CompiledQuery> {
  const text = await rewriteRowForeignKeys(query.sql, async (names) => {
    const { rows } = await connection.executeQuery<{ name: string }>(
      CompiledQuery.raw(
        `SELECT c.relname AS name FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = $1 AND c.relname = ANY($2::text[]) AND EXISTS (
           SELECT 1 FROM pg_catalog.pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped)`,
        [ROW_SCHEMA, names],
      ),
    )
    return new Set(rows.map((r) => r.name))
  })
  return text === query.sql ? query : { ...query, sql: text }
}

/** The tables of the row schema that have a `tenant_id` column, among `names`. */
export type TenantizedTables = (names: readonly string[]) => Promise<ReadonlySet<string>>

/** A cheap test before any parsing: no foreign key without the word. */
const MAY_REFERENCE = /references/i

let loaded: Promise<void> | undefined

/**
 * `text` with each foreign key to a tenantized table of the row schema made composite (see
 * above), or `text` itself when there is none, or when it does not parse (Postgres then reports
 * the error as it would have).
 */
export async function rewriteRowForeignKeys(text: string, tenantized: TenantizedTables): Promise<string> {
  if (!MAY_REFERENCE.test(text)) return text
  loaded ??= loadModule()
  await loaded
  let tree: { stmts?: Array<{ stmt: Node; stmt_location?: number; stmt_len?: number }> }
  try {
    tree = await parse(text)
  } catch {
    return text
  }
  const statements = tree.stmts ?? []
  const named = new Set<string>()
  for (const { stmt } of statements) {
    for (const key of declared(stmt).flatMap(foreignKeys)) if (inRowSchema(key.pktable)) named.add(key.pktable!.relname!)
  }
  if (named.size === 0) return text
  // The altered tables too: whether each already has its tenant_id.
  for (const { stmt } of statements) if ('AlterTableStmt' in stmt && inRowSchema(stmt.AlterTableStmt.relation)) named.add(stmt.AlterTableStmt.relation!.relname!)
  const keyed = await tenantized([...named])

  let out = ''
  let at = 0
  for (const { stmt, stmt_location: from = 0, stmt_len: length = 0 } of statements) {
    if (!rewrite(stmt, keyed)) continue
    const end = length === 0 ? text.length : from + length
    // A statement's text starts right after the previous one's semicolon: the blank space after it stays.
    const start = end - text.slice(from, end).trimStart().length
    out += text.slice(at, start) + (await faithfully(stmt, text.slice(start, end)))
    at = end
  }
  return at === 0 && out === '' ? text : out + text.slice(at)
}

/** What a statement declares: CREATE TABLE's columns and table constraints, the definitions of ALTER TABLE's commands. */
function declared(stmt: Node): Node[] {
  if ('CreateStmt' in stmt) return stmt.CreateStmt.tableElts ?? []
  if ('AlterTableStmt' in stmt) return (stmt.AlterTableStmt.cmds ?? []).flatMap((cmd) => ('AlterTableCmd' in cmd && cmd.AlterTableCmd.def ? [cmd.AlterTableCmd.def] : []))
  return []
}

/** The foreign keys of one declared element: itself as a table constraint, or its column's. */
function foreignKeys(element: Node): Constraint[] {
  const nodes = 'ColumnDef' in element ? (element.ColumnDef.constraints ?? []) : [element]
  return nodes.flatMap((node) => ('Constraint' in node && node.Constraint.contype === 'CONSTR_FOREIGN' ? [node.Constraint] : []))
}

/** A name the migration's `search_path` (the row schema) resolves there: unqualified, or qualified with it. */
function inRowSchema(relation: RangeVar | undefined): boolean {
  return !!relation?.relname && (relation.schemaname === undefined || relation.schemaname === ROW_SCHEMA) && relation.catalogname === undefined
}

const name = (sval: string): Node => ({ String: { sval } })
const TENANT_ID = 'tenant_id'

/** The foreign key, composite: `(tenant_id, …) → (tenant_id, …)`, its SET NULL / SET DEFAULT on the app's columns. */
function composite(constraint: Constraint, columns: Node[]): Constraint {
  const pk = constraint.pk_attrs ?? []
  const clears = constraint.fk_del_action === 'n' || constraint.fk_del_action === 'd'
  return {
    ...constraint,
    fk_attrs: [name(TENANT_ID), ...columns],
    // No columns: the referenced table's primary key, which leads with tenant_id already.
    ...(pk.length ? { pk_attrs: [name(TENANT_ID), ...pk] } : {}),
    ...(clears && !constraint.fk_del_set_cols?.length ? { fk_del_set_cols: columns } : {}),
  }
}

/** `tenant_id text NOT NULL DEFAULT tenant_rows.tenantry_tenant_id()`, as tenantizeRowSchema adds it. */
function tenantIdColumn(): Node {
  return {
    ColumnDef: {
      colname: TENANT_ID,
      typeName: { names: [name('text')], typemod: -1 },
      is_local: true,
      constraints: [
        { Constraint: { contype: 'CONSTR_NOTNULL' } },
        { Constraint: { contype: 'CONSTR_DEFAULT', raw_expr: { FuncCall: { funcname: [name(ROW_SCHEMA), name(ROW_TENANT_FUNCTION)], funcformat: 'COERCE_EXPLICIT_CALL' } } } },
      ],
    },
  }
}

/**
 * One declared element with its foreign keys to keyed tables made composite: the element that
 * replaces it, and the keys to add beside it (a column constraint names one column; as a table
 * constraint it can name tenant_id too). `undefined` when it has none.
 */
function rewriteElement(element: Node, toKeyed: (c: Constraint) => boolean): { element: Node; added: Constraint[] } | undefined {
  if ('Constraint' in element) {
    const key = element.Constraint
    return key.contype === 'CONSTR_FOREIGN' && toKeyed(key) ? { element: { Constraint: composite(key, key.fk_attrs ?? []) }, added: [] } : undefined
  }
  if (!('ColumnDef' in element)) return undefined
  const column = element.ColumnDef
  const moving = (column.constraints ?? []).filter((node) => 'Constraint' in node && node.Constraint.contype === 'CONSTR_FOREIGN' && toKeyed(node.Constraint))
  if (!moving.length) return undefined
  return { element: { ColumnDef: without(column, moving) }, added: moving.map((node) => composite((node as { Constraint: Constraint }).Constraint, [name(column.colname!)])) }
}

/** Rewrites the statement's foreign keys to tenantized tables in place; whether it changed. */
function rewrite(stmt: Node, keyed: ReadonlySet<string>): boolean {
  const toKeyed = (c: Constraint) => inRowSchema(c.pktable) && keyed.has(c.pktable!.relname!) && !leadsWithTenant(c)
  if ('CreateStmt' in stmt) {
    const create = stmt.CreateStmt
    const elements = create.tableElts ?? []
    const added: Node[] = []
    const kept = elements.map((element) => {
      const rewritten = rewriteElement(element, toKeyed)
      if (!rewritten) return element
      added.push(...rewritten.added.map((key) => ({ Constraint: key })))
      return rewritten.element
    })
    if (kept.every((element, i) => element === elements[i])) return false
    const hasTenantId = elements.some((e) => 'ColumnDef' in e && e.ColumnDef.colname === TENANT_ID)
    create.tableElts = [...(hasTenantId ? [] : [tenantIdColumn()]), ...kept, ...added]
    return true
  }
  if ('AlterTableStmt' in stmt) {
    const alter = stmt.AlterTableStmt
    let changed = false
    const cmds: Node[] = []
    for (const cmd of alter.cmds ?? []) {
      const at = 'AlterTableCmd' in cmd ? cmd.AlterTableCmd : undefined
      const adds = at?.def && (at.subtype === 'AT_AddConstraint' || at.subtype === 'AT_AddColumn')
      const rewritten = adds ? rewriteElement(at.def!, toKeyed) : undefined
      if (!rewritten) {
        cmds.push(cmd)
        continue
      }
      changed = true
      cmds.push({ AlterTableCmd: { ...at, def: rewritten.element } })
      for (const key of rewritten.added) cmds.push({ AlterTableCmd: { subtype: 'AT_AddConstraint', behavior: 'DROP_RESTRICT', def: { Constraint: key } } })
    }
    if (!changed) return false
    // A table not tenantized yet (made earlier in the same migration) gets its tenant_id first.
    const relation = alter.relation!
    if (!(inRowSchema(relation) && keyed.has(relation.relname!))) {
      cmds.unshift({ AlterTableCmd: { subtype: 'AT_AddColumn', def: tenantIdColumn(), behavior: 'DROP_RESTRICT', missing_ok: true } })
    }
    alter.cmds = cmds
    return true
  }
  return false
}

/** The column without the `moving` constraints (no list at all when none is left, as the parser gives it). */
function without(column: ColumnDef, moving: readonly Node[]): ColumnDef {
  const { constraints = [], ...rest } = column
  const left = constraints.filter((c) => !moving.includes(c))
  return left.length ? { ...rest, constraints: left } : rest
}

/** A key the app already wrote with tenant_id first (it knows its tables are row-isolated). */
function leadsWithTenant(c: Constraint): boolean {
  const first = (c.fk_attrs ?? [])[0]
  return !!first && 'String' in first && first.String.sval === TENANT_ID
}

/**
 * The statement as SQL, checked: parsed again, it gives the same tree. pgsql-deparser leaves
 * out `ON DELETE SET NULL (columns)`'s list, which is put back here after the constraint it
 * belongs to (found by a marker name given to each such constraint while it is written).
 */
async function faithfully(stmt: Node, original: string): Promise<string> {
  const lists: Array<{ marker: string; conname: string | undefined; columns: string[] }> = []
  const marked = structuredClone(stmt)
  visitConstraints(marked, (c) => {
    if (!c.fk_del_set_cols?.length) return
    const marker = `tenantry_set_columns_${lists.length}`
    lists.push({ marker, conname: c.conname, columns: c.fk_del_set_cols.map((n) => ('String' in n ? n.String.sval! : '')) })
    c.conname = marker
  })
  let text = await deparse(marked)
  for (const { marker, conname, columns } of lists) {
    const at = text.indexOf(marker)
    const clause = /ON DELETE SET (NULL|DEFAULT)/g
    clause.lastIndex = at
    const found = at < 0 ? null : clause.exec(text)
    if (!found) break
    const end = found.index + found[0].length
    text = text.slice(0, end) + ` (${columns.map(quoteName).join(', ')})` + text.slice(end)
    text = text.replace(conname === undefined ? `CONSTRAINT ${marker}` : marker, conname === undefined ? '' : quoteName(conname))
  }
  const again = ((await parse(text).catch(() => undefined)) as { stmts?: Array<{ stmt: Node }> } | undefined)?.stmts
  if (again?.length !== 1 || canonical(again[0]!.stmt) !== canonical(stmt)) {
    throw new TenantryError(
      'MIGRATION_FAILED',
      `Row isolation keys every table by tenant, so this statement's foreign key must become (tenant_id, …) → (tenant_id, …), and it could not be rewritten faithfully: ${original.trim().slice(0, 200)}`,
    )
  }
  return text
}

function visitConstraints(node: unknown, visit: (c: Constraint) => void): void {
  if (Array.isArray(node)) return node.forEach((n) => visitConstraints(n, visit))
  if (!node || typeof node !== 'object') return
  for (const [key, value] of Object.entries(node)) {
    if (key === 'Constraint') visit(value as Constraint)
    visitConstraints(value, visit)
  }
}

/** A tree as text with its keys sorted and its source positions left out: equal for equal statements. */
function canonical(node: unknown): string {
  return JSON.stringify(node, (key, value: unknown) => {
    if (key === 'location') return undefined
    if (value && typeof value === 'object' && !Array.isArray(value)) return Object.fromEntries(Object.entries(value).sort(([a], [b]) => (a < b ? -1 : 1)))
    return value
  })
}

/** An identifier as Postgres reads it back unchanged: bare when it is plain lower case. */
function quoteName(name: string): string {
  return /^[a-z_][a-z0-9_$]*$/.test(name) ? name : `"${name.replace(/"/g, '""')}"`
}
