import { createHash } from 'node:crypto'
import { createWriteStream } from 'node:fs'
import { mkdtemp, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { basename, join, resolve } from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { createGzip } from 'node:zlib'
import Database from 'better-sqlite3'
import { Kysely, SqliteDialect, sql } from 'kysely'
import pg from 'pg'
import { TenantryError, isTenantryError } from '../errors.js'
import { assertValidSlug, quoteReportedName, slugProblem } from '../identifiers.js'
import type { Catalog, TenantRecord } from '../catalog/catalog.js'
import type { DataSources } from '../data-sources/data-sources.js'
import type { DatabaseEngine, EngineHandle, Isolation } from '../engines/engine.js'
import { SqliteEngine } from '../engines/sqlite/sqlite-engine.js'
import { SILENT_LOGGER, type Logger } from '../logger.js'
import type { TenantMigrationSet } from '../migrations/migration-set.js'
import type { Provisioner } from '../provisioning/provisioner.js'
import { EXPORT_FORMAT, EXPORT_VERSION, encodeValue, type ExportHeader } from './export-format.js'
import { assertExternalId } from './external-id.js'
import {
  appMigrationNames,
  kyselyRun,
  markApplied,
  matchLevel,
  postgresShape,
  prefixShapes,
  recordedMigrations,
  sqliteShape,
  type MigrationLevel,
  type RunQuery,
  type SchemaShape,
} from './schema-shape.js'
import { listTenantTables, type TenantTable } from './tenant-tables.js'

/** What to adopt: a SQLite file, or a schema of a Postgres database Tenantry knows as a data source. */
export type AdoptSource = { sqlite: string } | { postgresUrl: string; schema?: string }

export interface AdoptTenantOptions {
  /** SQLite: the data source to copy the file into (a SQLite one). Postgres: must be the data source the URL names. @default the configured default / the one the URL names */
  dataSource?: string
  /** @default the slug */
  name?: string
  /** The tenant's id in another system (see `CreateTenantOptions.externalId`). */
  externalId?: string
  /** The last app migration the database holds, where its tables cannot tell (see `matchLevel`). */
  applied?: string
  /** Who asked, for the audit log. @default 'system' */
  actor?: string
}

export interface AdoptTenantResult {
  tenant: TenantRecord
  /** The app migrations the database held, recorded without running them. */
  applied: string[]
  /** Whether they were read from Tenantry's migration table in the database (else inferred from its tables). */
  recorded: boolean
}

export interface SplitTenantsOptions {
  /** The shared SQLite database; it is only read. */
  sqlite: string
  /** The column whose distinct values become tenants (seed 004's `user_id`). */
  by: string
  /** Put before each value to make its slug. @default '' */
  slugPrefix?: string
  dataSource?: string
  isolation?: Isolation
  /** Copy tables without the `by` column whole into every tenant. Without it, such tables are refused. @default false */
  copyUnkeyed?: boolean
  actor?: string
  /** Hears of the number of tenants before the first is made. */
  onPlan?: (total: number) => void
  /** Hears of each tenant when it is done. */
  onTenant?: (result: SplitTenantResult) => void
  /** @internal fault injection: runs after a tenant's rows are copied, before it is ready. */
  afterCopy?: (value: string, tenant: { id: string; slug: string }) => void | Promise<void>
}

export interface SplitTenantResult {
  /** The column's value (the tenant's external id). */
  value: string
  slug: string
  outcome: 'succeeded' | 'skipped' | 'failed'
  id?: string
  rows?: Record<string, number>
  error?: string
  code?: string
}

export interface SplitTenantsResult {
  results: SplitTenantResult[]
  succeeded: number
  skipped: number
  failed: number
  /** Rows whose `by` column is NULL: they belong to no tenant and are not copied. */
  unassigned: number
}

/** Slug prefixes: short, so that prefix + value still fits a slug. */
const SLUG_PREFIX = /^[a-z][a-z0-9_]{0,39}$/
/** Rows read from the source per query. */
const SPLIT_PAGE_ROWS = 1000

/**
 * Bringing databases made outside Tenantry in as tenants (issue 13): `adopt` one database (a
 * SQLite file, or a Postgres schema such as seed 002's `tenant_<slug>`) as one tenant, and
 * `split` one shared SQLite database (seed 004's, with a `user_id` column) into a tenant per
 * value. Both check the database against the tenant migration set first and record the ledger;
 * every step goes into the audit log. Reached as `tenantry.tenants.adopt/split`.
 */
export class TenantAdoption {
  readonly #catalog: Catalog
  readonly #dataSources: DataSources
  readonly #migrations: TenantMigrationSet
  readonly #provisioner: Provisioner
  readonly #logger: Logger
  /** Shapes after each migration prefix, per engine kind and isolation, built once per process. */
  readonly #shapes = new Map<string, Promise<SchemaShape[]>>()

  constructor(deps: { catalog: Catalog; dataSources: DataSources; migrations: TenantMigrationSet; provisioner: Provisioner; logger?: Logger }) {
    this.#catalog = deps.catalog
    this.#dataSources = deps.dataSources
    this.#migrations = deps.migrations
    this.#provisioner = deps.provisioner
    this.#logger = deps.logger ?? SILENT_LOGGER
  }

  /**
   * Registers an existing database as tenant `slug`, which must be free:
   * - `{ sqlite: file }`: the file is checked, then a consistent copy of it (`VACUUM INTO`) goes
   *   into a SQLite data source under the name derived from the new tenant's id. The file itself
   *   is only read, never moved or changed: remove it once the tenant serves.
   * - `{ postgresUrl, schema }`: the URL (never logged or stored) must name the server and
   *   database of a Postgres data source Tenantry knows; the schema is moved in place (renamed to
   *   the tenant's `t_<id>`, owned by the admin, other roles' privileges taken back, the tenant
   *   role granted as for a provisioned tenant). A whole Postgres database is not adopted.
   * The database must hold what a prefix of the migration set makes (see `matchLevel`), else
   * `ADOPT_MISMATCH` and nothing changes. Those migrations are recorded as applied, the rest run,
   * and the tenant becomes `ready`. A failure keeps nothing (a moved schema is moved back).
   */
  async adopt(slug: string, source: AdoptSource, options: AdoptTenantOptions = {}): Promise<AdoptTenantResult> {
    assertValidSlug(slug)
    if (options.externalId !== undefined) assertExternalId(options.externalId)
    const actor = options.actor ?? 'system'
    const sqliteSource = source && 'sqlite' in source && typeof source.sqlite === 'string'
    const pgSource = source && 'postgresUrl' in source && typeof source.postgresUrl === 'string'
    if (sqliteSource === pgSource) throw new TenantryError('INVALID_OPTION', 'adopt needs one source: { sqlite: file } or { postgresUrl, schema }')
    await this.#assertSlugFree(slug)
    return sqliteSource ? this.#adoptSqlite(slug, resolve((source as { sqlite: string }).sqlite), options, actor) : this.#adoptPostgres(slug, source as { postgresUrl: string; schema?: string }, options, actor)
  }

  async #adoptSqlite(slug: string, file: string, options: AdoptTenantOptions, actor: string): Promise<AdoptTenantResult> {
    const plan = await this.#provisioner.plan({ slug, isolation: 'database', ...(options.dataSource ? { dataSource: options.dataSource } : {}) })
    const engine = await this.#dataSources.engine(plan.dataSource)
    if (engine.name !== 'sqlite' || !engine.copyIn) {
      throw new TenantryError('UNSUPPORTED_PLACEMENT', `A SQLite file is adopted onto a SQLite data source, and "${plan.dataSource}" is ${engine.name}: adopt it onto one, then move it with export and import`)
    }
    const database = await openSqliteSource(file)
    let level: MigrationLevel
    let scratch: string | undefined
    try {
      const run: RunQuery = async (text, values = []) => database.prepare(text).all(...values) as Array<Record<string, unknown>>
      level = matchLevel(await sqliteShape(run), await this.#sqliteShapes(), appMigrationNames(this.#migrations), await recordedMigrations(run, 'sqlite'), options.applied, `${basename(file)}`)
      // A consistent copy even while another process writes the file: VACUUM INTO reads in one transaction.
      scratch = await mkdtemp(join(tmpdir(), 'tenantry-adopt-'))
      database.prepare('VACUUM INTO ?').run(join(scratch, 'copy.db'))
    } catch (error) {
      if (scratch) await rm(scratch, { recursive: true, force: true })
      throw error
    } finally {
      database.close()
    }
    const copy = join(scratch, 'copy.db')
    try {
      return await this.#create(slug, plan.dataSource, 'database', options, actor, level, { kind: 'sqlite', file: basename(file) }, {
        createStorage: async (placement, target) => {
          await target.copyIn!(placement, copy)
          if (!level.recorded) await withAdmin(target, placement, (handle) => markApplied(handle, level.applied))
        },
      })
    } finally {
      await rm(scratch, { recursive: true, force: true })
    }
  }

  async #adoptPostgres(slug: string, source: { postgresUrl: string; schema?: string }, options: AdoptTenantOptions, actor: string): Promise<AdoptTenantResult> {
    let url: URL
    try {
      url = new URL(source.postgresUrl)
      if (!/^postgres(ql)?:$/.test(url.protocol) || !url.hostname || url.pathname.length < 2) throw new Error('not a Postgres URL')
    } catch {
      // Never the URL itself in a message: it may carry a password.
      throw new TenantryError('INVALID_OPTION', 'The Postgres URL to adopt from must look like postgres://user:password@host:5432/database')
    }
    const where = { host: url.hostname, port: Number(url.port || 5432), database: decodeURIComponent(url.pathname.slice(1)) }
    const label = `${where.host}:${where.port}/${where.database}`
    if (source.schema === undefined) return this.#adoptPostgresDatabase(slug, source.postgresUrl, where, options, actor)
    const schema = source.schema
    if (typeof schema !== 'string' || schema === '' || schema.length > 63) throw new TenantryError('INVALID_OPTION', 'The schema to adopt is a name of 1 to 63 characters')
    const sources = (await this.#catalog.listDataSources()).filter(
      (s) => s.engine === 'postgres' && s.config.host === where.host && Number(s.config.port ?? 5432) === where.port && s.config.database === where.database,
    )
    const chosen = options.dataSource === undefined ? sources[0] : sources.find((s) => s.id === options.dataSource)
    if (!chosen) {
      throw new TenantryError(
        'DATA_SOURCE_NOT_FOUND',
        options.dataSource === undefined
          ? `No Postgres data source Tenantry knows is at ${label}: add it first (tenantry data-source add <id> --engine postgres --url-env VAR, --mode byod for a customer's server), then adopt its schemas`
          : `Data source "${options.dataSource}" is not the Postgres database at ${label}`,
      )
    }
    const engine = await this.#dataSources.engine(chosen.id)
    if (!engine.adoption?.isolations.includes('schema')) throw new TenantryError('UNSUPPORTED_PLACEMENT', `Data source "${chosen.id}" does not adopt schemas`)
    const plan = await this.#provisioner.plan({ slug, isolation: 'schema', dataSource: chosen.id })
    const client = new pg.Client({ connectionString: source.postgresUrl, connectionTimeoutMillis: 10_000 })
    let level: MigrationLevel
    let ownTables: string[]
    try {
      await client.connect().catch((error: Error) => {
        throw new TenantryError('INVALID_OPTION', `Cannot connect to ${label}: ${error.message.replaceAll(source.postgresUrl, '<url>')}`)
      })
      const run: RunQuery = async (text, values = []) => (await client.query(text, [...values])).rows as Array<Record<string, unknown>>
      if ((await run('select 1 from pg_namespace where nspname = $1', [schema])).length === 0) {
        throw new TenantryError('INVALID_OPTION', `Schema ${quoteReportedName(schema)} does not exist at ${label}`)
      }
      ownTables = ((await run(`select c.relname as name from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = $1 and c.relname like 'tenantry\\_%'`, [schema])) as Array<{ name: string }>).map((r) => r.name)
      level = matchLevel(await postgresShape(run, schema), await this.#shapesOn(engine, chosen.id, 'schema'), appMigrationNames(this.#migrations), await recordedMigrations(run, 'postgres', schema), options.applied, `Schema ${quoteReportedName(schema)}`)
    } finally {
      await client.end().catch(() => undefined)
    }
    return this.#create(slug, plan.dataSource, 'schema', options, actor, level, { kind: 'postgres', database: label, schema, ownTables }, {
      createStorage: async (placement, target) => {
        await target.adoption!.adopt(placement, schema)
        if (!level.recorded) await withAdmin(target, placement, (handle) => markApplied(handle, level.applied))
      },
      undoStorage: async (placement, target) => {
        // What the adopt made in the schema (Tenantry's tables), dropped before the schema is moved back.
        const made = await withAdmin(target, placement, async (handle) =>
          ((await kyselyRun(handle.db)(`select c.relname as name from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = $1 and c.relkind = 'r' and c.relname like 'tenantry\\_%'`, [placement.locator])) as Array<{ name: string }>).map((r) => r.name),
        ).catch(() => [] as string[])
        await target.adoption!.release(placement, schema, made.filter((t) => !ownTables.includes(t)))
        await this.#catalog.audit({ tenantId: placement.tenantId, action: 'tenant.adopt.released', details: { schema } }).catch(() => undefined)
      },
    })
  }

  /**
   * A whole database on a server Tenantry knows (a Postgres data source on the same host and
   * port that allows database isolation) becomes a database tenant: its `public` schema checked
   * against the migration set, then copied in (the source is never changed, as for a SQLite file).
   */
  async #adoptPostgresDatabase(slug: string, postgresUrl: string, where: { host: string; port: number; database: string }, options: AdoptTenantOptions, actor: string): Promise<AdoptTenantResult> {
    const label = `${where.host}:${where.port}/${where.database}`
    const onServer = (await this.#catalog.listDataSources()).filter((s) => s.engine === 'postgres' && s.config.host === where.host && Number(s.config.port ?? 5432) === where.port)
    const chosen = options.dataSource === undefined ? (onServer.find((s) => s.config.database !== where.database) ?? onServer[0]) : onServer.find((s) => s.id === options.dataSource)
    if (chosen?.config.database === where.database) {
      throw new TenantryError('INVALID_OPTION', `${label} is data source "${chosen.id}"'s own database, which holds its schema and row tenants: adopt one of its schemas (--schema) instead`)
    }
    if (!chosen) {
      throw new TenantryError(
        'DATA_SOURCE_NOT_FOUND',
        options.dataSource === undefined
          ? `No Postgres data source Tenantry knows is on the server of ${label}: add one for it first (tenantry data-source add <id> --engine postgres --url-env VAR --isolations database), then adopt its databases`
          : `Data source "${options.dataSource}" is not on the Postgres server of ${label}`,
      )
    }
    const engine = await this.#dataSources.engine(chosen.id)
    if (!engine.adoption?.isolations.includes('database')) throw new TenantryError('UNSUPPORTED_PLACEMENT', `Data source "${chosen.id}" does not adopt databases`)
    const plan = await this.#provisioner.plan({ slug, isolation: 'database', dataSource: chosen.id })
    const client = new pg.Client({ connectionString: postgresUrl, connectionTimeoutMillis: 10_000 })
    let level: MigrationLevel
    try {
      await client.connect().catch((error: Error) => {
        throw new TenantryError('INVALID_OPTION', `Cannot connect to ${label}: ${error.message.replaceAll(postgresUrl, '<url>')}`)
      })
      const run: RunQuery = async (text, values = []) => (await client.query(text, [...values])).rows as Array<Record<string, unknown>>
      // Only `public` becomes the tenant's: tables elsewhere would be copied and never served.
      const elsewhere = (await run(
        `select distinct n.nspname as schema from pg_class c join pg_namespace n on n.oid = c.relnamespace
         where c.relkind in ('r', 'p', 'v', 'm') and n.nspname <> 'public' and n.nspname <> 'information_schema' and n.nspname not like 'pg\\_%' order by 1`,
      )) as Array<{ schema: string }>
      if (elsewhere.length > 0) {
        throw new TenantryError('INVALID_OPTION', `Database ${quoteReportedName(where.database)} has tables outside public (in ${elsewhere.map((r) => quoteReportedName(r.schema)).join(', ')}): a database tenant is its public schema; adopt those schemas one by one, or move their tables into public first`)
      }
      level = matchLevel(await postgresShape(run, 'public'), await this.#shapesOn(engine, chosen.id, 'database'), appMigrationNames(this.#migrations), await recordedMigrations(run, 'postgres', 'public'), options.applied, `Database ${quoteReportedName(where.database)}`)
    } finally {
      await client.end().catch(() => undefined)
    }
    return this.#create(slug, plan.dataSource, 'database', options, actor, level, { kind: 'postgres-database', database: label }, {
      createStorage: async (placement, target) => {
        await target.adoption!.adopt(placement, where.database)
        if (!level.recorded) await withAdmin(target, placement, (handle) => markApplied(handle, level.applied))
      },
    })
  }

  /** The create every adopt ends in: storage from the hook, the remaining migrations, `ready`; on failure nothing is kept and the slug is free. */
  async #create(
    slug: string,
    dataSource: string,
    isolation: Isolation,
    options: AdoptTenantOptions,
    actor: string,
    level: MigrationLevel,
    from: Record<string, unknown>,
    hooks: { createStorage: NonNullable<import('../provisioning/provisioner.js').CreateHooks['createStorage']>; undoStorage?: import('../provisioning/provisioner.js').CreateHooks['undoStorage'] },
  ): Promise<AdoptTenantResult> {
    let tenant: TenantRecord
    try {
      tenant = await this.#provisioner.create(
        { slug, name: options.name ?? slug, isolation, dataSource, actor, ...(options.externalId === undefined ? {} : { externalId: options.externalId }) },
        {
          createStorage: async (placement, engine) => {
            await this.#catalog.audit({ tenantId: placement.tenantId, action: 'tenant.adopt.started', actor, details: { from, applied: level.applied, recorded: level.recorded } })
            await hooks.createStorage(placement, engine)
          },
          ...(hooks.undoStorage ? { undoStorage: hooks.undoStorage } : {}),
        },
      )
    } catch (error) {
      const cause = isTenantryError(error, 'PROVISIONING_FAILED') && error.cause !== undefined ? error.cause : error
      await this.#discard(slug, actor, cause)
      const code = isTenantryError(cause) && cause.code !== 'INTERNAL' ? cause.code : 'PROVISIONING_FAILED'
      throw new TenantryError(code, `Adopting tenant "${slug}" failed, and nothing of it was kept: ${message(cause)}`, { cause, ...(isTenantryError(cause) && cause.details ? { details: cause.details } : {}) })
    }
    await this.#catalog.audit({ tenantId: tenant.id, action: 'tenant.adopt.succeeded', actor, details: { from, applied: level.applied } })
    return { tenant, applied: level.applied, recorded: level.recorded }
  }

  /**
   * Turns one shared SQLite database into a tenant per distinct value of column `by`, across the
   * tables that have it (seed 004's `user_id`). The database must match a prefix of the
   * migration set (as for `adopt`); each tenant is made by that level's migrations, gets the rows
   * with its value (the column is kept: the app's queries may use it) and then the remaining
   * migrations, and carries the value as its external id. Tables without the column are refused,
   * or copied whole into every tenant with `copyUnkeyed`. Rows whose value is NULL are counted
   * (`unassigned`) and not copied.
   *
   * Idempotent and all-or-nothing per tenant: a tenant that is ready with the value's external id
   * is skipped; a half-made one (a crash) is purged and made again; one that fails is purged, so
   * no half tenant stays. One tenant's failure does not stop the others. Slugs are the prefix and
   * the value when the value is slug-safe (a-z, 0-9, _), else the prefix and a hash of it.
   */
  async split(options: SplitTenantsOptions): Promise<SplitTenantsResult> {
    if (typeof options?.sqlite !== 'string' || options.sqlite === '') throw new TenantryError('INVALID_OPTION', 'split needs the SQLite database to read: { sqlite }')
    if (typeof options.by !== 'string' || options.by === '') throw new TenantryError('INVALID_OPTION', 'split needs the column to split by: { by }')
    const prefix = options.slugPrefix ?? ''
    if (prefix !== '' && !SLUG_PREFIX.test(prefix)) throw new TenantryError('INVALID_OPTION', `Invalid slug prefix ${JSON.stringify(prefix)}: up to 40 of a-z, 0-9 and _, starting with a letter`)
    const actor = options.actor ?? 'system'
    const file = resolve(options.sqlite)
    const database = await openSqliteSource(file)
    const db = new Kysely<any>({ dialect: new SqliteDialect({ database }) })
    const scratch = await mkdtemp(join(tmpdir(), 'tenantry-split-'))
    try {
      const run: RunQuery = async (text, values = []) => database.prepare(text).all(...values) as Array<Record<string, unknown>>
      const level = matchLevel(await sqliteShape(run), await this.#sqliteShapes(), appMigrationNames(this.#migrations), await recordedMigrations(run, 'sqlite'), undefined, basename(file))
      const tables = (await listTenantTables({ engine: 'sqlite', db } as EngineHandle, db)).filter((t) => !t.name.startsWith('tenantry_'))
      const keyed = tables.filter((t) => t.columns.some((c) => c.name === options.by))
      const unkeyed = tables.filter((t) => !keyed.includes(t))
      if (keyed.length === 0) throw new TenantryError('INVALID_OPTION', `No table of ${basename(file)} has a column ${JSON.stringify(options.by)}`)
      if (unkeyed.length > 0 && !options.copyUnkeyed) {
        throw new TenantryError('INVALID_OPTION', `Tables ${unkeyed.map((t) => t.name).join(', ')} have no column ${JSON.stringify(options.by)}: copy them whole into every tenant with copyUnkeyed (--copy-unkeyed), or drop them from the database first`)
      }
      const by = quoteReportedName(options.by)
      const values = new Map<string, unknown>()
      let unassigned = 0
      for (const table of keyed) {
        const name = quoteReportedName(table.name)
        for (const row of await run(`select distinct ${by} as v from ${name} where ${by} is not null`)) values.set(String(row.v), row.v)
        unassigned += Number((await run(`select count(*) as n from ${name} where ${by} is null`))[0]!.n)
      }
      const ordered = [...values.keys()].sort()
      const slugs = new Map<string, string>()
      for (const value of ordered) {
        assertExternalId(value)
        const slug = splitSlug(prefix, value)
        const other = [...slugs.entries()].find(([, s]) => s === slug)
        if (other) throw new TenantryError('INVALID_OPTION', `Values ${JSON.stringify(other[0])} and ${JSON.stringify(value)} would both be tenant ${slug}: choose another --slug-prefix`)
        slugs.set(value, slug)
      }
      await this.#catalog.audit({ action: 'tenant.split.started', actor, details: { file: basename(file), by: options.by, tenants: ordered.length, tables: tables.map((t) => t.name), unassigned } })
      options.onPlan?.(ordered.length)
      const results: SplitTenantResult[] = []
      for (const value of ordered) {
        const slug = slugs.get(value)!
        const result = await this.#splitOne(value, values.get(value), slug, { ...options, actor }, { file, scratch, database: db, level, tables, keyed })
        results.push(result)
        options.onTenant?.(result)
      }
      const count = (outcome: SplitTenantResult['outcome']) => results.filter((r) => r.outcome === outcome).length
      const summary = { succeeded: count('succeeded'), skipped: count('skipped'), failed: count('failed'), unassigned }
      await this.#catalog.audit({ action: 'tenant.split.finished', actor, details: { file: basename(file), by: options.by, ...summary } })
      return { results, ...summary }
    } finally {
      await db.destroy()
      if (database.open) database.close() // Kysely closes it only if a query went through it
      await rm(scratch, { recursive: true, force: true })
    }
  }

  async #splitOne(
    value: string,
    raw: unknown,
    slug: string,
    options: SplitTenantsOptions & { actor: string },
    source: { file: string; scratch: string; database: Kysely<any>; level: MigrationLevel; tables: TenantTable[]; keyed: TenantTable[] },
  ): Promise<SplitTenantResult> {
    const failed = (error: unknown): SplitTenantResult => ({ value, slug, outcome: 'failed', error: message(error), ...(isTenantryError(error) ? { code: error.code } : {}) })
    try {
      const holder = await this.#catalog.findTenantByExternalId(value)
      if (holder && holder.slug !== slug) throw new TenantryError('EXTERNAL_ID_TAKEN', `Tenant "${holder.slug}" already carries external id ${JSON.stringify(value)}`)
      if (holder && (holder.status === 'ready' || holder.status === 'suspended')) return { value, slug, outcome: 'skipped', id: holder.id }
      const bySlug = await this.#catalog.findTenantBySlug(slug)
      if (bySlug && bySlug.externalId !== value) throw new TenantryError('SLUG_TAKEN', `Tenant slug "${slug}" is taken by another tenant`)
      if (bySlug) {
        // Half made by an earlier run that was cut short (or is being deleted): start it afresh.
        await this.#catalog.audit({ tenantId: bySlug.id, action: 'tenant.split.redo', actor: options.actor, details: { status: bySlug.status } })
        await this.#provisioner.delete(slug, { purge: true, actor: options.actor })
      }
      const out = join(source.scratch, `${slug}.ndjson.gz`)
      const rows = await writeSplitExport(out, source, options.by, raw, slug)
      const imported = await this.#provisioner.import(slug, {
        from: out,
        name: value.slice(0, 200),
        externalId: value,
        actor: options.actor,
        ...(options.dataSource ? { dataSource: options.dataSource } : {}),
        ...(options.isolation ? { isolation: options.isolation } : {}),
        ...(options.afterCopy ? { afterLoad: (tenant: { id: string; slug: string }) => options.afterCopy!(value, tenant) } : {}),
      })
      await rm(out, { force: true })
      await this.#catalog.audit({ tenantId: imported.tenant.id, action: 'tenant.split.copied', actor: options.actor, details: { file: basename(source.file), by: options.by, rows } })
      return { value, slug, outcome: 'succeeded', id: imported.tenant.id, rows }
    } catch (error) {
      return failed(error)
    }
  }

  /**
   * A Postgres adopt cut short by a crash leaves its tenant in `provisioning` with the schema
   * moved in as `t_<id>`. Rolling that create back (a retried create, `tenantry doctor --fix`)
   * would drop the schema: data that was never Tenantry's. This moves it back to its old name
   * first, as a failed adopt does. Answers whether it did; anything else is left alone.
   */
  async releaseInterrupted(tenant: TenantRecord): Promise<boolean> {
    if (tenant.status !== 'provisioning' && tenant.status !== 'failed') return false
    const log = await this.#catalog.auditLog(tenant.id)
    const started = log.map((e, i) => ({ e, i })).filter(({ e }) => e.action === 'tenant.adopt.started').at(-1)
    const from = (started?.e.details as { from?: { kind?: string; schema?: unknown; ownTables?: unknown } } | null)?.from
    if (!started || from?.kind !== 'postgres' || typeof from.schema !== 'string') return false
    if (log.slice(started.i).some((e) => e.action === 'tenant.adopt.released' || e.action === 'tenant.adopt.succeeded')) return false
    const engine = await this.#dataSources.engine(tenant.placement.dataSourceId)
    const placement = { tenantId: tenant.id, ...tenant.placement }
    if (!engine.adoption || !(await engine.exists(placement))) return false
    const own = Array.isArray(from.ownTables) ? (from.ownTables as string[]) : []
    const made = await withAdmin(engine, placement, async (handle) =>
      ((await kyselyRun(handle.db)(`select c.relname as name from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = $1 and c.relkind = 'r' and c.relname like 'tenantry\\_%'`, [placement.locator])) as Array<{ name: string }>).map((r) => r.name),
    )
    await engine.adoption.release(placement, from.schema, made.filter((t) => !own.includes(t)))
    await this.#catalog.audit({ tenantId: tenant.id, action: 'tenant.adopt.released', details: { schema: from.schema, interrupted: true } })
    return true
  }

  async #assertSlugFree(slug: string): Promise<void> {
    const existing = await this.#catalog.findTenantBySlug(slug)
    if (existing) {
      const hint = existing.status === 'provisioning' || existing.status === 'failed' ? `; its create did not finish: purge it first (tenantry tenant delete ${slug} --purge)` : ''
      throw new TenantryError('SLUG_TAKEN', `Tenant slug "${slug}" is already taken (status ${existing.status})${hint}`)
    }
  }

  /** Prefix shapes of the migration set on SQLite, built in a scratch directory of their own. */
  #sqliteShapes(): Promise<SchemaShape[]> {
    return this.#cached(`sqlite:${this.#migrations.key}`, async () => {
      const directory = await mkdtemp(join(tmpdir(), 'tenantry-shapes-'))
      const engine = new SqliteEngine({ directory, logger: this.#logger })
      try {
        return await prefixShapes(engine, 'database', this.#migrations)
      } finally {
        await engine.close()
        await rm(directory, { recursive: true, force: true })
      }
    })
  }

  /** Prefix shapes on a data source's own engine (Postgres types as that server names them), on scratch storage dropped after. */
  #shapesOn(engine: DatabaseEngine, dataSource: string, isolation: Isolation): Promise<SchemaShape[]> {
    return this.#cached(`${dataSource}:${isolation}:${this.#migrations.key}`, () => prefixShapes(engine, isolation, this.#migrations))
  }

  #cached(key: string, build: () => Promise<SchemaShape[]>): Promise<SchemaShape[]> {
    let shapes = this.#shapes.get(key)
    if (!shapes) {
      shapes = build()
      shapes.catch(() => this.#shapes.delete(key))
      this.#shapes.set(key, shapes)
    }
    return shapes
  }

  /** Removes what a failed adopt left (a `failed` tenant record): the slug is free again. */
  async #discard(slug: string, actor: string, cause: unknown): Promise<void> {
    const tenant = await this.#catalog.findTenantBySlug(slug)
    if (!tenant || tenant.status !== 'failed') return
    await this.#catalog.audit({ tenantId: tenant.id, action: 'tenant.adopt.failed', actor, details: { error: message(cause) } }).catch(() => undefined)
    await this.#provisioner.delete(slug, { purge: true, actor }).catch((err: unknown) => {
      this.#logger.warn({ err, tenantId: tenant.id }, 'Removing a failed adopt failed; `tenantry tenant delete --purge` removes it')
    })
  }
}

/** Opens a SQLite file read-only after checking it is one, whole; `INVALID_OPTION` otherwise. */
async function openSqliteSource(file: string): Promise<Database.Database> {
  const info = await stat(file).catch((error: NodeJS.ErrnoException) => {
    throw new TenantryError('INVALID_OPTION', error.code === 'ENOENT' ? `${file} does not exist` : `Cannot read ${file}: ${error.message}`)
  })
  if (!info.isFile()) throw new TenantryError('INVALID_OPTION', `${file} is not a file`)
  let database: Database.Database | undefined
  try {
    database = new Database(file, { readonly: true, fileMustExist: true })
    const result = database.pragma('quick_check', { simple: true })
    if (result !== 'ok') throw new TenantryError('INVALID_OPTION', `${file} is damaged: ${String(result)}`)
    return database
  } catch (error) {
    database?.close()
    throw error instanceof TenantryError ? error : new TenantryError('INVALID_OPTION', `${file} is not a SQLite database: ${(error as Error).message}`, { cause: error })
  }
}

/** Runs `fn` on an admin handle of the placement, closing it after. */
async function withAdmin<T>(engine: DatabaseEngine, placement: { tenantId: string; isolation: Isolation; locator: string }, fn: (handle: EngineHandle) => Promise<T>): Promise<T> {
  const handle = engine.open(placement, 'admin')
  try {
    return await fn(handle)
  } finally {
    await handle.close()
  }
}

/** The slug of a split value: prefix + value when the value is slug-safe, else prefix (or `t_`) + a hash of it. */
export function splitSlug(prefix: string, value: string): string {
  const plain = `${prefix}${value}`
  if (/^[a-z0-9_]+$/.test(value) && slugProblem(plain) === undefined) return plain
  return `${prefix || 't_'}${createHash('sha256').update(value).digest('hex').slice(0, 16)}`
}

/**
 * Writes one value's rows as an export file (export-format.ts) at the source's migration level:
 * the tables with the column, only its rows; the others whole. The import then makes the tenant
 * exactly as `tenantry tenant import` does, on any engine.
 */
async function writeSplitExport(
  out: string,
  source: { file: string; database: Kysely<any>; level: MigrationLevel; tables: TenantTable[]; keyed: TenantTable[] },
  by: string,
  value: unknown,
  slug: string,
): Promise<Record<string, number>> {
  const rows: Record<string, number> = {}
  // Parents before children, as listTenantTables ordered them.
  const ordered = source.tables
  const header: ExportHeader = {
    format: EXPORT_FORMAT,
    version: EXPORT_VERSION,
    exportedAt: new Date().toISOString(),
    tenant: { id: '', slug, name: slug, status: 'ready' },
    source: { engine: 'sqlite', isolation: 'database', dataSource: `split:${basename(source.file)}` },
    migrations: source.level.applied,
    tables: ordered.map(({ name, columns, references }) => ({ name, columns, references })),
    secretNames: [],
  }
  const db = source.database
  async function* lines(): AsyncGenerator<string> {
    yield `${JSON.stringify(header)}\n`
    for (const table of ordered) {
      rows[table.name] = 0
      const filtered = source.keyed.includes(table)
      const columns = table.columns.map((c, i) => `${c.kind === 'integer' ? `case when typeof(${quoteReportedName(c.name)}) = 'integer' then cast(${quoteReportedName(c.name)} as text) else ${quoteReportedName(c.name)} end` : quoteReportedName(c.name)} as "c${i}"`)
      let offset = 0
      for (;;) {
        const page = (
          await sql`select ${sql.raw(columns.join(', '))} from ${sql.raw(quoteReportedName(table.name))} where ${filtered ? sql`${sql.raw(quoteReportedName(by))} = ${value as never}` : sql`1`} order by ${sql.raw(table.primaryKey.length ? table.primaryKey.map(quoteReportedName).join(', ') : '_rowid_')} limit ${SPLIT_PAGE_ROWS} offset ${offset}`.execute(db)
        ).rows as Array<Record<string, unknown>>
        let chunk = ''
        for (const r of page) chunk += `${JSON.stringify({ row: table.name, values: table.columns.map((c, i) => encodeValue(r[`c${i}`], c.kind)) })}\n`
        rows[table.name]! += page.length
        if (chunk) yield chunk
        if (page.length < SPLIT_PAGE_ROWS) break
        offset += page.length
      }
    }
    yield `${JSON.stringify({ end: true, rows, files: 0, fileBytes: 0 })}\n`
  }
  await pipeline(Readable.from(lines()), createGzip(), createWriteStream(out, { mode: 0o600 }))
  return rows
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}
