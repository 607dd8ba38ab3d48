import { once } from 'node:events'
import { createReadStream } from 'node:fs'
import { open, rm } from 'node:fs/promises'
import { basename } from 'node:path'
import { PassThrough, Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { createGunzip, createGzip } from 'node:zlib'
import { sql } from 'kysely'
import { TenantryError, isTenantryError } from '../errors.js'
import { assertValidSlug } from '../identifiers.js'
import type { Catalog, TenantRecord } from '../catalog/catalog.js'
import type { DataSources } from '../data-sources/data-sources.js'
import type { DatabaseEngine, EngineHandle, EnginePlacement, Isolation } from '../engines/engine.js'
import { SILENT_LOGGER, type Logger } from '../logger.js'
import { migrateHandle, type TenantMigrationSet } from '../migrations/migration-set.js'
import type { Provisioner } from '../provisioning/provisioner.js'
import type { TenantFiles } from '../services/files/tenant-files.js'
import { checkFilePath } from '../services/files/file-path.js'
import {
  EXPORT_FORMAT,
  EXPORT_VERSION,
  FILE_CHUNK_BYTES,
  decodeValue,
  exportLine,
  parseHeader,
  type EncodedValue,
  type ExportEnd,
  type ExportHeader,
  type ExportLine,
} from './export-format.js'
import { exportRowLines, listTenantTables, snapshot, type TenantTable } from './tenant-tables.js'

/** How far an export or an import has come: after each page (or batch) of rows. */
export interface TransferProgress {
  /** The table being read (export) or written (import). */
  table: string
  /** Rows read or written so far, all tables together. */
  rows: number
}

export interface ExportTenantOptions {
  /** The file to write (gzip'd NDJSON, see export-format.ts). It must not exist. */
  out: string
  /** Who asked, for the audit log. @default 'system' */
  actor?: string
  /** Hears of every page of rows written to the file (the CLI draws its progress bar from it). */
  onProgress?: (progress: TransferProgress) => void
}

export interface ExportTenantResult {
  tenantId: string
  slug: string
  out: string
  rows: Record<string, number>
  files: number
  fileBytes: number
  secretNames: string[]
}

export interface ImportTenantOptions {
  /** An export file (`tenantry tenant export`). */
  from: string
  /** @default the configured default data source */
  dataSource?: string
  /** @default the configured default isolation */
  isolation?: Isolation
  /** @default the exported tenant's name */
  name?: string
  actor?: string
  /** Hears of every batch of rows written into the new tenant. */
  onProgress?: (progress: TransferProgress) => void
  /** The new tenant's id in another system (see `CreateTenantOptions.externalId`). */
  externalId?: string
  /** @internal runs after the rows are loaded, before the tenant is ready (split's fault tests). */
  afterLoad?: (tenant: { id: string; slug: string }) => void | Promise<void>
}

export interface ImportTenantResult {
  tenant: TenantRecord
  rows: Record<string, number>
  files: number
  fileBytes: number
  /** Secrets the exported tenant had: their values are not in the file, set them again. */
  secretNames: string[]
}

export interface EraseTenantOptions {
  actor?: string
}

/**
 * Ends what a tenant has outside Tenantry when it is erased (the server's Better Auth
 * organization and its members); returns what it removed, as counts and facts (no personal
 * data: it goes into the `tenant.erased` audit entry). Must be idempotent.
 */
export type EraseHook = (tenant: { id: string; slug: string }) => Promise<Record<string, unknown>>

export interface EraseTenantResult {
  tenantId: string
  removed: Record<string, unknown>
}

/** Statuses whose data can be exported: a tenant being created, moved or deleted is refused. */
const EXPORTABLE = new Set(['ready', 'suspended'])
/** Rows per insert statement at most (and fewer for wide tables: SQLite binds at most 32766 values). */
const INSERT_BATCH_ROWS = 500
const MAX_BOUND_VALUES = 30_000
/** A line longer than this is not one the exporter wrote (its longest is a 48 KiB chunk, or one row). */
const MAX_LINE_BYTES = 64 * 1024 * 1024

/**
 * The lifecycle operations that carry a tenant's data across the system's edges: export to a
 * portable file, import from one (onto any engine and isolation), and erase (GDPR). Reached as
 * `tenantry.tenants.export/import/erase`. Each step goes into the audit log.
 */
export class TenantLifecycle {
  readonly #catalog: Catalog
  readonly #dataSources: DataSources
  readonly #migrations: TenantMigrationSet
  readonly #provisioner: Provisioner
  readonly #files: TenantFiles
  readonly #logger: Logger

  constructor(deps: { catalog: Catalog; dataSources: DataSources; migrations: TenantMigrationSet; provisioner: Provisioner; files: TenantFiles; logger?: Logger }) {
    this.#catalog = deps.catalog
    this.#dataSources = deps.dataSources
    this.#migrations = deps.migrations
    this.#provisioner = deps.provisioner
    this.#files = deps.files
    this.#logger = deps.logger ?? SILENT_LOGGER
  }

  /**
   * Writes the tenant (tables, migrations, files, secret names) to `out`. The rows are read in
   * one read transaction (a snapshot: writes during the export are not in it) a page at a time,
   * and streamed through gzip, so memory stays bounded whatever the tenant's size. Files are
   * read after the rows, as they are then. A suspended tenant can be exported; one being
   * created, moved or deleted cannot (`INVALID_TRANSITION`). `out` must not exist.
   */
  async export(slug: string, options: ExportTenantOptions): Promise<ExportTenantResult> {
    assertValidSlug(slug)
    if (typeof options?.out !== 'string' || options.out === '') throw new TenantryError('INVALID_OPTION', 'export needs the file to write: { out }')
    const actor = options.actor ?? 'system'
    const tenant = await this.#catalog.findTenantBySlug(slug)
    if (!tenant) throw new TenantryError('TENANT_NOT_FOUND', `Tenant "${slug}" not found`)
    if (!EXPORTABLE.has(tenant.status)) {
      throw new TenantryError('INVALID_TRANSITION', `Tenant "${slug}" is ${tenant.status}: only ready or suspended tenants can be exported`, {
        details: { status: tenant.status },
      })
    }
    const file = await open(options.out, 'wx', 0o600).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'EEXIST') throw new TenantryError('INVALID_OPTION', `${options.out} exists: an export never replaces a file`)
      throw new TenantryError('INVALID_OPTION', `Cannot create ${options.out}: ${error.message}`, { cause: error })
    })
    await this.#catalog.audit({ tenantId: tenant.id, action: 'tenant.export.started', actor, details: { file: basename(options.out) } })
    const engine = await this.#dataSources.engine(tenant.placement.dataSourceId)
    const handle = engine.open({ tenantId: tenant.id, ...tenant.placement }, 'app')
    const rows: Record<string, number> = {}
    const totals = { files: 0, fileBytes: 0 }
    const secretNames = (await this.#catalog.db.selectFrom('tenant_secrets').select('name').where('tenant_id', '=', tenant.id).orderBy('name').execute()).map((r) => r.name)
    try {
      await snapshot(handle, async (db) => {
        const tables = await listTenantTables(handle, db)
        const header: ExportHeader = {
          format: EXPORT_FORMAT,
          version: EXPORT_VERSION,
          exportedAt: new Date().toISOString(),
          tenant: { id: tenant.id, slug: tenant.slug, name: tenant.name, status: tenant.status },
          source: { engine: engine.name, isolation: tenant.placement.isolation, dataSource: tenant.placement.dataSourceId },
          migrations: this.#ordered((await this.#catalog.ledger(tenant.id)).map((l) => l.migration)),
          tables: tables.map(({ name, columns, references }) => ({ name, columns, references })),
          secretNames,
        }
        const files = this.#files.driver
        const onProgress = options.onProgress
        async function* lines(): AsyncGenerator<string> {
          yield exportLine(header)
          yield* exportRowLines(handle, db, tables, rows, onProgress && ((table, total) => onProgress({ table, rows: total })))
          let cursor: string | undefined
          for (;;) {
            const page = await files.list(tenant!.id, { prefix: '', limit: 500, ...(cursor === undefined ? {} : { after: cursor }) })
            for (const stat of page) {
              const found = await files.get(tenant!.id, stat.path)
              if (!found) continue // removed since it was listed
              yield exportLine({ file: found.stat.path, size: found.stat.size, contentType: found.stat.contentType, modifiedAt: found.stat.modifiedAt })
              for await (const piece of chunked(found.body)) yield exportLine({ data: piece.toString('base64') })
              totals.files += 1
              totals.fileBytes += found.stat.size
            }
            if (page.length < 500) break
            cursor = page[page.length - 1]!.path
          }
          yield exportLine({ end: true, rows, files: totals.files, fileBytes: totals.fileBytes } satisfies ExportEnd)
        }
        await pipeline(Readable.from(lines()), createGzip(), file.createWriteStream())
      })
    } catch (error) {
      await file.close().catch(() => undefined)
      await rm(options.out, { force: true })
      await this.#catalog.audit({ tenantId: tenant.id, action: 'tenant.export.failed', actor, details: { error: message(error) } })
      throw error
    } finally {
      await handle.close()
    }
    await this.#catalog.audit({ tenantId: tenant.id, action: 'tenant.export.succeeded', actor, details: { rows, ...totals, secretNames: secretNames.length } })
    return { tenantId: tenant.id, slug: tenant.slug, out: options.out, rows, ...totals, secretNames }
  }

  /**
   * Creates tenant `slug` (which must be free) from an export file, on the data source and
   * isolation asked for: the normal create, migrated to the export's level, then its rows
   * (parents first, in batches), files and state, then the migrations the export was behind
   * on, then `ready`. On any failure the half-made tenant is purged: nothing is kept, the slug
   * is free. Refused before anything is made (`INVALID_EXPORT`): a file that is not an
   * export, of an unknown format version, or with migrations this deployment does not know.
   */
  async import(slug: string, options: ImportTenantOptions): Promise<ImportTenantResult> {
    assertValidSlug(slug)
    if (typeof options?.from !== 'string' || options.from === '') throw new TenantryError('INVALID_OPTION', 'import needs the export file to read: { from }')
    const actor = options.actor ?? 'system'
    const header = await readHeader(options.from)
    const migrateTo = this.#levelOf(header, options.from)
    const plan = await this.#provisioner.plan({ slug, ...(options.isolation ? { isolation: options.isolation } : {}), ...(options.dataSource ? { dataSource: options.dataSource } : {}) })
    if (plan.resumes) throw new TenantryError('SLUG_TAKEN', `Tenant slug "${slug}" is taken by a tenant whose create did not finish; purge it first (tenantry tenant delete ${slug} --purge)`)
    const loaded = { rows: {} as Record<string, number>, files: 0, fileBytes: 0 }
    let created: TenantRecord
    try {
      created = await this.#provisioner.create(
        { slug, name: options.name ?? header.tenant.name, isolation: plan.isolation, dataSource: plan.dataSource, actor, ...(options.externalId === undefined ? {} : { externalId: options.externalId }) },
        {
          ...(migrateTo === undefined ? {} : { migrateTo }),
          beforeActivate: async (tenant, placement, engine) => {
            await this.#catalog.audit({ tenantId: tenant.id, action: 'tenant.import.started', actor, details: { file: basename(options.from), exportedFrom: header.source, exportedAt: header.exportedAt } })
            Object.assign(loaded, await this.#load(tenant.id, placement, engine, header, options.from, options.onProgress))
            await options.afterLoad?.(tenant)
            if (migrateTo !== undefined) await this.#migrateToLatest(tenant.id, placement, engine)
          },
        },
      )
    } catch (error) {
      const cause = isTenantryError(error, 'PROVISIONING_FAILED') && error.cause !== undefined ? error.cause : error
      await this.#discard(slug, actor, cause)
      const code = isTenantryError(cause) && cause.code !== 'INTERNAL' ? cause.code : 'PROVISIONING_FAILED'
      throw new TenantryError(code, `Importing tenant "${slug}" from ${options.from} failed, and nothing of it was kept: ${message(cause)}`, { cause })
    }
    await this.#catalog.audit({ tenantId: created.id, action: 'tenant.import.succeeded', actor, details: { ...loaded, secretNames: header.secretNames.length } })
    return { tenant: created, ...loaded, secretNames: header.secretNames }
  }

  /**
   * Erases a tenant (GDPR): purges it (storage, ledger, and every tenant service: cache, jobs,
   * state, files, secrets with their data key, so sealed copies in backups can no longer be
   * opened), removes its tokens, settings, usage and staged claims, runs the erase hooks (the
   * server ends its organization and memberships), removes its audit entries (their details
   * may name people) and replaces its slug and name with its id. What is left is the catalog's
   * record of an id that was erased, and one `tenant.erased` audit entry with the time, the
   * actor and counts. A purged tenant can be erased by its old slug too.
   */
  async erase(slug: string, options: EraseTenantOptions, hooks: readonly EraseHook[]): Promise<EraseTenantResult> {
    assertValidSlug(slug)
    const actor = options.actor ?? 'system'
    const tenant = (await this.#catalog.findTenantBySlug(slug)) ?? (await this.#purged(slug))
    if (!tenant) throw new TenantryError('TENANT_NOT_FOUND', `Tenant "${slug}" not found`)
    await this.#provisioner.delete(tenant.slug, { purge: true, actor }).catch(async (error: unknown) => {
      // A purged tenant has no live slug: purge it again by its record (idempotent).
      if (!isTenantryError(error, 'TENANT_NOT_FOUND')) throw error
    })
    const removed: Record<string, unknown> = await this.#catalog.db.transaction().execute(async (trx) => {
      const count = async (query: { executeTakeFirst(): Promise<{ numDeletedRows: bigint }> }) => Number((await query.executeTakeFirst()).numDeletedRows)
      return {
        tokens: await count(trx.deleteFrom('tokens').where('tenant_id', '=', tenant.id)),
        settings: await count(trx.deleteFrom('tenant_settings').where('tenant_id', '=', tenant.id)),
        usageDays: await count(trx.deleteFrom('tenant_usage').where('tenant_id', '=', tenant.id)),
        claimChunks: await count(trx.deleteFrom('claim_chunks').where('tenant_id', '=', tenant.id)),
        secrets: await count(trx.deleteFrom('tenant_secrets').where('tenant_id', '=', tenant.id)),
        dataKeys: await count(trx.deleteFrom('tenant_keys').where('tenant_id', '=', tenant.id)),
      }
    })
    for (const hook of hooks) Object.assign(removed, await hook({ id: tenant.id, slug: tenant.slug }))
    // What the purge's services removed (counts), said again in the entry that stays.
    const purged = (await this.#catalog.auditLog(tenant.id)).filter((e) => e.action === 'tenant.services.purged').at(-1)
    if (purged?.details) removed.services = purged.details
    await this.#catalog.db.transaction().execute(async (trx) => {
      const audit = await trx.deleteFrom('audit_log').where('tenant_id', '=', tenant.id).executeTakeFirst()
      removed.auditEntries = Number(audit.numDeletedRows)
      await trx.updateTable('tenants').set({ slug: tenant.id, name: tenant.id, status_reason: null }).where('id', '=', tenant.id).execute()
    })
    await this.#catalog.audit({ tenantId: tenant.id, action: 'tenant.erased', actor, details: { removed } })
    return { tenantId: tenant.id, removed }
  }

  /** The most recently purged tenant that had `slug` (not erased yet: erasing replaces the slug). */
  async #purged(slug: string): Promise<TenantRecord | undefined> {
    const row = await this.#catalog.db.selectFrom('tenants').select('id').where('slug', '=', slug).where('purged_at', 'is not', null).orderBy('purged_at', 'desc').executeTakeFirst()
    return row ? this.#catalog.findTenantById(row.id) : undefined
  }

  /** Migration names in this deployment's order; names it does not know (only in old ledgers) last. */
  #ordered(names: string[]): string[] {
    const order = new Map(this.#migrations.names.map((n, i) => [n, i]))
    return [...names].sort((a, b) => (order.get(a) ?? Infinity) - (order.get(b) ?? Infinity) || (a < b ? -1 : a > b ? 1 : 0))
  }

  /**
   * The app migration to stop at so that the new tenant has the export's schema, or
   * `undefined` when the export is at this deployment's latest. Refuses an export with a
   * migration this deployment does not have, or one that skipped a migration it had.
   */
  #levelOf(header: ExportHeader, from: string): string | undefined {
    const known = new Set(this.#migrations.names)
    const unknown = header.migrations.filter((m) => !known.has(m))
    if (unknown.length > 0) {
      throw new TenantryError(
        'INVALID_EXPORT',
        `${from} was exported with migrations this deployment does not have: ${unknown.join(', ')}. Deploy them (or a newer version of the app) before importing`,
        { details: { unknownMigrations: unknown } },
      )
    }
    const derived = new Set(this.#migrations.derived.map((d) => d.name))
    const app = this.#migrations.names.filter((n) => !derived.has(n))
    const had = new Set(header.migrations)
    const last = app.reduce((at, name, i) => (had.has(name) ? i : at), -1)
    const skipped = app.slice(0, last + 1).filter((n) => !had.has(n))
    if (skipped.length > 0) {
      throw new TenantryError('INVALID_EXPORT', `${from} was exported from a tenant that skipped migrations this deployment runs before later ones: ${skipped.join(', ')}`)
    }
    if (last === app.length - 1) return undefined
    return last === -1 ? undefined : app[last]
  }

  /** Fills the new tenant from the file: rows in batches, table by table as the file orders them, then files. */
  async #load(
    tenantId: string,
    placement: EnginePlacement,
    engine: DatabaseEngine,
    header: ExportHeader,
    from: string,
    onProgress?: (progress: TransferProgress) => void,
  ): Promise<{ rows: Record<string, number>; files: number; fileBytes: number }> {
    const handle = engine.open(placement, 'app')
    const rows: Record<string, number> = {}
    let files = 0
    let fileBytes = 0
    try {
      const target = new Map((await listTenantTables(handle, handle.db)).map((t) => [t.name, t]))
      const tables = new Map(header.tables.map((t) => [t.name, t]))
      for (const table of header.tables) {
        const mine = target.get(table.name)
        if (!mine) throw new TenantryError('INVALID_EXPORT', `Table "${table.name}" of the export is not in the new tenant's schema after its migrations`)
        const missing = table.columns.filter((c) => !mine.columns.some((m) => m.name === c.name))
        if (missing.length) throw new TenantryError('INVALID_EXPORT', `Table "${table.name}" of the new tenant has no column ${missing.map((c) => `"${c.name}"`).join(', ')}`)
      }
      const maxima = new Map<string, bigint>() // `table\0column` → highest value inserted into a sequence's column
      let batch: { table: string; rows: Array<Record<string, unknown>> } | undefined
      let imported = 0
      const flush = async () => {
        if (!batch || batch.rows.length === 0) return
        const { table, rows: values } = batch
        batch = undefined
        await handle.db.transaction().execute((trx) => trx.insertInto(table).values(values).execute())
        imported += values.length
        onProgress?.({ table, rows: imported })
      }
      let file: { path: string; size: number; stream: PassThrough; done: Promise<unknown>; written: number } | undefined
      const closeFile = async () => {
        if (!file) return
        const current = file
        file = undefined
        current.stream.end()
        await current.done
        if (current.written !== current.size) throw new TenantryError('INVALID_EXPORT', `File "${current.path}" in the export has ${current.written} bytes, not the ${current.size} its entry says`)
        files += 1
        fileBytes += current.written
      }
      let end: ExportEnd | undefined
      let first = true
      for await (const { value, number } of ndjson(from)) {
        if (first) {
          first = false // the header, checked already
          continue
        }
        if (end) throw new TenantryError('INVALID_EXPORT', `${from} has data after its end line (line ${number})`)
        const entry = value as ExportLine
        if ('row' in entry) {
          const table = tables.get(entry.row)
          if (!table || !Array.isArray(entry.values) || entry.values.length !== table.columns.length) {
            throw new TenantryError('INVALID_EXPORT', `Line ${number} of ${from} is a row of ${table ? `"${entry.row}" with the wrong number of values` : `an unknown table ${JSON.stringify(entry.row)}`}`)
          }
          if (batch && batch.table !== entry.row) await flush()
          batch ??= { table: entry.row, rows: [] }
          const record: Record<string, unknown> = {}
          table.columns.forEach((column, i) => {
            const decoded = decodeValue(entry.values[i] as EncodedValue, column.kind, handle.engine)
            record[column.name] = decoded
            if (target.get(table.name)!.sequences[column.name] && decoded !== null && /^-?\d+$/.test(String(decoded))) {
              const key = `${table.name}\0${column.name}`
              const n = BigInt(String(decoded))
              if (!maxima.has(key) || n > maxima.get(key)!) maxima.set(key, n)
            }
          })
          batch.rows.push(record)
          rows[entry.row] = (rows[entry.row] ?? 0) + 1
          if (batch.rows.length >= Math.min(INSERT_BATCH_ROWS, Math.max(1, Math.floor(MAX_BOUND_VALUES / Math.max(1, table.columns.length + 1))))) await flush()
        } else if ('file' in entry) {
          await flush()
          await closeFile()
          const path = checkFilePath(entry.file)
          const stream = new PassThrough()
          const done = this.#files.driver.put(tenantId, path, stream, { contentType: String(entry.contentType), maxBytes: Number.MAX_SAFE_INTEGER, quotaBytes: null })
          done.catch(() => stream.destroy())
          file = { path, size: Number(entry.size), stream, done, written: 0 }
        } else if ('data' in entry) {
          if (!file || typeof entry.data !== 'string') throw new TenantryError('INVALID_EXPORT', `Line ${number} of ${from} holds file data outside a file`)
          const bytes = Buffer.from(entry.data, 'base64')
          file.written += bytes.length
          if (!file.stream.write(bytes)) await Promise.race([once(file.stream, 'drain'), file.done])
        } else if ('end' in entry && entry.end === true) {
          await flush()
          await closeFile()
          end = entry
        } else {
          throw new TenantryError('INVALID_EXPORT', `Line ${number} of ${from} is not a row, file, data or end line`)
        }
      }
      if (!end) throw new TenantryError('INVALID_EXPORT', `${from} is cut short: it has no end line`)
      for (const [table, n] of Object.entries(end.rows ?? {})) {
        if ((rows[table] ?? 0) !== n) throw new TenantryError('INVALID_EXPORT', `${from} says table "${table}" has ${n} rows, but it holds ${rows[table] ?? 0}`)
      }
      if (end.files !== files) throw new TenantryError('INVALID_EXPORT', `${from} says it has ${end.files} files, but it holds ${files}`)
      await this.#levelSequences(placement, engine, target, maxima)
    } finally {
      await handle.close()
    }
    return { rows, files, fileBytes }
  }

  /** Postgres: serial and identity sequences moved past the ids the import inserted, so the next insert does not collide. */
  async #levelSequences(placement: EnginePlacement, engine: DatabaseEngine, tables: Map<string, TenantTable>, maxima: Map<string, bigint>): Promise<void> {
    if (engine.name !== 'postgres' || maxima.size === 0) return
    const admin = engine.open(placement, 'admin')
    try {
      for (const [key, max] of maxima) {
        const [table, column] = key.split('\0') as [string, string]
        const sequence = tables.get(table)!.sequences[column]!
        if (max < 1n) continue
        await sql`select setval(${sequence}::regclass, greatest(${max.toString()}::bigint, coalesce(pg_sequence_last_value(${sequence}::regclass), 0)))`.execute(admin.db)
      }
    } finally {
      await admin.close()
    }
  }

  async #migrateToLatest(tenantId: string, placement: EnginePlacement, engine: DatabaseEngine): Promise<void> {
    const handle = engine.open(placement, 'admin')
    try {
      const outcome = await migrateHandle(handle, this.#migrations, { tenantId, logger: this.#logger })
      if (outcome.error !== undefined) throw outcome.error
      await this.#catalog.recordMigrations(tenantId, outcome.executed)
    } finally {
      await handle.close()
    }
  }

  /** Removes what a failed import made (a `failed` tenant, its storage, files…): the slug is free again. */
  async #discard(slug: string, actor: string, cause: unknown): Promise<void> {
    const tenant = await this.#catalog.findTenantBySlug(slug)
    if (!tenant) return
    await this.#catalog.audit({ tenantId: tenant.id, action: 'tenant.import.failed', actor, details: { error: message(cause) } }).catch(() => undefined)
    await this.#provisioner.delete(slug, { purge: true, actor }).catch((err: unknown) => {
      this.#logger.warn({ err, tenantId: tenant.id }, 'Removing a failed import failed; `tenantry tenant delete --purge` removes it')
    })
  }
}


/** The bytes of `body` in pieces of `FILE_CHUNK_BYTES` (the last may be shorter). */
async function* chunked(body: Readable): AsyncGenerator<Buffer> {
  let pending = Buffer.alloc(0)
  for await (const piece of body) {
    pending = Buffer.concat([pending, piece as Buffer])
    while (pending.length >= FILE_CHUNK_BYTES) {
      yield pending.subarray(0, FILE_CHUNK_BYTES)
      pending = pending.subarray(FILE_CHUNK_BYTES)
    }
  }
  if (pending.length > 0) yield pending
}

/** The file's lines, parsed, with their numbers; `INVALID_EXPORT` for a file that is not gzip'd NDJSON. */
export async function* ndjson(path: string): AsyncGenerator<{ value: unknown; number: number }> {
  const input = createReadStream(path)
  const gunzip = createGunzip()
  input.on('error', (error) => gunzip.destroy(error))
  input.pipe(gunzip)
  let pending = ''
  let number = 0
  const parse = (text: string) => {
    number += 1
    try {
      return { value: JSON.parse(text) as unknown, number }
    } catch {
      throw new TenantryError('INVALID_EXPORT', `Line ${number} of ${path} is not JSON: the file is damaged`)
    }
  }
  try {
    for await (const chunk of gunzip) {
      pending += (chunk as Buffer).toString('utf8')
      let newline: number
      while ((newline = pending.indexOf('\n')) >= 0) {
        const text = pending.slice(0, newline)
        pending = pending.slice(newline + 1)
        yield parse(text)
      }
      if (pending.length > MAX_LINE_BYTES) throw new TenantryError('INVALID_EXPORT', `Line ${number + 1} of ${path} is longer than any export writes: the file is damaged`)
    }
  } catch (error) {
    if (error instanceof TenantryError) throw error
    const code = (error as NodeJS.ErrnoException).code
    if (code === 'ENOENT') throw new TenantryError('INVALID_OPTION', `${path} does not exist`)
    if (code === 'EISDIR' || code === 'EACCES') throw new TenantryError('INVALID_OPTION', `Cannot read ${path}: ${(error as Error).message}`)
    throw new TenantryError('INVALID_EXPORT', `${path} is not a Tenantry export or is damaged (${(error as Error).message})`, { cause: error })
  } finally {
    input.destroy()
    gunzip.destroy()
  }
  if (pending.trim() !== '') yield parse(pending)
}

/** The header of an export file, checked (`parseHeader`), reading no further than its first line. */
export async function readHeader(path: string): Promise<ExportHeader> {
  for await (const { value } of ndjson(path)) return parseHeader(JSON.stringify(value), path)
  throw new TenantryError('INVALID_EXPORT', `${path} is empty: not a Tenantry export`)
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}
