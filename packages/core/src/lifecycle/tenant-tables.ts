import { setImmediate } from 'node:timers/promises'
import { sql, type Kysely } from 'kysely'
import { TenantryError } from '../errors.js'
import { quoteReportedName } from '../identifiers.js'
import type { EngineHandle } from '../engines/engine.js'
import { TENANT_MIGRATION_LOCK_TABLE, TENANT_MIGRATION_TABLE } from '../migrations/migration-set.js'
import { encodeValue, exportLine, postgresKind, sqliteKind, type ExportTable, type ValueKind } from './export-format.js'
import { SQLITE_CAPTURE_TABLES } from './capture-names.js'

/** A table as export and import handle it: its columns and references, and how to page through it. */
export interface TenantTable extends ExportTable {
  /** Postgres: the sequence behind each serial or identity column, to bring level after an import. */
  sequences: Record<string, string>
  /** SQLite `WITHOUT ROWID` tables are paged by offset in primary-key order; the rest by row id. */
  primaryKey: string[]
  withoutRowid: boolean
}

/** One page of a table's rows, values in the table's column order, and where the next page starts. */
export interface TablePage {
  rows: unknown[][]
  next: string | number | undefined
}

/** The rows a page holds at most. */
export const PAGE_ROWS = 1000

/** Tenantry's bookkeeping inside a tenant database, which an import rebuilds through migrations. */
const SKIPPED = new Set([TENANT_MIGRATION_TABLE, TENANT_MIGRATION_LOCK_TABLE, ...SQLITE_CAPTURE_TABLES])

/**
 * The tenant's tables with data, on the engine behind `handle`, parents before the tables that
 * reference them. Leaves out the migration tables, SQLite's own, full-text indexes (virtual
 * tables and their shadow tables: derived from the rows, rebuilt by the search-index step),
 * generated columns, and row isolation's `tenant_id` (the import's tenant gets its own).
 */
export async function listTenantTables(handle: EngineHandle, db: Kysely<any>): Promise<TenantTable[]> {
  const tables = handle.engine === 'sqlite' ? await sqliteTables(db) : handle.engine === 'postgres' ? await postgresTables(handle, db) : undefined
  if (!tables) throw new TenantryError('UNSUPPORTED_PLACEMENT', `Export and import are not offered for ${handle.engine} tenants`)
  return referenceOrder(tables)
}

async function sqliteTables(db: Kysely<any>): Promise<TenantTable[]> {
  const all = (await sql<{ name: string; sql: string | null }>`select name, sql from sqlite_master where type = 'table' and name not like 'sqlite\_%' escape '\\' order by name`.execute(db)).rows
  const virtual = all.filter((t) => /^\s*create\s+virtual\s+table/i.test(t.sql ?? '')).map((t) => t.name)
  const tables: TenantTable[] = []
  for (const table of all) {
    if (SKIPPED.has(table.name) || virtual.some((v) => table.name === v || table.name.startsWith(`${v}_`))) continue
    const columns = (await sql<{ name: string; type: string; pk: number; hidden: number }>`select name, type, pk, hidden from pragma_table_xinfo(${table.name}) order by cid`.execute(db)).rows
    const references = (await sql<{ table: string }>`select distinct "table" from pragma_foreign_key_list(${table.name})`.execute(db)).rows.map((r) => r.table)
    const kept = columns.filter((c) => c.hidden === 0)
    tables.push({
      name: table.name,
      columns: kept.map((c) => ({ name: c.name, declared: c.type, kind: sqliteKind(c.type) })),
      references: references.filter((r) => r !== table.name),
      sequences: {},
      primaryKey: kept.filter((c) => c.pk > 0).sort((a, b) => a.pk - b.pk).map((c) => c.name),
      withoutRowid: /without\s+rowid\s*$/i.test(table.sql ?? ''),
    })
  }
  return tables
}

async function postgresTables(handle: EngineHandle, db: Kysely<any>): Promise<TenantTable[]> {
  const schema = handle.schema ? sql`${handle.schema}` : sql`current_schema()`
  const rows = (
    await sql<{ table: string; column: string; declared: string; seq: string | null; refs: string[]; pk: number | null }>`
      select c.relname as table, a.attname as column, format_type(a.atttypid, a.atttypmod) as declared,
        (select array_position(i.indkey::int2[], a.attnum) from pg_index i where i.indrelid = c.oid and i.indisprimary) as pk,
        pg_get_serial_sequence(quote_ident(n.nspname) || '.' || quote_ident(c.relname), a.attname) as seq,
        array(select distinct r.relname from pg_constraint f join pg_class r on r.oid = f.confrelid
              where f.contype = 'f' and f.conrelid = c.oid and f.confrelid <> c.oid)::text[] as refs
      from pg_class c
      join pg_namespace n on n.oid = c.relnamespace
      join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped and a.attgenerated = ''
      where n.nspname = ${schema} and c.relkind in ('r', 'p') and not c.relispartition
      order by c.relname, a.attnum`.execute(db)
  ).rows
  const tables = new Map<string, TenantTable>()
  /** Primary-key columns by table with their place in the key (row isolation's `tenant_id` left out). */
  const pkOrder = new Map<string, Array<{ column: string; at: number }>>()
  for (const row of rows) {
    if (SKIPPED.has(row.table)) continue
    let table = tables.get(row.table)
    if (!table) {
      table = { name: row.table, columns: [], references: row.refs, sequences: {}, primaryKey: [], withoutRowid: false }
      tables.set(row.table, table)
    }
    if (handle.shared && row.column === 'tenant_id') continue
    table.columns.push({ name: row.column, declared: row.declared, kind: postgresKind(row.declared) })
    if (row.seq) table.sequences[row.column] = row.seq
    if (row.pk !== null) (pkOrder.get(row.table) ?? pkOrder.set(row.table, []).get(row.table)!).push({ column: row.column, at: Number(row.pk) })
  }
  for (const [name, keys] of pkOrder) {
    const table = tables.get(name)
    if (table) table.primaryKey = keys.sort((a, b) => a.at - b.at).map((k) => k.column)
  }
  return [...tables.values()]
}

/** Parents first; a cycle of references (rare, and only insertable with deferred constraints) keeps the remaining tables in name order. */
function referenceOrder(tables: TenantTable[]): TenantTable[] {
  const pending = new Map(tables.map((t) => [t.name, t]))
  const ordered: TenantTable[] = []
  while (pending.size > 0) {
    const ready = [...pending.values()].filter((t) => t.references.every((r) => !pending.has(r)))
    const next = ready.length > 0 ? ready : [...pending.values()]
    for (const table of next) {
      ordered.push(table)
      pending.delete(table.name)
    }
  }
  return ordered
}

/** What a select of one column reads, so that the value comes out exact (see `encodeValue`). */
function selectExpression(engine: string, name: string, kind: ValueKind): string {
  const c = quoteReportedName(name)
  if (engine === 'sqlite') {
    // better-sqlite3 gives integers as doubles: as text they stay exact past 2^53.
    return kind === 'integer' ? `case when typeof(${c}) = 'integer' then cast(${c} as text) else ${c} end` : c
  }
  switch (kind) {
    case 'timestamptz':
      return `to_char(${c} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`
    case 'timestamp':
      return `to_char(${c}, 'YYYY-MM-DD"T"HH24:MI:SS.US')`
    case 'date':
    case 'json':
      return `${c}::text` // JSON as text keeps JSON null apart from SQL NULL
    default:
      return c
  }
}

/** Runs `fn` in one read transaction: Postgres `REPEATABLE READ, READ ONLY` (a snapshot); SQLite a deferred transaction, whose first read fixes its snapshot (WAL). */
export function snapshot<T>(handle: EngineHandle, fn: (db: Kysely<any>) => Promise<T>): Promise<T> {
  const builder = handle.db.transaction()
  return (handle.engine === 'postgres' ? builder.setIsolationLevel('repeatable read').setAccessMode('read only') : builder).execute(fn)
}

/**
 * Every row of `tables`, read in `db` (a snapshot) page by page, as export lines: one chunk of
 * text per page. Counts the rows per table into `rows`, and tells `onPage` the running total.
 */
export async function* exportRowLines(
  handle: EngineHandle,
  db: Kysely<any>,
  tables: readonly TenantTable[],
  rows: Record<string, number>,
  onPage?: (table: string, total: number) => void,
): AsyncGenerator<string> {
  let total = 0
  for (const table of tables) {
    rows[table.name] = 0
    let after: string | number | undefined
    do {
      const page = await readPage(handle, db, table, after)
      let chunk = ''
      for (const values of page.rows) chunk += exportLine({ row: table.name, values: values.map((v, i) => encodeValue(v, table.columns[i]!.kind)) })
      rows[table.name]! += page.rows.length
      total += page.rows.length
      onPage?.(table.name, total)
      if (chunk) yield chunk
      after = page.next
    } while (after !== undefined)
  }
}

/**
 * The table's rows after `after` (a row id; `undefined` for the first page), at most `PAGE_ROWS`.
 * On SQLite the read runs on the event loop's thread (better-sqlite3 is synchronous), and a loop
 * of `await`s on it never yields (each resolves as a microtask): each page waits for the event
 * loop's next turn first, so a move's copy or checksums of a large tenant hold other requests for
 * one page at a time, not for the whole table.
 */
export async function readPage(handle: EngineHandle, db: Kysely<any>, table: TenantTable, after: string | number | undefined): Promise<TablePage> {
  if (handle.engine === 'sqlite') await setImmediate()
  const columns = table.columns.map((c, i) => `${selectExpression(handle.engine, c.name, c.kind)} as "c${i}"`)
  const name = quoteReportedName(table.name)
  let query
  if (handle.engine === 'sqlite') {
    if (table.withoutRowid) {
      const offset = Number(after ?? 0)
      const order = table.primaryKey.map(quoteReportedName).join(', ')
      query = sql`select ${sql.raw(columns.join(', '))} from ${sql.raw(name)} order by ${sql.raw(order)} limit ${PAGE_ROWS} offset ${offset}`
      const rows = (await query.execute(db)).rows as Array<Record<string, unknown>>
      return { rows: rows.map((r) => table.columns.map((_, i) => r[`c${i}`])), next: rows.length < PAGE_ROWS ? undefined : offset + rows.length }
    }
    // The row id as text and bound as a bigint: exact past 2^53 too.
    query = sql`select cast(_rowid_ as text) as "rid", ${sql.raw(columns.join(', '))} from ${sql.raw(name)} where ${after === undefined ? sql`1` : sql`_rowid_ > ${BigInt(after)}`} order by _rowid_ limit ${PAGE_ROWS}`
  } else {
    const qualified = handle.schema ? `${quoteReportedName(handle.schema)}.${name}` : name
    if (handle.shared && table.primaryKey.length > 0) {
      // Row isolation: the shared table holds every tenant's rows, and under RLS a ctid range is a scan of
      // all of them per page. Paged by primary key instead, in the (tenant_id, key) index; `next` is the key as JSON.
      const keys = table.primaryKey.map(quoteReportedName).join(', ')
      const at = table.primaryKey.map((k) => table.columns.findIndex((c) => c.name === k))
      const from = after === undefined ? sql`true` : sql`(${sql.raw(keys)}) > (${sql.join((JSON.parse(String(after)) as unknown[]).map((v) => sql`${v as never}`))})`
      const keyed = (await sql`select ${sql.raw(columns.join(', '))} from ${sql.raw(qualified)} where ${from} order by ${sql.raw(keys)} limit ${PAGE_ROWS}`.execute(db)).rows as Array<Record<string, unknown>>
      const lastRow = keyed[keyed.length - 1]
      return {
        rows: keyed.map((r) => table.columns.map((_, i) => r[`c${i}`])),
        next: keyed.length < PAGE_ROWS || !lastRow ? undefined : JSON.stringify(at.map((i) => lastRow[`c${i}`])),
      }
    }
    query = sql`select ctid::text as "rid", ${sql.raw(columns.join(', '))} from ${sql.raw(qualified)} where ctid > ${after ?? '(0,0)'}::tid order by ctid limit ${PAGE_ROWS}`
  }
  const rows = (await query.execute(db)).rows as Array<Record<string, unknown>>
  const last = rows[rows.length - 1]
  return {
    rows: rows.map((r) => table.columns.map((_, i) => r[`c${i}`])),
    next: rows.length < PAGE_ROWS || !last ? undefined : (last.rid as string | number),
  }
}

/**
 * The rows of `table` whose primary key is one of `keys` (values in `primaryKey` order), in
 * `readPage`'s form: values in the table's column order. Keys of rows that no longer exist are
 * simply not in the answer. For a live move, which re-reads the rows its change capture named.
 */
export async function readRowsByKey(handle: EngineHandle, db: Kysely<any>, table: TenantTable, keys: readonly unknown[][]): Promise<unknown[][]> {
  if (keys.length === 0) return []
  const columns = table.columns.map((c, i) => `${selectExpression(handle.engine, c.name, c.kind)} as "c${i}"`)
  const name = quoteReportedName(table.name)
  const qualified = handle.engine !== 'sqlite' && handle.schema ? `${quoteReportedName(handle.schema)}.${name}` : name
  const match = sql.join(
    keys.map((key) => sql`(${sql.join(table.primaryKey.map((column, i) => sql`${sql.raw(quoteReportedName(column))} = ${key[i] as never}`), sql` and `)})`),
    sql` or `,
  )
  const rows = (await sql`select ${sql.raw(columns.join(', '))} from ${sql.raw(qualified)} where ${match}`.execute(db)).rows as Array<Record<string, unknown>>
  return rows.map((r) => table.columns.map((_, i) => r[`c${i}`]))
}

/** The primary key of a row `readPage` or `readRowsByKey` gave, as the change capture records keys. */
export function keyOf(table: TenantTable, values: readonly unknown[]): unknown[] {
  return table.primaryKey.map((column) => values[table.columns.findIndex((c) => c.name === column)])
}
