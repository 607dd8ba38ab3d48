import { createHash } from 'node:crypto'
import { readdir, readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { extname, join, resolve } from 'node:path'
import { createJiti } from 'jiti'
import { MIGRATION_LOCK_ID, Migrator, type Kysely, type Migration, type MigrationResult } from 'kysely'
import { TenantryError } from '../errors.js'
import type { EngineHandle, EngineName } from '../engines/engine.js'
import { SILENT_LOGGER, type Logger } from '../logger.js'
import type { DerivedRecipe, DerivedStep } from './derived-step.js'

/** What a migration is told besides its Kysely: enough to write one migration for every engine. */
export interface TenantMigrationContext {
  engine: EngineName
}

/**
 * A tenant migration, written once and run for every tenant whatever its isolation.
 * `up` receives the tenant's Kysely (inside a transaction where the engine allows).
 *
 * @example
 * export async function up(db: Kysely<any>, { engine }: TenantMigrationContext) {
 *   await db.schema
 *     .createTable('jobs')
 *     .addColumn('id', 'integer', (c) => (engine === 'postgres' ? c.primaryKey().generatedByDefaultAsIdentity() : c.primaryKey()))
 *     .execute()
 * }
 */
export interface TenantMigration {
  up(db: Kysely<any>, context: TenantMigrationContext): Promise<void>
  down?(db: Kysely<any>, context: TenantMigrationContext): Promise<void>
}

/** The name Tenantry uses for its migration tables inside each tenant database. */
export const TENANT_MIGRATION_TABLE = 'tenantry_migration'
export const TENANT_MIGRATION_LOCK_TABLE = 'tenantry_migration_lock'

interface Entry {
  readonly name: string
  readonly up: (db: Kysely<any>, handle: EngineHandle) => Promise<void>
  readonly down?: (db: Kysely<any>, handle: EngineHandle) => Promise<void>
}

/**
 * Where a migration set can be loaded again, in another thread (`loadMigrationSource`): its
 * directory and its derived steps as data. Plain data, so it survives `postMessage`.
 */
export interface MigrationSetSource {
  readonly directory: string
  readonly derived: readonly DerivedRecipe[]
  /** The set's `key` when it was loaded: a copy loaded from files that changed since is refused. */
  readonly key: string
}

/** The ordered set of tenant migrations, with a content hash that names their template. */
export class TenantMigrationSet {
  readonly names: readonly string[]
  /** Changes whenever a migration is added, removed or edited. */
  readonly key: string
  /**
   * Steps Tenantry derives from the config (the search indexes), run after the app's
   * migrations by `migrateHandle`. Their names follow the migrations' in `names`, so the
   * ledger, `migrate status` and templates treat them as migrations; Kysely never sees them.
   */
  readonly derived: readonly DerivedStep[]
  /**
   * How to load this set in another thread: set for a set read from a directory whose derived
   * steps all have a recipe; `undefined` for migrations given in code, which exist only here.
   */
  readonly source: MigrationSetSource | undefined
  readonly #entries: readonly Entry[]

  private constructor(entries: readonly Entry[], key: string, derived: readonly DerivedStep[] = [], directory?: string) {
    this.#entries = [...entries].sort((a, b) => compareNames(a.name, b.name))
    this.derived = derived
    this.names = [...this.#entries.map((e) => e.name), ...derived.map((d) => d.name)]
    this.key = key
    const recipes = derived.map((d) => d.recipe)
    this.source =
      directory !== undefined && recipes.every((r): r is DerivedRecipe => r !== undefined) ? { directory, derived: recipes, key } : undefined
  }

  /** This set with `steps` run after its migrations (a step's name changes with what it makes, so the key does too). */
  withDerived(steps: ReadonlyArray<DerivedStep | undefined>): TenantMigrationSet {
    const derived = steps.filter((s): s is DerivedStep => s !== undefined)
    if (derived.length === 0) return this
    const key = createHash('sha256').update(`${this.key}\0${derived.map((d) => d.name).join('\0')}`).digest('hex').slice(0, 32)
    return new TenantMigrationSet(this.#entries, key, [...this.derived, ...derived], this.source?.directory)
  }

  /** Migrations given in code: `{ '0001_jobs': { up }, ... }`. */
  static fromRecord(record: Record<string, TenantMigration>): TenantMigrationSet {
    const hash = createHash('sha256')
    const entries = Object.entries(record).map(([name, migration]) => {
      assertMigrationName(name)
      hash.update(`${name}\0${migration.up.toString()}\0${migration.down?.toString() ?? ''}\0`)
      return {
        name,
        up: (db: Kysely<any>, handle: EngineHandle) => migration.up(db, { engine: handle.engine }),
        ...(migration.down ? { down: (db: Kysely<any>, handle: EngineHandle) => migration.down!(db, { engine: handle.engine }) } : {}),
      }
    })
    return new TenantMigrationSet(entries, hash.digest('hex').slice(0, 32))
  }

  /**
   * Every `.ts`, `.js`, `.mjs` (exporting `up` and optionally `down`) and `.sql` file in
   * `directory`, ordered by name. A `.sql` file is one forward-only script.
   */
  static async fromDirectory(directory: string): Promise<TenantMigrationSet> {
    const root = resolve(directory)
    let files: string[]
    try {
      files = (await readdir(root)).filter((f) => MIGRATION_EXTENSIONS.has(extname(f)) && !f.endsWith('.d.ts'))
    } catch (error) {
      throw new TenantryError('INVALID_CONFIG', `Cannot read tenant migrations directory ${root}`, { cause: error })
    }
    files.sort(compareNames)
    const jiti = createJiti(import.meta.url, { moduleCache: true, alias: { kysely: KYSELY_ENTRY } })
    const hash = createHash('sha256')
    const entries: Entry[] = []
    const seen = new Set<string>()
    for (const file of files) {
      const name = file.slice(0, -extname(file).length)
      assertMigrationName(name)
      if (seen.has(name)) throw new TenantryError('INVALID_MIGRATION', `Two migration files are named ${name}`)
      seen.add(name)
      const path = join(root, file)
      const source = await readFile(path, 'utf8')
      hash.update(`${name}\0${source}\0`)
      if (extname(file) === '.sql') {
        entries.push({ name, up: (db, handle) => handle.execScript(db, source) })
        continue
      }
      const module = await jiti.import<Partial<TenantMigration>>(path)
      if (typeof module.up !== 'function') {
        throw new TenantryError('INVALID_MIGRATION', `Migration ${file} exports no up() function`)
      }
      const { up, down } = module
      entries.push({
        name,
        up: (db, handle) => up(db, { engine: handle.engine }),
        ...(down ? { down: (db: Kysely<any>, handle: EngineHandle) => down(db, { engine: handle.engine }) } : {}),
      })
    }
    return new TenantMigrationSet(entries, hash.digest('hex').slice(0, 32), [], root)
  }

  /** Kysely migrations bound to one open handle (a `.sql` script needs the handle's raw exec). */
  forHandle(handle: EngineHandle): Record<string, Migration> {
    const migrations: Record<string, Migration> = {}
    for (const entry of this.#entries) {
      const { down } = entry
      migrations[entry.name] = {
        up: async (db) => {
          await entry.up(db, handle)
          await handle.afterEachMigration?.(db)
        },
        ...(down ? { down: (db: Kysely<any>) => down(db, handle) } : {}),
      }
    }
    return migrations
  }
}

/** What one tenant database holds after a migrate: every executed migration with its time. */
export interface HandleMigrationOutcome {
  /** Migrations this call applied. */
  applied: string[]
  /** Every migration the database has recorded, as the ledger should hold them. */
  executed: Array<{ name: string; appliedAt: string }>
  error?: unknown
}

export interface MigrateHandleOptions {
  /** The tenant whose database the handle opens, for the log. Absent for a template. */
  tenantId?: string
  /** Hears of errors the migrate survives. @default SILENT_LOGGER */
  logger?: Logger
  /**
   * Stop after this app migration instead of the latest (an import brings a new tenant to its
   * export's level before inserting the rows). Derived steps run as after any migrate.
   * @default the latest
   */
  upTo?: string
  /** Where the handle's migrations are recorded (the shared set keeps its own). @default TENANT_MIGRATION_TABLE and TENANT_MIGRATION_LOCK_TABLE */
  tables?: { migration: string; lock: string }
}

/** Engines whose DDL is transactional, where `migrateInOrder` may run the migrations itself. */
const IN_ORDER_ENGINES: ReadonlySet<string> = new Set(['sqlite', 'postgres'])

/**
 * Brings one tenant database to the latest migration. All pending migrations and their
 * records commit in one transaction where the engine has transactional DDL (SQLite and
 * Postgres both do), so a crash applies all or none. A tenant of its own (not shared tables)
 * whose applied migrations are the set's first ones, in order (every fan-out, every move), is
 * migrated by `migrateInOrder`; any other state, other engines and `upTo` go through Kysely's
 * Migrator.
 */
export async function migrateHandle(
  handle: EngineHandle,
  set: TenantMigrationSet,
  options: MigrateHandleOptions = {},
): Promise<HandleMigrationOutcome> {
  const migrations = set.forHandle(handle)
  const tables = options.tables ?? { migration: TENANT_MIGRATION_TABLE, lock: TENANT_MIGRATION_LOCK_TABLE }
  const logger = options.logger ?? SILENT_LOGGER
  const inOrder = options.upTo === undefined && !handle.shared && IN_ORDER_ENGINES.has(handle.engine)
  const outcome =
    (inOrder ? await migrateInOrder(handle, migrations, tables) : undefined) ??
    (await migrateWithMigrator(handle, migrations, tables, options))
  if (outcome.error !== undefined) return outcome
  // Derived steps (search indexes) after every migrate: each is idempotent and cheap when its
  // database is current. One that fails is logged and left out of `executed`, so the tenant
  // stays behind and the next run tries again; the app's migrations stand.
  for (const step of set.derived) {
    try {
      await step.apply(handle, logger, options.tenantId)
      outcome.executed.push({ name: step.name, appliedAt: new Date().toISOString() })
    } catch (err) {
      logger.warn({ err, tenantId: options.tenantId, step: step.name }, 'A derived schema step (search index) failed; search scans until the next migrate')
    }
  }
  return outcome
}

type MigrationTables = NonNullable<MigrateHandleOptions['tables']>

async function migrateWithMigrator(
  handle: EngineHandle,
  migrations: Record<string, Migration>,
  tables: MigrationTables,
  { upTo, logger = SILENT_LOGGER, tenantId }: MigrateHandleOptions,
): Promise<HandleMigrationOutcome> {
  const migrator = new Migrator({
    db: handle.db,
    provider: { getMigrations: async () => migrations },
    migrationTableName: tables.migration,
    migrationLockTableName: tables.lock,
    // Without it, Kysely would find another tenant's migration table in a shared database.
    ...(handle.schema ? { migrationTableSchema: handle.schema } : {}),
    nameComparator: compareNames,
  })
  const { error, results = [] } = upTo === undefined ? await migrator.migrateToLatest() : await migrator.migrateTo(upTo)
  const applied = results.filter((r: MigrationResult) => r.status === 'Success').map((r) => r.migrationName)
  // A failed run rolled back; read what the database really holds so the ledger matches it.
  // If even that read fails, the ledger gains nothing now and the next run brings it level.
  // One select of the migrator's own table: what `migrator.getMigrations()` returns, without
  // the schema introspection it runs first (the migrate above made sure the table exists).
  const known = new Set(Object.keys(migrations))
  const held = await (handle.schema ? handle.db.withSchema(handle.schema) : handle.db)
    .selectFrom(tables.migration)
    .select(['name', 'timestamp'])
    .execute()
    .catch((err: unknown) => {
      logger.warn({ err, tenantId }, 'Reading the migrations a tenant database holds failed; the next run brings its ledger level')
      return []
    })
  const executed = held
    .filter((m) => known.has(m.name))
    .sort((a, b) => compareNames(a.name, b.name))
    .map((m) => ({ name: m.name as string, appliedAt: new Date(m.timestamp as string).toISOString() }))
  return error !== undefined ? { applied: [], executed, error } : { applied, executed }
}

/** Thrown in `migrateInOrder`'s transaction when the database holds what it leaves to the Migrator. */
class NotInOrder extends Error {}

/**
 * The usual migrate without Kysely's Migrator around it. On each call the Migrator lists every
 * table of the tenant with its columns, twice, to see that its own two tables exist, and reads
 * its lock row; on Postgres it also holds one advisory lock for the whole database, so tenants
 * of one server migrate one at a time whatever the fan-out's concurrency. On a one-migration
 * fan-out that was more statements than the migration. Here, when the migration table holds
 * the set's first migrations in order, the rest run in one transaction and are recorded in the
 * rows the Migrator writes (name, ISO timestamp), so either can migrate the database next. The
 * transaction first updates the Migrator's lock row: that takes SQLite's write lock, or the
 * row's lock on Postgres, so two runs of one tenant queue (the second then finds nothing to do)
 * and runs of different tenants do not. Returns undefined, having changed nothing, for any other
 * state (never migrated, no lock row, a migration the set lacks, one applied out of order) or
 * when the lock or the read fails: the Migrator then runs and says what is wrong. A migration
 * that fails rolls everything back and is reported as the Migrator would report it.
 */
async function migrateInOrder(handle: EngineHandle, migrations: Record<string, Migration>, tables: MigrationTables): Promise<HandleMigrationOutcome | undefined> {
  const names = Object.keys(migrations).sort(compareNames)
  let before: HandleMigrationOutcome['executed'] | undefined
  const applied: string[] = []
  const executed: HandleMigrationOutcome['executed'] = []
  try {
    await handle.db.transaction().execute(async (trx) => {
      const own = handle.schema ? trx.withSchema(handle.schema) : trx
      const locked = await own.updateTable(tables.lock).set({ is_locked: 0 }).where('id', '=', MIGRATION_LOCK_ID).executeTakeFirst()
      if (Number(locked.numUpdatedRows) !== 1) throw new NotInOrder()
      const held = await own.selectFrom(tables.migration).select(['name', 'timestamp']).execute()
      held.sort((a, b) => compareNames(a.name, b.name))
      if (held.some((m, i) => m.name !== names[i])) throw new NotInOrder()
      before = held.map((m) => ({ name: m.name as string, appliedAt: new Date(m.timestamp as string).toISOString() }))
      executed.push(...before)
      for (const name of names.slice(held.length)) {
        await migrations[name]!.up(trx)
        const timestamp = new Date().toISOString()
        await own.insertInto(tables.migration).values({ name, timestamp }).execute()
        applied.push(name)
        executed.push({ name, appliedAt: timestamp })
      }
    })
  } catch (error) {
    if (before === undefined) return undefined
    return { applied: [], executed: before, error }
  }
  return { applied, executed }
}

/**
 * Migrations import `kysely`; they get the copy Tenantry runs, wherever the directory
 * lives (a deploy artifact or a temp dir has no node_modules of its own).
 */
export const KYSELY_ENTRY = createRequire(import.meta.url).resolve('kysely')

const MIGRATION_EXTENSIONS = new Set(['.ts', '.mts', '.js', '.mjs', '.sql'])
const MIGRATION_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/

function assertMigrationName(name: string): void {
  if (!MIGRATION_NAME.test(name)) {
    throw new TenantryError('INVALID_MIGRATION', `Invalid migration name ${JSON.stringify(name)}`)
  }
}

/** Byte order, not locale order: the same on every machine. */
function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}
