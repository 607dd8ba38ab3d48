import { createHash } from 'node:crypto'
import { sql, type Kysely } from 'kysely'
import type { EngineHandle } from '../engines/engine.js'
import type { Logger } from '../logger.js'
import type { DerivedStep } from '../migrations/derived-step.js'

/**
 * Indexes for the data API's `?q=` (issue 8, item 7): Tenantry derives them from the
 * collections the server config declares (`server.collections`, columns with
 * `searchable: true`) and applies them to every tenant database after the app's migrations,
 * as one more step of the migration set (see `TenantMigrationSet.withDerived`). The step's
 * name carries a hash of the declaration, so the catalog ledger sees every tenant as behind
 * when the declaration changes, and `tenantry migrate` (or provisioning, or a template)
 * brings each up to date.
 *
 * - SQLite: an external-content FTS5 table with the `trigram` tokenizer
 *   (`case_sensitive 0 remove_diacritics 0`: `ä` is not `a`, as for the scan) over the
 *   table's searchable columns, kept in step by triggers, so writes through raw SQL keep it
 *   too. Searches narrow to its `MATCH` and decide with the exact condition.
 * - Postgres: a `pg_trgm` GIN index on `lower(column)` per searchable column; searches narrow
 *   with `lower(column) LIKE '%…%'` and decide with the exact condition. Without `pg_trgm`
 *   (not installed and not installable) the step fails, which is logged and leaves the tenant
 *   behind for the next migrate, and search scans.
 *
 * An index only ever narrows: a missing or damaged one costs speed (or, if a tenant writes to
 * its own index, its own search), never an error of the data API, which then scans.
 */

/** What an index needs to know of one declared collection: read from `server.collections`. */
export interface SearchIndexDeclaration {
  /** The table (the collection's `table`, else its name). */
  table: string
  /** The searchable columns, in declaration order. */
  columns: readonly string[]
}

/** The names the server config validates for tables and columns; anything else gets no index. */
const IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/

/** The ledger name of the search index step: `tenantry_search.<hash of the declaration>`. */
export const SEARCH_INDEX_STEP_PREFIX = 'tenantry_search.'

/** Part of the step's hash: raised when what the step makes changes, so every tenant is brought level. */
const SEARCH_INDEX_VERSION = 1

/**
 * The searchable declarations of a config's opaque `server` block, read leniently: the server
 * validates the block itself at start; here a collection that is not well formed gets no index.
 */
export function searchDeclarations(server: Record<string, unknown> | undefined): SearchIndexDeclaration[] {
  const collections = server?.collections
  if (!collections || typeof collections !== 'object') return []
  const out: SearchIndexDeclaration[] = []
  for (const [name, raw] of Object.entries(collections as Record<string, unknown>)) {
    const c = raw as { table?: unknown; columns?: unknown } | null
    if (!c || typeof c !== 'object' || !c.columns || typeof c.columns !== 'object') continue
    const table = typeof c.table === 'string' ? c.table : name
    const columns = Object.entries(c.columns as Record<string, { searchable?: unknown } | null>)
      .filter(([column, def]) => IDENTIFIER.test(column) && def?.searchable === true)
      .map(([column]) => column)
    if (IDENTIFIER.test(table) && columns.length > 0) out.push({ table, columns })
  }
  return out.sort((a, b) => (a.table < b.table ? -1 : a.table > b.table ? 1 : 0))
}

/** The FTS5 table holding the trigram index of `table` on SQLite. */
export function searchIndexTable(table: string): string {
  return `tenantry_search_${table}`
}

/** The trigram index of one column on Postgres: hashed, as a Postgres identifier is at most 63 bytes. */
export function searchIndexName(table: string, column: string): string {
  return `tenantry_search_${createHash('sha256').update(`${table}.${column}`).digest('hex').slice(0, 16)}`
}

/** The FTS5 tokenizer: trigrams, case folded (Unicode simple folding), diacritics kept. */
export const SEARCH_TOKENIZER = 'trigram case_sensitive 0 remove_diacritics 0'


/** `searchIndexStep` as data (its declarations are plain data), for another thread (see `loadMigrationSource`). */
export const SEARCH_RECIPE_KIND = 'search'

/** The search index step for `declarations`, or none when nothing is searchable. */
export function searchIndexStep(declarations: readonly SearchIndexDeclaration[]): DerivedStep | undefined {
  if (declarations.length === 0) return undefined
  const hash = createHash('sha256').update(`${SEARCH_INDEX_VERSION}\0${JSON.stringify(declarations)}`).digest('hex').slice(0, 16)
  return {
    name: `${SEARCH_INDEX_STEP_PREFIX}${hash}`,
    recipe: { kind: SEARCH_RECIPE_KIND, args: declarations },
    apply: async (handle, logger, tenantId) => {
      if (handle.engine === 'sqlite') {
        await handle.db.transaction().execute(async (trx) => {
          for (const d of declarations) await sqliteIndex(trx, d, logger, tenantId)
        })
      } else if (handle.engine === 'postgres') {
        await postgresIndexes(handle, declarations, logger, tenantId)
      }
    },
  }
}

/** The definition of the FTS5 table for `d`, as SQLite stores it in `sqlite_master` (compared to find a stale one). */
function ftsDefinition(d: SearchIndexDeclaration): string {
  const columns = d.columns.map(quote).join(', ')
  return `CREATE VIRTUAL TABLE ${quote(searchIndexTable(d.table))} USING fts5(${columns}, content=${quote(d.table)}, tokenize='${SEARCH_TOKENIZER}')`
}

const TRIGGERS = ['ai', 'ad', 'au'] as const

/**
 * Makes (or remakes, when the declaration changed) the FTS5 table of one collection and its
 * triggers, then fills it from the table. A table the app's migrations have not made (or made
 * without a rowid, which external content needs) gets no index: its search scans.
 */
async function sqliteIndex(db: Kysely<any>, d: SearchIndexDeclaration, logger: Logger, tenantId?: string): Promise<void> {
  const fts = searchIndexTable(d.table)
  const master = await sql<{ name: string; sql: string | null }>`select name, sql from sqlite_master where name in (${sql.join([d.table, fts])})`.execute(db)
  const tableSql = master.rows.find((r) => r.name === d.table)?.sql
  const current = master.rows.find((r) => r.name === fts)?.sql
  const wanted = ftsDefinition(d)
  const columnsExist = tableSql
    ? (await sql<{ name: string }>`select name from pragma_table_info(${d.table})`.execute(db)).rows.map((r) => r.name)
    : []
  const usable = tableSql && !/without\s+rowid\s*$/i.test(tableSql) && d.columns.every((c) => columnsExist.includes(c))
  if (current === wanted && usable) {
    // Triggers may have been dropped (raw SQL can): put back any that are missing, then rebuild.
    const triggers = await sql<{ name: string }>`select name from sqlite_master where type = 'trigger' and tbl_name = ${d.table}`.execute(db)
    if (TRIGGERS.every((t) => triggers.rows.some((r) => r.name === `${fts}_${t}`))) return
  }
  for (const t of TRIGGERS) await sql`drop trigger if exists ${sql.id(`${fts}_${t}`)}`.execute(db)
  await sql`drop table if exists ${sql.id(fts)}`.execute(db)
  if (!usable) {
    logger.warn({ tenantId, table: d.table }, 'No search index: the table does not exist, has no rowid, or lacks a searchable column; its search scans')
    return
  }
  await sql.raw(wanted).execute(db)
  const cols = sql.raw(d.columns.map(quote).join(', '))
  const values = (row: 'new' | 'old') => sql.raw(d.columns.map((c) => `${row}.${quote(c)}`).join(', '))
  const f = sql.id(fts)
  const insertNew = sql`insert into ${f} (rowid, ${cols}) values (new.rowid, ${values('new')});`
  const deleteOld = sql`insert into ${f} (${f}, rowid, ${cols}) values ('delete', old.rowid, ${values('old')});`
  const t = sql.id(d.table)
  await sql`create trigger ${sql.id(`${fts}_ai`)} after insert on ${t} begin ${insertNew} end`.execute(db)
  await sql`create trigger ${sql.id(`${fts}_ad`)} after delete on ${t} begin ${deleteOld} end`.execute(db)
  await sql`create trigger ${sql.id(`${fts}_au`)} after update on ${t} begin ${deleteOld} ${insertNew} end`.execute(db)
  await sql`insert into ${f} (${f}) values ('rebuild')`.execute(db)
}

/**
 * `pg_trgm` (made where it is missing, in `public`; a managed admin may, as it is a trusted
 * extension since Postgres 13) and a GIN index on `lower(column)` per searchable column.
 * Without the extension: an error (logged by `migrateHandle`), and search scans (`tenantry
 * doctor` says so too).
 */
async function postgresIndexes(handle: EngineHandle, declarations: readonly SearchIndexDeclaration[], logger: Logger, tenantId?: string): Promise<void> {
  const schema = await trigramSchema(handle.db)
  // Thrown, so the step stays out of the ledger: each `tenantry migrate` tries again (and
  // `tenantry doctor` says why) until pg_trgm can be had. Search scans meanwhile.
  if (!schema) throw new Error('pg_trgm is not installed and this admin cannot CREATE EXTENSION pg_trgm: searchable columns are not indexed, search scans')
  await handle.db.transaction().execute(async (trx) => {
    for (const d of declarations) {
      const exists = handle.schema
        ? await sql`select 1 from information_schema.tables where table_schema = ${handle.schema} and table_name = ${d.table}`.execute(trx)
        : await sql`select 1 from information_schema.tables where table_schema = current_schema() and table_name = ${d.table}`.execute(trx)
      if (exists.rows.length === 0) {
        logger.warn({ tenantId, table: d.table }, 'No search index: the table does not exist; its search scans')
        continue
      }
      for (const column of d.columns) {
        await trx.schema
          .createIndex(searchIndexName(d.table, column))
          .ifNotExists()
          .on(d.table)
          .using('gin')
          .expression(sql`lower(${sql.ref(column)}) ${sql.id(schema)}.gin_trgm_ops`)
          .execute()
      }
    }
  })
}

/** The schema `pg_trgm` lives in, making it when it can; undefined when it cannot. */
export async function trigramSchema(db: Kysely<any>): Promise<string | undefined> {
  const installed = async () =>
    (await sql<{ schema: string }>`select n.nspname as schema from pg_extension e join pg_namespace n on n.oid = e.extnamespace where e.extname = 'pg_trgm'`.execute(db)).rows[0]?.schema
  const found = await installed()
  if (found) return found
  try {
    await sql`create extension if not exists pg_trgm with schema public`.execute(db)
  } catch {
    return undefined
  }
  return installed()
}

function quote(identifier: string): string {
  return `"${identifier.replace(/"/g, '""')}"`
}

/**
 * `tenantry doctor` on a Postgres data source whose tenants have searchable collections:
 * warns where `pg_trgm` is neither installed nor available to install (search then scans), or
 * available but not installed yet (the next `tenantry migrate` after a declaration change
 * installs it, where the admin may). Read-only: looks through one stored tenant's database.
 */
export async function checkSearchIndexes(handle: EngineHandle): Promise<{ name: string; status: 'ok' | 'warn'; detail: string }> {
  const name = 'search indexes'
  const rows = await sql<{ installed: string | null }>`select installed_version as installed from pg_available_extensions where name = 'pg_trgm'`.execute(handle.db)
  const found = rows.rows[0]
  if (!found) return { name, status: 'warn', detail: 'pg_trgm is not available on this server: ?q= on searchable columns scans instead of using a trigram index' }
  if (!found.installed) return { name, status: 'warn', detail: 'pg_trgm is available but not installed: run tenantry migrate with an admin that may CREATE EXTENSION; until then ?q= scans' }
  return { name, status: 'ok', detail: `pg_trgm ${found.installed} is installed: searchable columns have trigram indexes` }
}
