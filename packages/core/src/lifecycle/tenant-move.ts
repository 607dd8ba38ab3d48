import { createHash } from 'node:crypto'
import { sql, type CompiledQuery, type Kysely, type QueryResult } from 'kysely'
import { TenantryError, isTenantryError } from '../errors.js'
import { assertValidIdentifier, assertValidSlug, quoteIdentifier } from '../identifiers.js'
import type { Catalog, Placement, TenantRecord } from '../catalog/catalog.js'
import type { DataSources } from '../data-sources/data-sources.js'
import type { DatabaseEngine, EngineHandle, EnginePlacement, Isolation } from '../engines/engine.js'
import { SILENT_LOGGER, type Logger } from '../logger.js'
import { migrateHandle, type TenantMigrationSet } from '../migrations/migration-set.js'
import type { Router } from '../router/router.js'
import { changeCapture, clearMovedMark, removeSharedRows, type ChangeCapture } from './change-capture.js'
import { decodeValue, encodeValue, type EncodedValue } from './export-format.js'
import { keyOf, listTenantTables, readPage, readRowsByKey, snapshot, type TenantTable } from './tenant-tables.js'
import { appQueryOf, bypassWriteGate, pauseWrites, type WriteGate } from './write-gate.js'
import { rowGroupRoleName, tenantRoleName } from '../engines/postgres/postgres-names.js'
import { SqliteEngine } from '../engines/sqlite/sqlite-engine.js'
import type { CheckpointOutcome } from '../engines/sqlite/sqlite-checkpoint.js'

/** The steps of a move, in order; a failpoint (`beforeStep`) can stop the process before any of them. */
export const MOVE_STEPS = ['record', 'create-target', 'capture', 'copy', 'catch-up', 'pause', 'flip', 'verify', 'cleanup'] as const
export type MoveStep = (typeof MOVE_STEPS)[number]

export interface MoveTenantOptions {
  /** The data source to move to (it may be the one the tenant is on, with another isolation). */
  dataSource: string
  /** @default the tenant's isolation where the target offers it, else the target's first */
  isolation?: Isolation
  /** Who asked, for the audit log. @default 'system' */
  actor?: string
  /** Hears of progress (a CLI's bar): the step, and rows copied of a table. */
  onProgress?: (progress: MoveProgress) => void
}

export interface MoveProgress {
  step: MoveStep
  table?: string
  /** Rows copied so far (the copy step), or changes left to apply (catch-up). */
  done?: number
  total?: number
}

export interface MoveTenantResult {
  tenantId: string
  slug: string
  from: Placement
  to: Placement
  /** Rows per table in the new placement when the routing flipped (equal to the old one's). */
  rows: Record<string, number>
  /** How long this process held the tenant's writes (freeze, last changes, flip), in ms. */
  pauseMs: number
  totalMs: number
  /** Row counts and checksums of every table matched between the copies at the flip. */
  verified: boolean
  /** The old copy was removed (only once verified). */
  oldCopyRemoved: boolean
  /** This call finished a move that an earlier one started (and was cut short). */
  resumed: boolean
}

interface MoveRow {
  tenant_id: string
  from_data_source_id: string
  from_isolation: Isolation
  from_locator: string
  to_data_source_id: string
  to_isolation: Isolation
  to_locator: string
  phase: string
  actor: string
  started_at: string
  updated_at: string
  flipped_at: string | null
}

/** Rows per insert at most during the copy (fewer for wide tables: SQLite binds at most 32766 values). */
const INSERT_BATCH_ROWS = 500
const MAX_BOUND_VALUES = 30_000
/** Changes applied per round while writes go on; the pause starts once fewer than this are left. */
const ROUND_CHANGES = 5_000
const SMALL_BACKLOG = 200
const MAX_ROUNDS = 50
/**
 * At the pause, how long the move waits for this process's writes already on their way to the old
 * placement (a statement's worth: a longer one meets the freeze and is refused, retryable).
 */
const SETTLE_MS = 250
/** Keys per re-read statement. */
const KEYS_PER_READ = 200
/** How often a running move refreshes its lock. */
const LOCK_HEARTBEAT_MS = 15_000
/** How often a move checkpoints the SQLite files it reads and writes, in a worker thread. */
const CHECKPOINT_EVERY_MS = 500
/** How long emptying the old SQLite copy's log is tried again while another checkpoint runs. */
const EMPTY_LOG_RETRY_MS = 2000

const ISOLATIONS: readonly Isolation[] = ['row', 'schema', 'database']

/**
 * Moves a tenant, live, to another data source or isolation (`tenantry.tenants.move`), in
 * steps that are each in the audit log:
 *
 * 1. `record`: the move's target and phase go into the catalog (`tenant_moves`) and the
 *    tenant becomes `moving`, which is still served, from the old placement, the whole time;
 * 2. `create-target`: the new placement's storage, migrated to the tenant's ledger;
 * 3. `capture`: triggers on the old placement record the key of every row written from now on;
 * 4. `copy`: a snapshot of every table, page by page, while writes go on;
 * 5. `catch-up`: the rows written meanwhile, re-read by key and upserted (or deleted), in
 *    rounds until few are left;
 * 6. `pause`: this process holds the tenant's writes (reads go on), the old placement refuses
 *    writes from anywhere else (`TENANT_MOVING`, retryable), and the last changes are applied;
 * 7. `flip`: one catalog transaction points the tenant at the new placement and makes it
 *    `ready`; the router drops its cached placement; writes resume, on the new placement;
 * 8. `verify`: row counts and checksums of every table, the old copy (frozen) against the new
 *    one as it was at the flip (a snapshot opened before writes resumed);
 * 9. `cleanup`: only then is the old copy removed.
 *
 * A move cut short before the flip (a failure, or kill -9) leaves the tenant on its old
 * placement: a failure gives up cleanly (the new storage removed, writes allowed again); after
 * kill -9 the tenant is served, `moving`, its old placement refusing writes if the kill came
 * during the pause, until the move is run again, which cleans what was left and starts the copy
 * over. Cut short after the flip, running it again finishes the cleanup.
 */
export class TenantMove {
  readonly #catalog: Catalog
  readonly #dataSources: DataSources
  readonly #migrations: TenantMigrationSet
  readonly #router: Router
  readonly #logger: Logger
  readonly #placementTtlMs: number
  readonly #beforeStep: ((step: MoveStep, tenant: { id: string; slug: string }) => void | Promise<void>) | undefined

  constructor(deps: {
    catalog: Catalog
    dataSources: DataSources
    migrations: TenantMigrationSet
    router: Router
    logger?: Logger
    /** How long other processes may trust a placement they resolved (the router's TTL): the old copy outlives it. */
    placementTtlMs?: number
    /** @internal fault injection for kill -9 tests */
    beforeStep?: (step: MoveStep, tenant: { id: string; slug: string }) => void | Promise<void>
  }) {
    this.#catalog = deps.catalog
    this.#dataSources = deps.dataSources
    this.#migrations = deps.migrations
    this.#router = deps.router
    this.#logger = deps.logger ?? SILENT_LOGGER
    this.#placementTtlMs = deps.placementTtlMs ?? 30_000
    this.#beforeStep = deps.beforeStep
  }

  async move(slug: string, options: MoveTenantOptions): Promise<MoveTenantResult> {
    assertValidSlug(slug)
    if (typeof options?.dataSource !== 'string' || options.dataSource === '') {
      throw new TenantryError('INVALID_OPTION', 'move needs the data source to move to: { dataSource }')
    }
    assertValidIdentifier('data source id', options.dataSource)
    if (options.isolation !== undefined && !ISOLATIONS.includes(options.isolation)) {
      throw new TenantryError('INVALID_OPTION', `isolation must be one of ${ISOLATIONS.join(', ')}, not ${JSON.stringify(options.isolation)}`)
    }
    const tenant = await this.#catalog.findTenantBySlug(slug)
    if (!tenant) throw new TenantryError('TENANT_NOT_FOUND', `Tenant "${slug}" not found`)
    const lock = await this.#catalog.acquireLock(`tenant-move:${tenant.id}`).catch((error: unknown) => {
      if (!isTenantryError(error, 'MIGRATION_LOCKED')) throw error
      const holder = error.details?.pid ? ` (pid ${String(error.details.pid)} on ${String(error.details.host)})` : ''
      throw new TenantryError('INVALID_TRANSITION', `Tenant "${slug}" is being moved by another call${holder}; wait for it to finish`, { cause: error, details: error.details })
    })
    const heartbeat = setInterval(() => {
      lock.heartbeat().catch((err: unknown) => this.#logger.warn({ err, slug }, 'Refreshing the move lock failed'))
    }, LOCK_HEARTBEAT_MS)
    heartbeat.unref()
    try {
      return await this.#move(tenant, options)
    } finally {
      clearInterval(heartbeat)
      await lock.release()
    }
  }

  async #move(tenant: TenantRecord, options: MoveTenantOptions): Promise<MoveTenantResult> {
    const started = Date.now()
    const actor = options.actor ?? 'system'
    const progress = options.onProgress ?? (() => undefined)
    const ref = { id: tenant.id, slug: tenant.slug }
    const earlier = await this.#record(tenant.id)
    if (earlier && earlier.phase !== 'copying') return this.#finish(tenant, earlier, { actor, started, pauseMs: 0, resumed: true, progress })

    const target = await this.#dataSources.engine(options.dataSource)
    const isolation = options.isolation ?? (target.isolations.includes(tenant.placement.isolation) ? tenant.placement.isolation : target.isolations[0]!)
    if (!target.isolations.includes(isolation)) {
      throw new TenantryError('UNSUPPORTED_PLACEMENT', `Data source "${options.dataSource}" (${target.name}) offers ${target.isolations.join(', ')} isolation, not ${isolation}`)
    }
    if (options.dataSource === tenant.placement.dataSourceId && isolation === tenant.placement.isolation) {
      throw new TenantryError('INVALID_OPTION', `Tenant "${tenant.slug}" is already on data source "${options.dataSource}" with ${isolation} isolation`)
    }
    if (!earlier && tenant.status !== 'ready') {
      throw new TenantryError('INVALID_TRANSITION', `Tenant "${tenant.slug}" is ${tenant.status}: only a ready tenant can be moved`, { details: { status: tenant.status } })
    }
    const sourceEngine = await this.#dataSources.engine(tenant.placement.dataSourceId)
    const from: EnginePlacement = { tenantId: tenant.id, ...tenant.placement }
    const to: EnginePlacement = { tenantId: tenant.id, isolation, locator: target.locatorFor(tenant.id, isolation) }
    const toPlacement: Placement = { dataSourceId: options.dataSource, isolation, locator: to.locator }

    await this.#step('record', ref, progress)
    const at = new Date().toISOString()
    if (earlier) {
      // A copy cut short (kill -9): what it left is removed, and the copy starts over.
      await this.#catalog.audit({ tenantId: tenant.id, action: 'tenant.move.resumed', actor, details: { from: tenant.placement, to: toPlacement, earlierTarget: targetOf(earlier) } })
      const earlierEngine = await this.#dataSources.engine(earlier.to_data_source_id)
      await this.#discardTarget(sourceEngine, from, tenant.placement.dataSourceId, earlierEngine, { tenantId: tenant.id, isolation: earlier.to_isolation, locator: earlier.to_locator })
      await this.#catalog.db
        .updateTable('tenant_moves')
        .set({ to_data_source_id: toPlacement.dataSourceId, to_isolation: isolation, to_locator: to.locator, phase: 'copying', actor, updated_at: at })
        .where('tenant_id', '=', tenant.id)
        .execute()
      if (tenant.status !== 'moving') await this.#catalog.transition(tenant.id, ['ready'], 'moving', { operation: 'move' })
    } else {
      const moved = await this.#catalog.db.transaction().execute(async (trx) => {
        const result = await trx
          .updateTable('tenants')
          .set({ status: 'moving', operation: 'move', status_reason: null, updated_at: at })
          .where('id', '=', tenant.id)
          .where('status', '=', 'ready')
          .executeTakeFirst()
        if (Number(result.numUpdatedRows) !== 1) return false
        await trx
          .insertInto('tenant_moves')
          .values({
            tenant_id: tenant.id,
            from_data_source_id: tenant.placement.dataSourceId,
            from_isolation: tenant.placement.isolation,
            from_locator: tenant.placement.locator,
            to_data_source_id: toPlacement.dataSourceId,
            to_isolation: isolation,
            to_locator: to.locator,
            phase: 'copying',
            actor,
            started_at: at,
            updated_at: at,
            flipped_at: null,
          })
          .execute()
        return true
      })
      if (!moved) throw new TenantryError('INVALID_TRANSITION', `Tenant "${tenant.slug}" changed status before its move began; try again`)
      await this.#catalog.audit({ tenantId: tenant.id, action: 'tenant.move.started', actor, details: { from: tenant.placement, to: toPlacement } })
    }
    this.#router.invalidate(tenant.id)

    const sourceApp = sourceEngine.open(from, 'app')
    const sourceAdmin = sourceEngine.open(from, 'admin')
    let capture: ChangeCapture | undefined
    let gate: WriteGate | undefined
    let targetApp: EngineHandle | undefined
    let verification: Promise<Map<string, TableSum>> | undefined
    const flipDone = deferred()
    /** The released gate, sending writes of old handles to the new placement until the move ends. */
    let redirecting: WriteGate | undefined
    let pauseMs = 0
    let flipped = false
    const checkpoints = new OffThreadCheckpoints(
      [
        { engine: sourceEngine, placement: from },
        { engine: target, placement: to },
      ],
      this.#logger,
    )
    try {
      await this.#step('create-target', ref, progress)
      if (sharesRowRole(sourceEngine, from, target, to)) await holdRowAccess(sourceAdmin, tenant.id, tenant.placement.dataSourceId)
      await this.#createTarget(tenant.id, target, to)
      await this.#catalog.audit({ tenantId: tenant.id, action: 'tenant.move.target_created', actor, details: { to: toPlacement } })
      targetApp = target.open(to, 'app')
      // From here on the log of a SQLite copy grows behind long reads: checkpointed off the event loop.
      checkpoints.start()

      await this.#step('capture', ref, progress)
      const tables = await listTenantTables(sourceApp, sourceApp.db)
      const targets = matchTables(tables, await listTenantTables(targetApp, targetApp.db))
      capture = changeCapture(sourceAdmin, tenant.id)
      await capture.install(tables)
      await this.#catalog.audit({ tenantId: tenant.id, action: 'tenant.move.capturing', actor, details: { tables: tables.map((t) => t.name) } })

      await this.#step('copy', ref, progress)
      const copied = await this.#copy(sourceApp, targetApp, tables, progress)
      await this.#catalog.audit({ tenantId: tenant.id, action: 'tenant.move.copied', actor, details: { rows: copied } })

      await this.#step('catch-up', ref, progress)
      const apply = (limit: number) => this.#applyChanges(capture!, sourceApp, targetApp!, tables, limit)
      let rounds = 0
      for (; rounds < MAX_ROUNDS; rounds++) {
        const applied = await apply(ROUND_CHANGES)
        progress({ step: 'catch-up', done: applied })
        if (applied < SMALL_BACKLOG) break
      }
      await this.#catalog.audit({ tenantId: tenant.id, action: 'tenant.move.caught_up', actor, details: { rounds } })

      await this.#step('pause', ref, progress)
      const paused = Date.now()
      gate = pauseWrites(tenant.id)
      // New writes of this process wait at the gate; those already on their way commit (and are captured) first.
      await gate.settled(SETTLE_MS)
      await capture.freeze()
      while ((await apply(ROUND_CHANGES)) > 0) progress({ step: 'pause' })
      await this.#levelSequences(target, to, targets)
      // The new copy as it is at the flip, for the verify step: a snapshot opened before writes resume.
      const snapshotOpen = deferred()
      const app = targetApp
      verification = snapshot(app, async (db) => {
        await sql`select 1`.execute(db)
        if (app.engine === 'sqlite') await sql.raw(`select count(*) from sqlite_master`).execute(db)
        snapshotOpen.resolve()
        await flipDone.promise
        return sums(app, db, targets.map((t) => t.target))
      })
      verification.catch(() => undefined)
      await Promise.race([snapshotOpen.promise, verification])

      await this.#step('flip', ref, progress)
      await this.#catalog.db.transaction().execute(async (trx) => {
        const now = new Date().toISOString()
        await trx
          .updateTable('placements')
          .set({ data_source_id: toPlacement.dataSourceId, isolation, locator: to.locator })
          .where('tenant_id', '=', tenant.id)
          .execute()
        const ready = await trx.updateTable('tenants').set({ status: 'ready', updated_at: now, status_reason: null }).where('id', '=', tenant.id).where('status', '=', 'moving').executeTakeFirst()
        if (Number(ready.numUpdatedRows) !== 1) throw new TenantryError('INVALID_TRANSITION', `Tenant "${tenant.slug}" left moving while being moved`)
        await trx.updateTable('tenant_moves').set({ phase: 'flipped', flipped_at: now, updated_at: now }).where('tenant_id', '=', tenant.id).execute()
      })
      flipped = true
      this.#router.invalidate(tenant.id)
      // The writes that waited go on, on the new placement: their callers saw a pause, not an error.
      gate.release('flipped', redirectTo(app))
      redirecting = gate
      gate = undefined
      pauseMs = Date.now() - paused
      flipDone.resolve()
      await this.#catalog.audit({ tenantId: tenant.id, action: 'tenant.move.flipped', actor, details: { from: tenant.placement, to: toPlacement, pauseMs } })
    } catch (error) {
      if (!flipped) {
        // The verify snapshot (if open) ends first: it holds locks that removing the new storage needs.
        flipDone.resolve()
        await verification?.catch(() => undefined)
        await this.#giveUp(tenant, { sourceEngine, from, target, to, capture, gate, actor, error })
        await checkpoints.stop()
        await Promise.allSettled([sourceApp.close(), sourceAdmin.close(), targetApp?.close()])
        throw error
      }
      // Flipped, then something failed: the tenant is on the new placement; running the move again finishes it.
      gate?.release('flipped')
      flipDone.resolve()
      this.#logger.warn({ err: error, tenantId: tenant.id }, 'A move failed after its flip; run it again to verify and remove the old copy')
    }
    const record = (await this.#record(tenant.id))!
    try {
      const targetSums = await verification!
      return await this.#finish(tenant, record, { actor, started, pauseMs, resumed: Boolean(earlier), progress, targetSums, sourceApp, sourceAdmin, checkpoints })
    } finally {
      await checkpoints.stop()
      await redirecting?.close()
      await Promise.allSettled([sourceApp.close(), sourceAdmin.close(), targetApp?.close()])
    }
  }

  /** Verify and cleanup: the old copy is compared with the new one as it was at the flip, and removed only if they match. */
  async #finish(
    tenant: TenantRecord,
    record: MoveRow,
    context: {
      actor: string
      started: number
      pauseMs: number
      resumed: boolean
      progress: (p: MoveProgress) => void
      targetSums?: Map<string, TableSum>
      sourceApp?: EngineHandle
      sourceAdmin?: EngineHandle
      checkpoints?: OffThreadCheckpoints
    },
  ): Promise<MoveTenantResult> {
    const ref = { id: tenant.id, slug: tenant.slug }
    const fromPlacement: Placement = { dataSourceId: record.from_data_source_id, isolation: record.from_isolation, locator: record.from_locator }
    const toPlacement = targetOf(record)
    const from: EnginePlacement = { tenantId: tenant.id, ...fromPlacement }
    const sourceEngine = await this.#dataSources.engine(fromPlacement.dataSourceId)
    const targetEngine = await this.#dataSources.engine(toPlacement.dataSourceId)
    const sourceApp = context.sourceApp ?? sourceEngine.open(from, 'app')
    const sourceAdmin = context.sourceAdmin ?? sourceEngine.open(from, 'admin')
    const owned = !context.sourceApp
    try {
      let verified = record.phase === 'verified'
      let rows: Record<string, number> = {}
      if (!verified) {
        await this.#step('verify', ref, context.progress)
        // Run again after the flip, the new copy can only be compared as it is now: equal if nothing was written since.
        let targetSums = context.targetSums
        if (!targetSums) {
          const targetApp = targetEngine.open({ tenantId: tenant.id, ...toPlacement }, 'app')
          try {
            targetSums = await snapshot(targetApp, async (db) => sums(targetApp, db, await listTenantTables(targetApp, db)))
          } finally {
            await targetApp.close()
          }
        }
        const sourceSums = await snapshot(sourceApp, async (db) => sums(sourceApp, db, await listTenantTables(sourceApp, db)))
        const mismatches = [...sourceSums].filter(([name, sum]) => {
          const other = targetSums!.get(name)
          return !other || other.rows !== sum.rows || other.checksum !== sum.checksum
        })
        rows = Object.fromEntries([...targetSums].map(([name, sum]) => [name, sum.rows]))
        verified = mismatches.length === 0
        if (!verified) {
          await this.#catalog.audit({
            tenantId: tenant.id,
            action: 'tenant.move.verify_failed',
            actor: context.actor,
            details: { tables: mismatches.map(([name, sum]) => ({ table: name, rows: sum.rows, newRows: targetSums!.get(name)?.rows ?? null })), oldCopyKept: fromPlacement },
          })
          return { tenantId: tenant.id, slug: tenant.slug, from: fromPlacement, to: toPlacement, rows, pauseMs: context.pauseMs, totalMs: Date.now() - context.started, verified, oldCopyRemoved: false, resumed: context.resumed }
        }
        await this.#catalog.db.updateTable('tenant_moves').set({ phase: 'verified', updated_at: new Date().toISOString() }).where('tenant_id', '=', tenant.id).execute()
        await this.#catalog.audit({ tenantId: tenant.id, action: 'tenant.move.verified', actor: context.actor, details: { rows } })
      }

      await this.#step('cleanup', ref, context.progress)
      // Other processes trust a placement they resolved before the move for up to the router's TTL:
      // the old copy (which refuses their writes) stays readable until then.
      const wait = Date.parse(record.started_at) + this.#placementTtlMs - Date.now()
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait))
      if (await sourceEngine.exists(from)) {
        await changeCapture(sourceAdmin, tenant.id).retire()
        if (sourceEngine instanceof SqliteEngine) {
          // The last close of the old file would checkpoint its log on the event loop: emptied in a worker first.
          await context.checkpoints?.forget(from)
          const outcome = await emptyLog(sourceEngine, from)
          if (outcome.busy) this.#logger.warn({ tenantId: tenant.id }, 'A reader kept the old SQLite copy from being checkpointed before its removal')
          await Promise.allSettled([sourceApp.close(), sourceAdmin.close()])
        }
        await this.#removeStorage(sourceEngine, from, targetEngine)
      }
      if (sharesRowRole(sourceEngine, from, targetEngine, { ...toPlacement, tenantId: tenant.id })) {
        // The role is the new copy's alone again: out of the row group, inheriting nothing.
        await releaseRowAccess(sourceAdmin, tenant.id, fromPlacement.dataSourceId, 'leave')
      }
      await this.#catalog.db.deleteFrom('tenant_moves').where('tenant_id', '=', tenant.id).execute()
      const totalMs = Date.now() - context.started
      await this.#catalog.audit({
        tenantId: tenant.id,
        action: 'tenant.move.succeeded',
        actor: context.actor,
        details: { from: fromPlacement, to: toPlacement, pauseMs: context.pauseMs, totalMs, resumed: context.resumed },
      })
      return { tenantId: tenant.id, slug: tenant.slug, from: fromPlacement, to: toPlacement, rows, pauseMs: context.pauseMs, totalMs, verified: true, oldCopyRemoved: true, resumed: context.resumed }
    } finally {
      if (owned) await Promise.allSettled([sourceApp.close(), sourceAdmin.close()])
    }
  }

  /** The new placement's storage, migrated to the tenant's level; leftovers of an earlier attempt are gone by now. */
  async #createTarget(tenantId: string, engine: DatabaseEngine, placement: EnginePlacement): Promise<void> {
    await engine.create(placement)
    const ledger = new Set((await this.#catalog.ledger(tenantId)).map((l) => l.migration))
    const derived = new Set(this.#migrations.derived.map((d) => d.name))
    const app = this.#migrations.names.filter((n) => !derived.has(n))
    const last = app.reduce((at, name, i) => (ledger.has(name) ? i : at), -1)
    const upTo = last === app.length - 1 || last === -1 ? undefined : app[last]
    const admin = engine.open(placement, 'admin')
    try {
      const outcome = await migrateHandle(admin, this.#migrations, { tenantId, logger: this.#logger, ...(upTo === undefined ? {} : { upTo }) })
      if (outcome.error !== undefined) throw outcome.error
      await clearMovedMark(admin, tenantId)
    } finally {
      await admin.close()
    }
  }

  /** The snapshot of every table, parents first, into the new placement (which is empty). */
  async #copy(source: EngineHandle, target: EngineHandle, tables: readonly TenantTable[], progress: (p: MoveProgress) => void): Promise<Record<string, number>> {
    const rows: Record<string, number> = {}
    await snapshot(source, async (db) => {
      for (const table of tables) {
        rows[table.name] = 0
        const batch = Math.min(INSERT_BATCH_ROWS, Math.max(1, Math.floor(MAX_BOUND_VALUES / Math.max(1, table.columns.length + 1))))
        let after: string | number | undefined
        do {
          const page = await readPage(source, db, table, after)
          for (let i = 0; i < page.rows.length; i += batch) {
            const values = page.rows.slice(i, i + batch).map((row) => record(table, row, target.engine))
            await bypassWriteGate(() => target.db.insertInto(table.name).values(values).execute())
          }
          rows[table.name]! += page.rows.length
          progress({ step: 'copy', table: table.name, done: rows[table.name]! })
          after = page.next
        } while (after !== undefined)
      }
    })
    return rows
  }

  /**
   * One round: at most `limit` captured changes, their rows re-read in one snapshot of the old
   * placement and written to the new one in one transaction (deletes children first, upserts
   * parents first), then forgotten. Returns how many changes it applied.
   */
  async #applyChanges(
    capture: ChangeCapture,
    source: EngineHandle,
    target: EngineHandle,
    tables: readonly TenantTable[],
    limit: number,
  ): Promise<number> {
    let changes = await capture.take(limit)
    if (changes.count === 0) return 0
    for (let attempt = 0; ; attempt++) {
      const found = await snapshot(source, async (db) => {
        const rows = new Map<string, { upserts: unknown[][]; deletes: unknown[][] }>()
        for (const table of tables) {
          const keys = changes.keys.get(table.name)
          if (!keys) continue
          const upserts: unknown[][] = []
          for (let i = 0; i < keys.length; i += KEYS_PER_READ) upserts.push(...(await readRowsByKey(source, db, table, keys.slice(i, i + KEYS_PER_READ))))
          const present = new Set(upserts.map((row) => JSON.stringify(keyOf(table, row).map(normalKey))))
          rows.set(table.name, { upserts, deletes: keys.filter((key) => !present.has(JSON.stringify(key.map(normalKey)))) })
        }
        return rows
      })
      try {
        await bypassWriteGate(() =>
          target.db.transaction().execute(async (trx) => {
            if (target.engine === 'sqlite') await sql`pragma defer_foreign_keys = on`.execute(trx)
            const write = async (table: TenantTable, kind: 'deletes' | 'upserts') => {
              const changed = found.get(table.name)
              if (!changed) return
              if (kind === 'deletes') {
                for (const key of changed.deletes) {
                  let query = trx.deleteFrom(table.name)
                  table.primaryKey.forEach((column, i) => (query = query.where(column, '=', decodeKey(key[i], target.engine))))
                  await query.execute()
                }
                return
              }
              if (changed.upserts.length === 0) return
              const conflict = target.shared ? ['tenant_id', ...table.primaryKey] : table.primaryKey
              const others = table.columns.map((c) => c.name).filter((c) => !table.primaryKey.includes(c))
              for (let i = 0; i < changed.upserts.length; i += INSERT_BATCH_ROWS) {
                const values = changed.upserts.slice(i, i + INSERT_BATCH_ROWS).map((row) => record(table, row, target.engine))
                await trx
                  .insertInto(table.name)
                  .values(values)
                  .onConflict((oc) => {
                    const on = oc.columns(conflict as never)
                    return others.length === 0 ? on.doNothing() : on.doUpdateSet(Object.fromEntries(others.map((c) => [c, sql.ref(`excluded.${c}`)])) as never)
                  })
                  .execute()
              }
            }
            const order = attempt % 2 === 0 ? (['deletes', 'upserts'] as const) : (['upserts', 'deletes'] as const)
            for (const kind of order) {
              const sequence = kind === 'deletes' ? [...tables].reverse() : tables
              for (const table of sequence) await write(table, kind)
            }
          }),
        )
        break
      } catch (error) {
        // A row re-read now may point at a parent whose change is past this round's limit: retry with every change.
        if (attempt >= 3) throw error
        changes = await capture.take(Number.MAX_SAFE_INTEGER)
      }
    }
    await capture.ack(changes.upTo)
    return changes.count
  }

  /** Postgres: serial and identity sequences of the new placement past the ids copied, so that the next insert does not collide. */
  async #levelSequences(engine: DatabaseEngine, placement: EnginePlacement, targets: readonly MatchedTable[]): Promise<void> {
    if (engine.name !== 'postgres') return
    const admin = engine.open(placement, 'admin')
    try {
      await admin.db.transaction().execute(async (trx) => {
        // Shared tables: RLS shows the admin this tenant's rows once it names the tenant.
        if (admin.shared) await sql`select set_config('tenantry.tenant_id', ${placement.tenantId}, true)`.execute(trx)
        for (const { target } of targets) {
          for (const [column, sequence] of Object.entries(target.sequences)) {
            const table = admin.schema ? sql.id(admin.schema, target.name) : sql.id(target.name)
            await sql`select setval(${sequence}::regclass, greatest((select max(${sql.id(column)}) from ${table})::bigint, coalesce(pg_sequence_last_value(${sequence}::regclass), 0), 1))`.execute(trx)
          }
        }
      })
    } finally {
      await admin.close()
    }
  }

  /** A move given up before its flip: writes allowed again, the new storage removed, the tenant `ready` where it was. */
  async #giveUp(
    tenant: TenantRecord,
    parts: {
      sourceEngine: DatabaseEngine
      from: EnginePlacement
      target: DatabaseEngine
      to: EnginePlacement
      capture: ChangeCapture | undefined
      gate: WriteGate | undefined
      actor: string
      error: unknown
    },
  ): Promise<void> {
    const problems: string[] = []
    const attempt = async (what: string, fn: () => Promise<unknown>) => {
      try {
        await fn()
      } catch (err) {
        problems.push(`${what}: ${message(err)}`)
        this.#logger.warn({ err, tenantId: tenant.id }, `Undoing a failed move: ${what} failed`)
      }
    }
    if (parts.capture) await attempt('end change capture', () => parts.capture!.uninstall())
    parts.gate?.release('aborted')
    await attempt('remove the new storage', () => this.#removeStorage(parts.target, parts.to, parts.sourceEngine))
    if (sharesRowRole(parts.sourceEngine, parts.from, parts.target, parts.to)) await attempt('restore the row role', () => this.#restoreRowRole(parts.sourceEngine, parts.from, tenant.placement.dataSourceId))
    await attempt('record', async () => {
      await this.#catalog.db.deleteFrom('tenant_moves').where('tenant_id', '=', tenant.id).execute()
      await this.#catalog.transition(tenant.id, ['moving'], 'ready')
    })
    this.#router.invalidate(tenant.id)
    await this.#catalog
      .audit({ tenantId: tenant.id, action: 'tenant.move.failed', actor: parts.actor, details: { error: message(parts.error), ...(problems.length ? { cleanup: problems } : {}) } })
      .catch(() => undefined)
  }

  /** What a copy cut short left: capture on the old placement (it keeps serving), and the new storage. */
  async #discardTarget(sourceEngine: DatabaseEngine, from: EnginePlacement, sourceDataSource: string, targetEngine: DatabaseEngine, to: EnginePlacement): Promise<void> {
    const admin = sourceEngine.open(from, 'admin')
    try {
      await changeCapture(admin, from.tenantId).uninstall()
    } finally {
      await admin.close()
    }
    await this.#removeStorage(targetEngine, to, sourceEngine)
    if (sharesRowRole(sourceEngine, from, targetEngine, to)) await this.#restoreRowRole(sourceEngine, from, sourceDataSource)
  }

  /** The row copy stays: its role inherits from the row group again, and loses the grants the move gave it. */
  async #restoreRowRole(engine: DatabaseEngine, from: EnginePlacement, dataSourceId: string): Promise<void> {
    const admin = engine.open(from, 'admin')
    try {
      await releaseRowAccess(admin, from.tenantId, dataSourceId, 'stay')
    } finally {
      await admin.close()
    }
  }

  /**
   * Removes one copy of the tenant. Where both copies are on Postgres they share the tenant's
   * login role (roles belong to the server, not to a database): the copy goes, the role stays.
   */
  async #removeStorage(engine: DatabaseEngine, placement: EnginePlacement, other: DatabaseEngine): Promise<void> {
    if (engine.name === 'postgres' && placement.isolation === 'row') {
      const admin = engine.open(placement, 'admin')
      try {
        await removeSharedRows(admin, placement.tenantId, await listTenantTables(admin, admin.db))
      } finally {
        await admin.close()
      }
      // No rows left for the engine's drop to delete: it removes the tenant's role, unless the other copy needs it.
      if (other.name !== 'postgres') await engine.drop(placement)
      return
    }
    if (engine.name !== 'postgres' || other.name !== 'postgres') {
      if (await engine.exists(placement).catch(() => true)) await engine.drop(placement)
      return
    }
    if (placement.isolation === 'schema') {
      const admin = engine.open(placement, 'admin')
      try {
        await sql`drop schema if exists ${sql.id(placement.locator)} cascade`.execute(admin.db)
      } finally {
        await admin.close()
      }
      return
    }
    // A database of its own: dropped from the data source's main database, where schema or row tenants live.
    const main = engine.isolations.find((i) => i !== 'database')
    if (!main) {
      await engine.drop(placement)
      return
    }
    const outside = engine.open({ ...placement, isolation: main }, 'admin')
    try {
      await outsideTransaction(outside.db, `drop database if exists ${quoteIdentifier(placement.locator)} with (force)`)
    } finally {
      await outside.close()
    }
  }

  async #record(tenantId: string): Promise<MoveRow | undefined> {
    return (await this.#catalog.db.selectFrom('tenant_moves').selectAll().where('tenant_id', '=', tenantId).executeTakeFirst()) as MoveRow | undefined
  }

  async #step(step: MoveStep, tenant: { id: string; slug: string }, progress: (p: MoveProgress) => void): Promise<void> {
    progress({ step })
    await this.#beforeStep?.(step, tenant)
  }
}

/**
 * Checkpoints of the SQLite files of a move (old and new copy), in a worker thread every
 * `CHECKPOINT_EVERY_MS` while this process's connections to them are held from checkpointing
 * themselves (`SqliteEngine.holdCheckpoints`): better-sqlite3 runs SQLite on the event loop, and
 * the log that grows behind the copy's read snapshot would otherwise be copied back by the first
 * commit after it (or the last close), holding every request of the process for seconds.
 */
class OffThreadCheckpoints {
  readonly #files: Array<{ engine: SqliteEngine; placement: EnginePlacement }>
  /** The files whose engines hold the tenant's checkpoints, released at `stop` even once forgotten. */
  readonly #held: Array<{ engine: SqliteEngine; placement: EnginePlacement }>
  readonly #logger: Logger
  #timer: NodeJS.Timeout | undefined
  #running: Promise<void> | undefined
  #started = false

  constructor(files: ReadonlyArray<{ engine: DatabaseEngine; placement: EnginePlacement }>, logger: Logger) {
    this.#files = files.flatMap((f) => (f.engine instanceof SqliteEngine ? [{ engine: f.engine, placement: f.placement }] : []))
    this.#held = [...this.#files]
    this.#logger = logger
  }

  start(): void {
    if (this.#files.length === 0 || this.#started) return
    this.#started = true
    for (const { engine, placement } of this.#held) engine.holdCheckpoints(placement.tenantId, true)
    this.#timer = setInterval(() => void this.#tick(), CHECKPOINT_EVERY_MS)
    this.#timer.unref()
  }

  /** Stops checkpointing `placement` (its file is about to go), once a running checkpoint is done. */
  async forget(placement: EnginePlacement): Promise<void> {
    const at = this.#files.findIndex((f) => f.placement.locator === placement.locator && f.placement.isolation === placement.isolation)
    await this.#running
    if (at >= 0) this.#files.splice(at, 1)
  }

  /** A last checkpoint of each file left, then the connections checkpoint themselves again. */
  async stop(): Promise<void> {
    if (!this.#started) return
    this.#started = false
    clearInterval(this.#timer)
    await this.#running
    await this.#checkpointAll()
    // Released per tenant: the same engine may hold both files (one tenant id), so after the last checkpoint.
    for (const { engine, placement } of this.#held) engine.holdCheckpoints(placement.tenantId, false)
  }

  #tick(): Promise<void> {
    this.#running ??= this.#checkpointAll().finally(() => (this.#running = undefined))
    return this.#running
  }

  async #checkpointAll(): Promise<void> {
    for (const { engine, placement } of [...this.#files]) {
      try {
        if (await engine.exists(placement)) await engine.checkpoint(placement, 'PASSIVE')
      } catch (err) {
        this.#logger.warn({ err, tenantId: placement.tenantId }, 'Checkpointing a SQLite copy of a moving tenant failed')
      }
    }
  }
}

/**
 * Empties the log of a SQLite copy (a TRUNCATE checkpoint in a worker thread). A checkpoint that
 * finds another one running (a handle's close checkpoints a grown log too) is answered busy at
 * once, without SQLite's busy handler: tried again for up to `EMPTY_LOG_RETRY_MS`. Readers, which
 * the busy handler does wait for, are not waited for again.
 */
async function emptyLog(engine: SqliteEngine, placement: EnginePlacement): Promise<CheckpointOutcome> {
  const until = Date.now() + EMPTY_LOG_RETRY_MS
  for (;;) {
    const started = Date.now()
    const outcome = await engine.checkpoint(placement, 'TRUNCATE')
    const waitedForReaders = Date.now() - started >= EMPTY_LOG_RETRY_MS
    if (!outcome.busy || waitedForReaders || Date.now() >= until) return outcome
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

/** A source table and the same table in the new placement (its columns in the source's order). */
interface MatchedTable {
  source: TenantTable
  target: TenantTable
}

function matchTables(sources: readonly TenantTable[], targets: readonly TenantTable[]): MatchedTable[] {
  const byName = new Map(targets.map((t) => [t.name, t]))
  return sources.map((source) => {
    const target = byName.get(source.name)
    if (!target) throw new TenantryError('UNSUPPORTED_PLACEMENT', `Table "${source.name}" is not in the new placement after its migrations`)
    const columns = source.columns.map((c) => {
      const found = target.columns.find((t) => t.name === c.name)
      if (!found) throw new TenantryError('UNSUPPORTED_PLACEMENT', `Table "${source.name}" of the new placement has no column "${c.name}"`)
      return found
    })
    return { source, target: { ...target, columns } }
  })
}

function targetOf(row: MoveRow): Placement {
  return { dataSourceId: row.to_data_source_id, isolation: row.to_isolation, locator: row.to_locator }
}

/** A row read from the old placement → what the new placement's driver binds (through the export codec). */
function record(table: TenantTable, row: readonly unknown[], engine: string): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  table.columns.forEach((column, i) => {
    out[column.name] = decodeValue(encodeValue(row[i], column.kind), column.kind, engine)
  })
  return out
}

/** A key value as the capture recorded it (JSON) and as `readRowsByKey` gives it back, compared as the same. */
function normalKey(value: unknown): unknown {
  if (typeof value === 'bigint') return Number(value)
  if (typeof value === 'string' && /^-?\d+$/.test(value) && Number.isSafeInteger(Number(value))) return Number(value)
  return value
}

function decodeKey(value: unknown, engine: string): unknown {
  if (typeof value === 'boolean' && engine === 'sqlite') return value ? 1 : 0
  return value
}

interface TableSum {
  rows: number
  checksum: string
}

/**
 * Row count and an order-independent checksum of every table (the sum of each row's hash,
 * over the export codec's engine-neutral form, JSON keys sorted): equal on two engines exactly
 * when they hold the same rows.
 */
async function sums(handle: EngineHandle, db: Kysely<any>, tables: readonly TenantTable[]): Promise<Map<string, TableSum>> {
  const out = new Map<string, TableSum>()
  for (const table of tables) {
    let rows = 0
    let total = 0n
    const order = table.columns.map((c, i) => ({ name: c.name, i })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    let after: string | number | undefined
    do {
      const page = await readPage(handle, db, table, after)
      for (const row of page.rows) {
        const line = stable(order.map(({ name, i }) => [name, encodeValue(row[i], table.columns[i]!.kind)]))
        total = (total + createHash('sha256').update(line).digest().readBigUInt64BE(0)) & 0xffffffffffffffffn
        rows += 1
      }
      after = page.next
    } while (after !== undefined)
    out.set(table.name, { rows, checksum: total.toString(16) })
  }
  return out
}

/** JSON with object keys sorted, so that Postgres's jsonb (which reorders keys) and SQLite's text compare equal. */
function stable(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stable).join(',')}]`
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, EncodedValue>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stable(v)}`).join(',')}}`
  }
  return JSON.stringify(value) ?? 'null'
}


/**
 * Where a write that waited at the gate runs once the tenant flipped: its query tree (as the
 * caller's handle built it), compiled for the new placement's engine and run on the move's own
 * app handle of it, which outlives every such write (`WriteGate.drained`).
 */
function redirectTo(handle: EngineHandle): (query: CompiledQuery) => Promise<QueryResult<unknown>> {
  return (query) => {
    const executor = handle.db.getExecutor()
    return executor.executeQuery(executor.compileQuery(executor.transformQuery(appQueryOf(query), query.queryId), query.queryId))
  }
}

function deferred(): { promise: Promise<void>; resolve(): void } {
  let resolve!: () => void
  const promise = new Promise<void>((r) => (resolve = r))
  return { promise, resolve }
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}

/**
 * A statement Postgres refuses inside a transaction (`DROP DATABASE`), on a handle whose dialect
 * wraps raw SQL in a scoping transaction: sent as a compiled query that is not raw, which the
 * scoped connection passes through as it is. The text is built from checked identifiers only.
 */
function outsideTransaction(db: Kysely<any>, text: string): Promise<unknown> {
  const query = { sql: text, parameters: [], query: { kind: 'DropTableNode' }, queryId: { queryId: 'tenantry-move' } } as unknown as CompiledQuery
  return db.executeQuery(query)
}

/**
 * A row copy and a schema or database copy of one tenant on Postgres log in as the same role
 * (roles belong to the server). Creating the second makes the role NOINHERIT, which would cut
 * the row copy off from the row group's privileges: `holdRowAccess` first grants the role the
 * group's privileges directly (RLS still confines it to its rows), `releaseRowAccess` takes
 * them back once one copy is left.
 */
function sharesRowRole(sourceEngine: DatabaseEngine, from: EnginePlacement, target: DatabaseEngine, to: EnginePlacement): boolean {
  return sourceEngine.name === 'postgres' && target.name === 'postgres' && from.isolation === 'row' && to.isolation !== 'row'
}

const ROW_TABLE_PRIVILEGES = ['SELECT', 'INSERT', 'UPDATE', 'DELETE']

async function holdRowAccess(admin: EngineHandle, tenantId: string, dataSourceId: string): Promise<void> {
  const role = sql.id(tenantRoleName(tenantId))
  const group = rowGroupRoleName(dataSourceId)
  const grants = (
    await sql<{ table: string; privilege: string }>`select c.relname as table, p.privilege from pg_class c join pg_namespace n on n.oid = c.relnamespace
      cross join unnest(${ROW_TABLE_PRIVILEGES}::text[]) as p(privilege)
      where n.nspname = ${admin.schema!} and c.relkind in ('r', 'p') and has_table_privilege(${group}, c.oid, p.privilege)`.execute(admin.db)
  ).rows
  await admin.db.transaction().execute(async (trx) => {
    await sql`grant usage on schema ${sql.id(admin.schema!)} to ${role}`.execute(trx)
    for (const grant of grants) await sql`grant ${sql.raw(grant.privilege)} on ${sql.id(admin.schema!, grant.table)} to ${role}`.execute(trx)
    await sql`grant usage, select on all sequences in schema ${sql.id(admin.schema!)} to ${role}`.execute(trx)
  })
}

async function releaseRowAccess(admin: EngineHandle, tenantId: string, dataSourceId: string, copy: 'stay' | 'leave'): Promise<void> {
  const role = sql.id(tenantRoleName(tenantId))
  await admin.db.transaction().execute(async (trx) => {
    if (copy === 'stay') await sql`alter role ${role} inherit`.execute(trx)
    await sql`revoke all on all tables in schema ${sql.id(admin.schema!)} from ${role}`.execute(trx)
    await sql`revoke all on all sequences in schema ${sql.id(admin.schema!)} from ${role}`.execute(trx)
    await sql`revoke usage on schema ${sql.id(admin.schema!)} from ${role}`.execute(trx)
    if (copy === 'leave') {
      await sql`revoke ${sql.id(rowGroupRoleName(dataSourceId))} from ${role}`.execute(trx)
      await sql`alter role ${role} noinherit`.execute(trx)
    }
  })
}
