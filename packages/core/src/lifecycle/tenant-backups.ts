import { createHash, randomBytes } from 'node:crypto'
import { createReadStream, existsSync } from 'node:fs'
import { mkdir, open, rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { createGzip } from 'node:zlib'
import { TenantryError, isTenantryError } from '../errors.js'
import { assertValidSlug } from '../identifiers.js'
import type { Catalog, TenantRecord } from '../catalog/catalog.js'
import type { TenantBackupsTable } from '../catalog/catalog-schema.js'
import type { DataSources } from '../data-sources/data-sources.js'
import type { BackupProgress, DatabaseEngine, EngineHandle, EnginePlacement, Isolation } from '../engines/engine.js'
import { SILENT_LOGGER, type Logger } from '../logger.js'
import { migrateHandle, type TenantMigrationSet } from '../migrations/migration-set.js'
import type { Provisioner } from '../provisioning/provisioner.js'
import { EXPORT_FORMAT, EXPORT_VERSION, decodeValue, exportLine, type EncodedValue, type ExportHeader, type ExportLine } from './export-format.js'
import { exportRowLines, listTenantTables, snapshot } from './tenant-tables.js'
import type { PointInTimeArchive, RestorableWindow } from './point-in-time.js'
import { ndjson, readHeader, type TenantLifecycle } from './tenant-lifecycle.js'

export type { BackupProgress }

export interface BackupTenantOptions {
  /** Who asked, for the audit log. @default 'system' */
  actor?: string
  /**
   * Hears how far the backup has come (the CLI draws its progress from it): `copy` (SQLite
   * pages), `dump` (pg_dump, table by table), `rows` (row tenants), then `checksum` (bytes).
   */
  onProgress?: (progress: BackupProgress) => void
}

/** One backup of one tenant, as `tenantry.tenants.backups` lists it. */
export interface TenantBackup {
  id: string
  tenantId: string
  engine: string
  isolation: Isolation
  dataSource: string
  /** `sqlite-backup-api`, `pg_dump`, or `rows` (row isolation: the export codec). */
  method: string
  /** The backup file (under the backups directory). */
  location: string
  bytes: number
  /** sha256 of the file, checked before a restore. */
  checksum: string
  /** The tenant's migrations when the backup was taken. */
  migrations: string[]
  createdAt: string
  createdBy: string
}

export interface RestoreTenantOptions {
  /** The backup's id (`tenantry tenant backups <slug>`): one of this tenant's. Either this or `at`. */
  backup?: string
  /**
   * Point-in-time restore (SQLite tenants, `backups.pointInTime`): the tenant as it was at this
   * time (a `Date` or ISO text), within `tenantry.tenants.restorableWindow(slug)`. Its image is
   * rebuilt from the WAL archive, kept as a backup (method `point-in-time`), and restored as any backup is.
   */
  at?: Date | string
  /** Restore into a new tenant with this slug (its own id and storage); the original is left untouched. */
  as?: string
  actor?: string
  /**
   * Hears how far the restore has come: `checksum` (bytes), then `copy` (SQLite pages),
   * `restore` (pg_restore and psql) or `rows` (row tenants), and `migrate` when the backup is behind.
   */
  onProgress?: (progress: BackupProgress) => void
  /** @internal Fault tests: fail after the restored data is written, before it commits. */
  failBeforeCommit?: boolean
}

export interface RestoreTenantResult {
  /** The tenant holding the restored data: the same one, or the new one of `as`. */
  tenant: TenantRecord
  backup: TenantBackup
  /** Migrations the backup was behind on, applied after the restore. */
  migrated: string[]
}

/** Statuses whose data can be backed up or restored in place: a tenant being created, moved or deleted is refused. */
const SERVING = new Set(['ready', 'suspended'])
/** Backup ids: `b`, the time in base 36 (so they sort by age), and 16 random hex digits. */
const BACKUP_ID_PATTERN = /^b[0-9a-z]{9}[0-9a-f]{16}$/
const ROWS_METHOD = 'rows'
const POINT_IN_TIME_METHOD = 'point-in-time'
const INSERT_BATCH_ROWS = 500
const MAX_BOUND_VALUES = 30_000

/**
 * Per-tenant backup and restore (issue #13), reached as `tenantry.tenants.backup/backups/restore`.
 *
 * A backup holds the tenant's database: schema, rows and migration records, in the engine's
 * own format where it has one (`DatabaseEngine.backups`: SQLite's online backup API,
 * `pg_dump` of a Postgres schema or database), else the tenant's rows in the export codec
 * (row isolation, where tables are shared with other tenants). It does not hold the tenant's
 * files, secrets, cache, state outside its database or settings: those live in the catalog
 * and the tenant services, and a restore leaves them as they are. Backups are files under the
 * backups directory (`<home>/backups/<tenant id>/`), listed in the catalog with their checksum
 * and the migration ledger of the moment; purging the tenant removes them.
 *
 * A restore in place replaces the tenant's data atomically (one transaction of its storage,
 * see `EngineBackups.restore`; for row tenants, one transaction deleting and inserting its
 * rows): readers see the old data until it commits, and a failure part-way leaves the old data
 * serving. Other tenants on the data source are not touched. A backup taken at an older
 * migration level is migrated up to this deployment's after the restore, and its ledger with
 * it; one naming a migration this deployment does not have is refused (`INVALID_BACKUP`).
 * Each step goes into the audit log.
 */
export class TenantBackups {
  readonly #catalog: Catalog
  readonly #dataSources: DataSources
  readonly #migrations: TenantMigrationSet
  readonly #provisioner: Provisioner
  readonly #lifecycle: TenantLifecycle
  readonly #directory: string
  readonly #logger: Logger
  readonly #pointInTime: PointInTimeArchive | undefined

  constructor(deps: {
    catalog: Catalog
    dataSources: DataSources
    migrations: TenantMigrationSet
    provisioner: Provisioner
    lifecycle: TenantLifecycle
    /** Where backups are written, one directory per tenant id. */
    directory: string
    logger?: Logger
    /** The WAL archive of SQLite tenants, when `backups.pointInTime` is on. */
    pointInTime?: PointInTimeArchive
  }) {
    this.#catalog = deps.catalog
    this.#dataSources = deps.dataSources
    this.#migrations = deps.migrations
    this.#provisioner = deps.provisioner
    this.#lifecycle = deps.lifecycle
    this.#directory = deps.directory
    this.#logger = deps.logger ?? SILENT_LOGGER
    this.#pointInTime = deps.pointInTime
  }

  /** The times the tenant can be restored to with `at`, or undefined (point-in-time restore off, not SQLite, nothing shipped yet). */
  async restorableWindow(slug: string): Promise<RestorableWindow | undefined> {
    assertValidSlug(slug)
    const tenant = await this.#catalog.findTenantBySlug(slug)
    if (!tenant) throw new TenantryError('TENANT_NOT_FOUND', `Tenant "${slug}" not found`)
    return this.#pointInTime?.window(tenant)
  }

  /** Takes a backup of the tenant while it keeps serving; returns it, as listed by `backups`. */
  async backup(slug: string, options: BackupTenantOptions = {}): Promise<TenantBackup> {
    const tenant = await this.#serving(slug, 'backed up')
    const actor = options.actor ?? 'system'
    const engine = await this.#dataSources.engine(tenant.placement.dataSourceId)
    const placement: EnginePlacement = { tenantId: tenant.id, ...tenant.placement }
    const method = engine.backups?.isolations.includes(placement.isolation) ? engine.backups.method : ROWS_METHOD
    const { id, location } = await this.#newFile(tenant.id, method === ROWS_METHOD ? 'ndjson.gz' : method === 'pg_dump' ? 'pgdump' : 'sqlite')
    const ledger = await this.#catalog.ledger(tenant.id)
    await this.#catalog.audit({ tenantId: tenant.id, action: 'tenant.backup.started', actor, details: { backup: id, method } })
    let record: TenantBackupsTable
    try {
      const onProgress = options.onProgress
      if (method === ROWS_METHOD) await this.#writeRows(tenant, engine, placement, location, onProgress)
      else await engine.backups!.dump(placement, location, onProgress ? { onProgress } : {})
      record = await this.#record({ id, tenant_id: tenant.id, engine: engine.name, isolation: placement.isolation, data_source_id: tenant.placement.dataSourceId, method, location, created_by: actor }, ledger, onProgress)
    } catch (error) {
      await rm(location, { force: true })
      await this.#catalog.audit({ tenantId: tenant.id, action: 'tenant.backup.failed', actor, details: { backup: id, error: message(error) } })
      throw error
    }
    await this.#catalog.audit({ tenantId: tenant.id, action: 'tenant.backup.succeeded', actor, details: { backup: id, method, bytes: record.bytes } })
    return toBackup(record)
  }

  /** A new backup's id and its file in the tenant's backup directory (created, owner-only). */
  async #newFile(tenantId: string, extension: string): Promise<{ id: string; location: string }> {
    const id = `b${Date.now().toString(36).padStart(9, '0')}${randomBytes(8).toString('hex')}`
    const directory = join(this.#directory, tenantId)
    await mkdir(directory, { recursive: true, mode: 0o700 })
    return { id, location: join(directory, `${id}.${extension}`) }
  }

  /** Records a written backup file in the catalog, with its size, checksum and the tenant's migrations; returns the row. */
  async #record(
    backup: Omit<TenantBackupsTable, 'bytes' | 'checksum' | 'migrations' | 'created_at'>,
    ledger: ReadonlyArray<{ migration: string; appliedAt: string }>,
    onProgress?: (progress: BackupProgress) => void,
  ): Promise<TenantBackupsTable> {
    const { bytes, checksum } = await digest(backup.location, onProgress)
    const record: TenantBackupsTable = {
      ...backup,
      bytes,
      checksum,
      migrations: JSON.stringify(ledger.map((l) => ({ name: l.migration, appliedAt: l.appliedAt }))),
      created_at: new Date().toISOString(),
    }
    await this.#catalog.db.insertInto('tenant_backups').values(record).execute()
    return record
  }

  /** The tenant's backups, newest first. */
  async backups(slug: string): Promise<TenantBackup[]> {
    assertValidSlug(slug)
    const tenant = await this.#catalog.findTenantBySlug(slug)
    if (!tenant) throw new TenantryError('TENANT_NOT_FOUND', `Tenant "${slug}" not found`)
    const rows = await this.#catalog.db.selectFrom('tenant_backups').selectAll().where('tenant_id', '=', tenant.id).orderBy('created_at', 'desc').orderBy('id', 'desc').execute()
    return rows.map(toBackup)
  }

  /**
   * Restores one of the tenant's backups: in place, or with `as` into a new tenant (created on
   * the backup's data source and isolation; the original is left as it is, and on failure
   * nothing of the new one is kept). Everything is checked before anything changes: the
   * backup is the tenant's (`BACKUP_NOT_FOUND`), its file is there with its checksum and its
   * migrations are known (`INVALID_BACKUP`), the slug of `as` is free (`SLUG_TAKEN`).
   */
  async restore(slug: string, options: RestoreTenantOptions): Promise<RestoreTenantResult> {
    assertValidSlug(slug)
    if (options?.at !== undefined) {
      if (options.backup !== undefined) throw new TenantryError('INVALID_OPTION', 'restore takes a backup id or a time (at), not both')
      if (options.as !== undefined) assertValidSlug(options.as)
      const image = await this.#imageAt(slug, options.at, options.actor ?? 'system')
      const { at: _at, ...rest } = options
      try {
        return await this.restore(slug, { ...rest, backup: image.id })
      } catch (error) {
        // Nothing was restored from it: it goes (a restore that worked keeps it, listed with the backups).
        await this.#catalog.db.deleteFrom('tenant_backups').where('id', '=', image.id).execute()
        await rm(image.location, { force: true })
        throw error
      }
    }
    if (typeof options?.backup !== 'string' || !BACKUP_ID_PATTERN.test(options.backup)) {
      throw new TenantryError('INVALID_OPTION', `restore needs a backup id as \`tenantry tenant backups ${slug}\` lists them, not ${JSON.stringify(options?.backup)}`)
    }
    if (options.as !== undefined) assertValidSlug(options.as)
    const actor = options.actor ?? 'system'
    const tenant = await this.#catalog.findTenantBySlug(slug)
    if (!tenant) throw new TenantryError('TENANT_NOT_FOUND', `Tenant "${slug}" not found`)
    const row = await this.#catalog.db.selectFrom('tenant_backups').selectAll().where('id', '=', options.backup).executeTakeFirst()
    if (!row || row.tenant_id !== tenant.id) throw new TenantryError('BACKUP_NOT_FOUND', `Tenant "${slug}" has no backup ${options.backup}`, { details: { backup: options.backup } })
    const backup = toBackup(row)
    const onProgress = options.onProgress
    await this.#check(backup, onProgress)
    if (options.as !== undefined) return this.#restoreAs(tenant, backup, options.as, actor, options.failBeforeCommit ?? false, onProgress)

    if (!SERVING.has(tenant.status)) {
      throw new TenantryError('INVALID_TRANSITION', `Tenant "${slug}" is ${tenant.status}: only ready or suspended tenants can be restored in place`, { details: { status: tenant.status } })
    }
    if (tenant.placement.dataSourceId !== backup.dataSource || tenant.placement.isolation !== backup.isolation) {
      throw new TenantryError('INVALID_BACKUP', `Backup ${backup.id} was taken on ${backup.dataSource} (${backup.isolation}); the tenant is on ${tenant.placement.dataSourceId} (${tenant.placement.isolation}) now: restore it --as a new tenant`)
    }
    // One restore of a tenant at a time: two at once would each replace the other's data.
    const lock = await this.#catalog.acquireLock(`tenant-restore:${tenant.id}`).catch((error: unknown) => {
      if (isTenantryError(error, 'MIGRATION_LOCKED')) throw new TenantryError('INVALID_TRANSITION', `Tenant "${slug}" is being restored by another call; try again once it finishes`, { cause: error })
      throw error
    })
    await this.#catalog.audit({ tenantId: tenant.id, action: 'tenant.restore.started', actor, details: { backup: backup.id, method: backup.method } })
    let migrated: string[] = []
    try {
      const engine = await this.#dataSources.engine(tenant.placement.dataSourceId)
      const placement: EnginePlacement = { tenantId: tenant.id, ...tenant.placement }
      if (backup.method === ROWS_METHOD) {
        await this.#restoreRows(engine, placement, backup.location, options.failBeforeCommit ?? false, onProgress)
      } else {
        await engine.backups!.restore(placement, backup.location, { ...(options.failBeforeCommit ? { failBeforeCommit: true } : {}), ...(onProgress ? { onProgress } : {}) })
        migrated = await this.#relevel(tenant.id, engine, placement, backup, onProgress)
      }
    } catch (error) {
      await this.#catalog.audit({ tenantId: tenant.id, action: 'tenant.restore.failed', actor, details: { backup: backup.id, error: message(error) } })
      throw error
    } finally {
      await lock.release()
    }
    await this.#catalog.audit({ tenantId: tenant.id, action: 'tenant.restore.succeeded', actor, details: { backup: backup.id, method: backup.method, migrated } })
    return { tenant: (await this.#catalog.findTenantById(tenant.id))!, backup, migrated }
  }

  /** Removes a purged tenant's backups, files and records (a purge hook): its data is gone for good. */
  async purgeTenant(tenantId: string): Promise<Record<string, unknown>> {
    const rows = await this.#catalog.db.selectFrom('tenant_backups').select(['id', 'location']).where('tenant_id', '=', tenantId).execute()
    for (const row of rows) await rm(row.location, { force: true })
    await rm(join(this.#directory, tenantId), { recursive: true, force: true })
    await this.#catalog.db.deleteFrom('tenant_backups').where('tenant_id', '=', tenantId).execute()
    return { backups: rows.length }
  }

  /**
   * The tenant's database at `at`, rebuilt from the WAL archive into a backup file of its own and
   * listed as a backup (checksum and all), so that it goes through the same restore as any backup.
   * A time outside the archive's window is refused before anything is written.
   */
  async #imageAt(slug: string, at: Date | string, actor: string): Promise<TenantBackup> {
    const time = at instanceof Date ? at : typeof at === 'string' && /^\d{4}-\d{2}-\d{2}T/.test(at) ? new Date(at) : undefined
    if (!time || Number.isNaN(time.getTime())) throw new TenantryError('INVALID_OPTION', `restore at needs an ISO time (2026-01-31T12:00:00Z), not ${JSON.stringify(at)}`)
    const tenant = await this.#catalog.findTenantBySlug(slug)
    if (!tenant) throw new TenantryError('TENANT_NOT_FOUND', `Tenant "${slug}" not found`)
    if (!this.#pointInTime) throw new TenantryError('INVALID_OPTION', 'Point-in-time restore is off: set backups.pointInTime in the config (SQLite tenants)')
    const { id, location } = await this.#newFile(tenant.id, 'sqlite')
    let record: TenantBackupsTable
    try {
      const { commits } = await this.#pointInTime.image(tenant, time, location)
      // The ledger of that moment: the migrations recorded by then.
      const ledger = (await this.#catalog.ledger(tenant.id)).filter((l) => Date.parse(l.appliedAt) <= time.getTime())
      record = await this.#record({ id, tenant_id: tenant.id, engine: 'sqlite', isolation: tenant.placement.isolation, data_source_id: tenant.placement.dataSourceId, method: POINT_IN_TIME_METHOD, location, created_by: actor }, ledger)
      await this.#catalog.audit({ tenantId: tenant.id, action: 'tenant.backup.succeeded', actor, details: { backup: id, method: POINT_IN_TIME_METHOD, at: time.toISOString(), commits, bytes: record.bytes } })
    } catch (error) {
      await rm(location, { force: true })
      throw error
    }
    return toBackup(record)
  }

  async #restoreAs(tenant: TenantRecord, backup: TenantBackup, as: string, actor: string, failBeforeCommit: boolean, onProgress?: (progress: BackupProgress) => void): Promise<RestoreTenantResult> {
    const plan = await this.#provisioner.plan({ slug: as, isolation: backup.isolation, dataSource: backup.dataSource })
    if (plan.resumes) throw new TenantryError('SLUG_TAKEN', `Tenant slug "${as}" is taken by a tenant whose create did not finish; purge it first (tenantry tenant delete ${as} --purge)`)
    await this.#catalog.audit({ tenantId: tenant.id, action: 'tenant.restore.started', actor, details: { backup: backup.id, method: backup.method, as } })
    let created: TenantRecord
    let migrated: string[] = []
    try {
      if (backup.method === ROWS_METHOD) {
        const onRows = onProgress && (({ table, rows }: { table: string; rows: number }) => onProgress({ step: 'rows', table, done: rows, unit: 'rows' }))
        created = (await this.#lifecycle.import(as, { from: backup.location, dataSource: backup.dataSource, isolation: backup.isolation, name: tenant.name, actor, ...(onRows ? { onProgress: onRows } : {}) })).tenant
      } else {
        const from: EnginePlacement = { tenantId: tenant.id, isolation: backup.isolation, locator: tenant.placement.locator }
        created = await this.#provisioner
          .create(
            { slug: as, name: tenant.name, isolation: backup.isolation, dataSource: backup.dataSource, actor },
            {
              beforeActivate: async (made, placement, engine) => {
                await engine.backups!.restore(placement, backup.location, { from, ...(failBeforeCommit ? { failBeforeCommit: true } : {}), ...(onProgress ? { onProgress } : {}) })
                migrated = await this.#relevel(made.id, engine, placement, backup, onProgress)
              },
            },
          )
          .catch(async (error: unknown) => {
            await this.#provisioner.delete(as, { purge: true, actor }).catch((err: unknown) => {
              this.#logger.warn({ err, slug: as }, 'Removing a failed restore failed; `tenantry tenant delete --purge` removes it')
            })
            const cause = isTenantryError(error, 'PROVISIONING_FAILED') && error.cause !== undefined ? error.cause : error
            throw new TenantryError(isTenantryError(cause) && cause.code !== 'INTERNAL' ? cause.code : 'PROVISIONING_FAILED', `Restoring backup ${backup.id} as "${as}" failed, and nothing of it was kept: ${message(cause)}`, { cause })
          })
      }
    } catch (error) {
      await this.#catalog.audit({ tenantId: tenant.id, action: 'tenant.restore.failed', actor, details: { backup: backup.id, as, error: message(error) } })
      throw error
    }
    await this.#catalog.audit({ tenantId: created.id, action: 'tenant.restored', actor, details: { from: tenant.id, backup: backup.id } })
    await this.#catalog.audit({ tenantId: tenant.id, action: 'tenant.restore.succeeded', actor, details: { backup: backup.id, as, tenantId: created.id, migrated } })
    return { tenant: created, backup, migrated }
  }

  /** The backup's file is there, unchanged, and its migrations are this deployment's. */
  async #check(backup: TenantBackup, onProgress?: (progress: BackupProgress) => void): Promise<void> {
    if (!existsSync(backup.location)) throw new TenantryError('INVALID_BACKUP', `The file of backup ${backup.id} is missing (${backup.location})`)
    const { checksum } = await digest(backup.location, onProgress)
    if (checksum !== backup.checksum) throw new TenantryError('INVALID_BACKUP', `The file of backup ${backup.id} changed since it was taken (checksum mismatch): it is not restored`)
    const known = new Set(this.#migrations.names)
    const unknown = backup.migrations.filter((m) => !known.has(m))
    if (unknown.length > 0) {
      throw new TenantryError('INVALID_BACKUP', `Backup ${backup.id} was taken with migrations this deployment does not have: ${unknown.join(', ')}`, { details: { unknownMigrations: unknown } })
    }
  }

  /**
   * After a storage restore: the ledger becomes the backup's (its migration records came back
   * with the storage), then the migrations the backup was behind on run and are recorded.
   */
  async #relevel(tenantId: string, engine: DatabaseEngine, placement: EnginePlacement, backup: TenantBackup, onProgress?: (progress: BackupProgress) => void): Promise<string[]> {
    const row = await this.#catalog.db.selectFrom('tenant_backups').select('migrations').where('id', '=', backup.id).executeTakeFirstOrThrow()
    const ledger = JSON.parse(row.migrations) as Array<{ name: string; appliedAt: string }>
    await this.#catalog.db.transaction().execute(async (trx) => {
      await trx.deleteFrom('tenant_migrations').where('tenant_id', '=', tenantId).execute()
      if (ledger.length) await trx.insertInto('tenant_migrations').values(ledger.map((m) => ({ tenant_id: tenantId, migration: m.name, applied_at: m.appliedAt }))).execute()
    })
    onProgress?.({ step: 'migrate' })
    const handle = engine.open(placement, 'admin')
    try {
      const outcome = await migrateHandle(handle, this.#migrations, { tenantId, logger: this.#logger })
      if (outcome.error !== undefined) throw outcome.error
      await this.#catalog.recordMigrations(tenantId, outcome.executed)
      return outcome.applied.map((m) => (typeof m === 'string' ? m : (m as { name: string }).name))
    } finally {
      await handle.close()
    }
  }

  /** Row tenants: the tenant's rows, in one read transaction, in the export codec (no files, no secret names). */
  async #writeRows(tenant: TenantRecord, engine: DatabaseEngine, placement: EnginePlacement, location: string, onProgress?: (progress: BackupProgress) => void): Promise<void> {
    const file = await open(location, 'wx', 0o600)
    const handle = engine.open(placement, 'app')
    try {
      await snapshot(handle, async (db) => {
        const tables = await listTenantTables(handle, db)
        const header: ExportHeader = {
          format: EXPORT_FORMAT,
          version: EXPORT_VERSION,
          exportedAt: new Date().toISOString(),
          tenant: { id: tenant.id, slug: tenant.slug, name: tenant.name, status: tenant.status },
          source: { engine: engine.name, isolation: placement.isolation, dataSource: tenant.placement.dataSourceId },
          migrations: (await this.#catalog.ledger(tenant.id)).map((l) => l.migration),
          tables: tables.map(({ name, columns, references }) => ({ name, columns, references })),
          secretNames: [],
        }
        const rows: Record<string, number> = {}
        async function* lines(): AsyncGenerator<string> {
          yield exportLine(header)
          yield* exportRowLines(handle, db, tables, rows, onProgress && ((table, done) => onProgress({ step: 'rows', table, done, unit: 'rows' })))
          yield exportLine({ end: true, rows, files: 0, fileBytes: 0 })
        }
        await pipeline(Readable.from(lines()), createGzip(), file.createWriteStream())
      })
    } finally {
      await file.close().catch(() => undefined)
      await handle.close()
    }
  }

  /**
   * Row tenants in place: in one transaction on the tenant's own handle (its role sees its rows
   * alone), every one of its rows is deleted, children first, and the backup's inserted,
   * parents first. Other tenants' rows in the same tables are out of the handle's reach.
   */
  async #restoreRows(engine: DatabaseEngine, placement: EnginePlacement, location: string, failBeforeCommit: boolean, onProgress?: (progress: BackupProgress) => void): Promise<void> {
    const header = await readHeader(location)
    const handle = engine.open(placement, 'app')
    try {
      await handle.db.transaction().execute(async (trx) => {
        const current = await listTenantTables(handle, trx)
        const target = new Map(current.map((t) => [t.name, t]))
        for (const table of header.tables) {
          const mine = target.get(table.name)
          if (!mine) throw new TenantryError('INVALID_BACKUP', `Table "${table.name}" of the backup is no longer in the tenant's schema`)
          const missing = table.columns.filter((c) => !mine.columns.some((m) => m.name === c.name))
          if (missing.length) throw new TenantryError('INVALID_BACKUP', `Table "${table.name}" has no column ${missing.map((c) => `"${c.name}"`).join(', ')} any more`)
        }
        for (const table of [...current].reverse()) await trx.deleteFrom(table.name).execute()
        const tables = new Map(header.tables.map((t) => [t.name, t]))
        let batch: { table: string; rows: Array<Record<string, unknown>> } | undefined
        let written = 0
        const flush = async () => {
          if (!batch || batch.rows.length === 0) return
          const { table, rows } = batch
          batch = undefined
          await trx.insertInto(table).values(rows).execute()
          written += rows.length
          onProgress?.({ step: 'rows', table, done: written, unit: 'rows' })
        }
        let first = true
        let ended = false
        for await (const { value, number } of ndjson(location)) {
          if (first) {
            first = false
            continue
          }
          const entry = value as ExportLine
          if ('row' in entry) {
            const table = tables.get(entry.row)
            if (!table || !Array.isArray(entry.values) || entry.values.length !== table.columns.length) throw new TenantryError('INVALID_BACKUP', `Line ${number} of ${location} is not a row of the backup's tables`)
            if (batch && batch.table !== entry.row) await flush()
            batch ??= { table: entry.row, rows: [] }
            const record: Record<string, unknown> = {}
            table.columns.forEach((column, i) => {
              record[column.name] = decodeValue(entry.values[i] as EncodedValue, column.kind, handle.engine)
            })
            batch.rows.push(record)
            if (batch.rows.length >= Math.min(INSERT_BATCH_ROWS, Math.floor(MAX_BOUND_VALUES / Math.max(1, table.columns.length + 1)))) await flush()
          } else if ('end' in entry) {
            await flush()
            ended = true
          }
        }
        if (!ended) throw new TenantryError('INVALID_BACKUP', `${location} is cut short: it has no end line`)
        if (failBeforeCommit) throw new TenantryError('INTERNAL', 'Injected failure before the restored data committed')
      })
    } finally {
      await handle.close()
    }
  }

  /** The tenant, which must be ready or suspended. */
  async #serving(slug: string, what: string): Promise<TenantRecord> {
    assertValidSlug(slug)
    const tenant = await this.#catalog.findTenantBySlug(slug)
    if (!tenant) throw new TenantryError('TENANT_NOT_FOUND', `Tenant "${slug}" not found`)
    if (!SERVING.has(tenant.status)) {
      throw new TenantryError('INVALID_TRANSITION', `Tenant "${slug}" is ${tenant.status}: only ready or suspended tenants can be ${what}`, { details: { status: tenant.status } })
    }
    return tenant
  }
}

function toBackup(row: TenantBackupsTable): TenantBackup {
  return {
    id: row.id,
    tenantId: row.tenant_id,
    engine: row.engine,
    isolation: row.isolation,
    dataSource: row.data_source_id,
    method: row.method,
    location: row.location,
    bytes: Number(row.bytes),
    checksum: row.checksum,
    migrations: (JSON.parse(row.migrations) as Array<{ name: string }>).map((m) => m.name),
    createdAt: row.created_at,
    createdBy: row.created_by,
  }
}

async function digest(path: string, onProgress?: (progress: BackupProgress) => void): Promise<{ bytes: number; checksum: string }> {
  const hash = createHash('sha256')
  const total = (await stat(path)).size
  const stream = createReadStream(path)
  if (onProgress) {
    onProgress({ step: 'checksum', done: 0, total, unit: 'bytes' })
    stream.on('data', () => onProgress({ step: 'checksum', done: stream.bytesRead, total, unit: 'bytes' }))
  }
  await pipeline(stream, hash)
  return { bytes: total, checksum: hash.digest('hex') }
}


function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}
