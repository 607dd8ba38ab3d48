import { Migrator, CompiledQuery, type Kysely } from 'kysely'
import { TenantryError } from '../errors.js'
import { newTenantId } from '../identifiers.js'
import type { DatabaseEngine, EngineHandle, Isolation } from '../engines/engine.js'
import { TENANT_MIGRATION_LOCK_TABLE, TENANT_MIGRATION_TABLE, type TenantMigrationSet } from '../migrations/migration-set.js'

/**
 * A database's tables as adopt and split compare them with the migration set: each table's
 * columns as `name type`, sorted (a column added later by `ALTER TABLE` comes last, whatever
 * order the migrations gave). Types are SQLite's affinity (what SQLite itself goes by, so
 * `varchar(255)` and `text` agree) or Postgres's `format_type`. Tenantry's own tables
 * (`tenantry_*`), SQLite's (`sqlite_*`) and full-text indexes are left out: they are made by
 * Tenantry's derived steps, never by the app's migrations. Indexes, constraints and data are not
 * compared.
 */
export type SchemaShape = Map<string, string[]>

/** Runs one statement with positional parameters and answers its rows. */
export type RunQuery = (text: string, values?: readonly unknown[]) => Promise<Array<Record<string, unknown>>>

/** `RunQuery` over a Kysely instance (a tenant handle's, or a transaction's). */
export function kyselyRun(db: Kysely<any>): RunQuery {
  return async (text, values = []) => (await db.executeQuery<Record<string, unknown>>(CompiledQuery.raw(text, [...values]))).rows
}

function ignored(table: string): boolean {
  return table.startsWith('tenantry_') || table.startsWith('sqlite_')
}

/** SQLite's type affinity of a declared column type (https://sqlite.org/datatype3.html, 3.1). */
export function sqliteAffinity(declared: string): string {
  const type = declared.toUpperCase()
  if (type.includes('INT')) return 'INTEGER'
  if (/CHAR|CLOB|TEXT/.test(type)) return 'TEXT'
  if (type === '' || type.includes('BLOB')) return 'BLOB'
  if (/REAL|FLOA|DOUB/.test(type)) return 'REAL'
  return 'NUMERIC'
}

/** The shape of a SQLite database. */
export async function sqliteShape(run: RunQuery): Promise<SchemaShape> {
  const all = (await run(`select name, sql from sqlite_master where type = 'table' order by name`)) as Array<{ name: string; sql: string | null }>
  const virtual = all.filter((t) => /^\s*create\s+virtual\s+table/i.test(t.sql ?? '')).map((t) => t.name)
  const shape: SchemaShape = new Map()
  for (const table of all) {
    if (ignored(table.name) || virtual.some((v) => table.name === v || table.name.startsWith(`${v}_`))) continue
    const columns = (await run('select name, type, hidden from pragma_table_xinfo(?) order by cid', [table.name])) as Array<{ name: string; type: string; hidden: number }>
    shape.set(table.name, columns.filter((c) => c.hidden === 0).map((c) => `${c.name} ${sqliteAffinity(c.type)}`).sort())
  }
  return shape
}

/** The shape of one Postgres schema (its tables; views are not compared). */
export async function postgresShape(run: RunQuery, schema: string): Promise<SchemaShape> {
  const rows = (await run(
    `select c.relname as table, a.attname as column, format_type(a.atttypid, a.atttypmod) as type
     from pg_class c join pg_namespace n on n.oid = c.relnamespace
     join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
     where n.nspname = $1 and c.relkind in ('r', 'p') and not c.relispartition
     order by c.relname, a.attname`,
    [schema],
  )) as Array<{ table: string; column: string; type: string }>
  const shape: SchemaShape = new Map()
  for (const row of rows) {
    if (ignored(row.table)) continue
    const columns = shape.get(row.table) ?? []
    columns.push(`${row.column} ${row.type}`)
    shape.set(row.table, columns)
  }
  for (const columns of shape.values()) columns.sort()
  return shape
}

/** The shape of what a tenant handle holds, on its engine. */
export async function handleShape(handle: EngineHandle): Promise<SchemaShape> {
  const run = kyselyRun(handle.db)
  if (handle.engine === 'sqlite') return sqliteShape(run)
  if (handle.engine === 'postgres') return postgresShape(run, handle.schema ?? ((await run('select current_schema() as s'))[0]!.s as string))
  throw new TenantryError('UNSUPPORTED_PLACEMENT', `Adopt and split are not offered for ${handle.engine} tenants`)
}

/** The migrations Tenantry records in a database, oldest first, or undefined where it has no migration table. */
export async function recordedMigrations(run: RunQuery, engine: string, schema?: string): Promise<string[] | undefined> {
  const exists =
    engine === 'sqlite'
      ? (await run(`select 1 from sqlite_master where type = 'table' and name = ?`, [TENANT_MIGRATION_TABLE])).length > 0
      : (await run(`select 1 from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = $1 and c.relname = $2`, [schema, TENANT_MIGRATION_TABLE])).length > 0
  if (!exists) return undefined
  const table = engine === 'sqlite' ? `"${TENANT_MIGRATION_TABLE}"` : `"${schema!.replace(/"/g, '""')}"."${TENANT_MIGRATION_TABLE}"`
  return ((await run(`select name from ${table} order by name`)) as Array<{ name: string }>).map((r) => r.name)
}

/** The app's migrations of a set, in order: its names without the derived steps. */
export function appMigrationNames(set: TenantMigrationSet): string[] {
  const derived = new Set(set.derived.map((d) => d.name))
  return set.names.filter((n) => !derived.has(n))
}

/** Byte order, as the migration set orders names. */
export function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

/**
 * The shape after each prefix of the app's migrations (index k: after the first k), built once
 * on a scratch tenant storage of `engine` that is dropped again: what an adopted database is
 * compared with.
 */
export async function prefixShapes(engine: DatabaseEngine, isolation: Isolation, set: TenantMigrationSet): Promise<SchemaShape[]> {
  const tenantId = newTenantId()
  const placement = { tenantId, isolation, locator: engine.locatorFor(tenantId, isolation) }
  await engine.create(placement)
  try {
    const handle = engine.open(placement, 'admin')
    try {
      const shapes = [await handleShape(handle)]
      const migrations = set.forHandle(handle)
      const migrator = new Migrator({
        db: handle.db,
        provider: { getMigrations: async () => migrations },
        migrationTableName: TENANT_MIGRATION_TABLE,
        migrationLockTableName: TENANT_MIGRATION_LOCK_TABLE,
        ...(handle.schema ? { migrationTableSchema: handle.schema } : {}),
        nameComparator: compareNames,
      })
      for (const name of appMigrationNames(set)) {
        const { error } = await migrator.migrateTo(name)
        if (error !== undefined) throw new TenantryError('MIGRATION_FAILED', `Migration ${name} failed on a scratch database: ${String(error)}`, { cause: error })
        shapes.push(await handleShape(handle))
      }
      return shapes
    } finally {
      await handle.close()
    }
  } finally {
    await engine.drop(placement)
  }
}

/**
 * Records in the tenant's storage that its first migrations are applied, without running them
 * (their effects are there already): Kysely's own records, so that the next migrate applies only
 * the rest. Runs the handle's after-migration step (Postgres: Tenantry's migration tables
 * read-only for the tenant's role).
 */
export async function markApplied(handle: EngineHandle, names: readonly string[]): Promise<void> {
  if (names.length === 0) return
  const migrations = Object.fromEntries(names.map((name) => [name, { up: async () => undefined }]))
  const migrator = new Migrator({
    db: handle.db,
    provider: { getMigrations: async () => migrations },
    migrationTableName: TENANT_MIGRATION_TABLE,
    migrationLockTableName: TENANT_MIGRATION_LOCK_TABLE,
    ...(handle.schema ? { migrationTableSchema: handle.schema } : {}),
    nameComparator: compareNames,
  })
  const { error } = await migrator.migrateToLatest()
  if (error !== undefined) throw error
  await handle.afterEachMigration?.(handle.db)
}

/** Differences between two shapes, in words, for an `ADOPT_MISMATCH`'s details. */
export function shapeDifferences(actual: SchemaShape, expected: SchemaShape): string[] {
  const differences: string[] = []
  for (const table of expected.keys()) if (!actual.has(table)) differences.push(`table ${table} is missing`)
  for (const table of actual.keys()) if (!expected.has(table)) differences.push(`table ${table} is not made by the migrations`)
  for (const [table, columns] of expected) {
    const held = actual.get(table)
    if (!held) continue
    for (const column of columns) if (!held.includes(column)) differences.push(`${table}: column ${column} is missing or of another type`)
    for (const column of held) if (!columns.includes(column)) differences.push(`${table}: column ${column} is not made by the migrations`)
  }
  return differences
}

/** How far through the migration set a database is, as adopt and split decide it. */
export interface MigrationLevel {
  /** The app migrations whose effects the database holds, in order (a prefix of the set). */
  applied: string[]
  /** They were read from Tenantry's migration table in the database, not inferred from its shape. */
  recorded: boolean
}

/**
 * Decides which prefix of the app's migrations a database holds, or refuses with
 * `ADOPT_MISMATCH`. The rule:
 * - a database with Tenantry's migration table (it was a Tenantry tenant) is at what that table
 *   records, which must be a prefix of this set's migrations, and its shape must be that prefix's;
 * - else, with `applied` (a migration name), it is at that migration, and its shape must match;
 * - else it is at the one prefix whose shape equals its own. None is a mismatch (the details
 *   name the differences from the closest); several (a migration that changes no table or
 *   column, e.g. an index or data) is ambiguous: name one with `applied`.
 */
export function matchLevel(actual: SchemaShape, shapes: readonly SchemaShape[], names: readonly string[], recorded: string[] | undefined, applied: string | undefined, what: string): MigrationLevel {
  const same = (k: number) => shapeDifferences(actual, shapes[k]!).length === 0
  const refuse = (k: number, reason: string): never => {
    const differences = shapeDifferences(actual, shapes[k]!)
    throw new TenantryError('ADOPT_MISMATCH', `${what} ${reason}${differences.length ? `: ${differences.slice(0, 5).join('; ')}${differences.length > 5 ? '; …' : ''}` : ''}`, {
      details: { comparedWith: names.slice(0, k), differences },
    })
  }
  if (recorded !== undefined) {
    const app = recorded.filter((n) => names.includes(n) || !n.startsWith('tenantry_')) // derived steps (`tenantry_search.<hash>`…) are rebuilt
    const k = app.length
    if (app.some((n, i) => names[i] !== n)) {
      throw new TenantryError('ADOPT_MISMATCH', `${what} records migrations that are not the start of this migration set: ${app.join(', ') || '(none)'}`, {
        details: { recorded: app, migrations: names },
      })
    }
    if (!same(k)) refuse(k, `records ${k ? `migrations up to ${names[k - 1]}` : 'no migration'}, but its tables differ from what they make`)
    return { applied: [...app], recorded: true }
  }
  if (applied !== undefined) {
    const k = names.indexOf(applied) + 1
    if (k === 0) throw new TenantryError('INVALID_OPTION', `--applied ${JSON.stringify(applied)} is not one of the tenant migrations (${names.join(', ') || 'none'})`)
    if (!same(k)) refuse(k, `is said to be at migration ${applied}, but its tables differ from what the migrations up to it make`)
    return { applied: names.slice(0, k), recorded: false }
  }
  const matches = shapes.map((_, k) => k).filter(same)
  if (matches.length === 1) return { applied: names.slice(0, matches[0]), recorded: false }
  if (matches.length > 1) {
    throw new TenantryError(
      'ADOPT_MISMATCH',
      `${what} matches the tables of several migration levels (${matches.map((k) => (k ? names[k - 1] : 'none')).join(', ')}): name the last migration it has with --applied`,
      { details: { candidates: matches.map((k) => (k ? names[k - 1] : null)) } },
    )
  }
  const closest = shapes.map((s, k) => ({ k, n: shapeDifferences(actual, s).length })).sort((a, b) => a.n - b.n || b.k - a.k)[0]!.k
  return refuse(closest, `does not match the tables the tenant migrations make (closest: ${closest ? `up to ${names[closest - 1]}` : 'none applied'})`)
}
