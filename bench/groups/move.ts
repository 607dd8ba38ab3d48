// `npm run bench -- --only move`: live moves of a large tenant (issue 13) between SQLite and
// Postgres placements while a writer keeps inserting: how long the writes were paused (the
// goal: at most one second, whatever the size), the whole move, the slowest single write the
// writer saw (it includes the event loop's stalls, not only the pause), and the event loop's
// longest stall during the move (perf_hooks.monitorEventLoopDelay).
// With `--full`, also a ~100 MB SQLite tenant: moved to a Postgres schema the same way, and
// exported and imported, in MB/s against a plain copyFile of its SQLite file (the disk's limit).
import { copyFile, rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { createTenantry, isTenantryError, type Isolation, type Tenantry } from 'tenantry'
import { createTestDatabase, dropAppRoles, findPostgres } from 'tenantry/testing'
import { fmt, type BenchContext } from '../harness.js'

const migrations = {
  '0001_items': {
    up: async (db: any, { engine }: { engine: string }) => {
      await db.schema
        .createTable('items')
        .addColumn('id', 'integer', (c: any) => (engine === 'postgres' ? c.primaryKey().generatedByDefaultAsIdentity() : c.primaryKey()))
        .addColumn('n', 'integer', (c: any) => c.notNull())
        .addColumn('label', 'text')
        .execute()
    },
  },
}

export async function moveGroup(ctx: BenchContext): Promise<void> {
  const found = await findPostgres()
  if ('skip' in found) throw new Error(`the move group needs Postgres: ${found.skip}`)
  const rows = ctx.size(200_000, 20_000)
  const pg = `bench_move_${process.pid}`
  const data = await createTestDatabase(found.url, 'tenantry_bench_move')
  const tenantry: Tenantry = await createTenantry({
    home: await ctx.workDir('move'),
    migrations: { tenant: migrations },
    dataSources: [{ id: 'local', engine: 'sqlite' }, { id: pg, engine: 'postgres', url: data.url, isolations: ['schema', 'database', 'row'] }],
    router: { placementTtlMs: 1000 },
  })
  const hops: Array<{ from: { dataSource: string; isolation: Isolation }; to: { dataSource: string; isolation: Isolation } }> = [
    { from: { dataSource: 'local', isolation: 'database' }, to: { dataSource: pg, isolation: 'schema' } },
    { from: { dataSource: pg, isolation: 'schema' }, to: { dataSource: pg, isolation: 'database' } },
    { from: { dataSource: pg, isolation: 'database' }, to: { dataSource: pg, isolation: 'row' } },
    { from: { dataSource: pg, isolation: 'row' }, to: { dataSource: 'local', isolation: 'database' } },
  ]
  const table: Array<Array<string | number>> = []
  let longestPause = 0
  const name = (p: { dataSource: string; isolation: Isolation }) => (p.dataSource === 'local' ? 'sqlite' : `pg ${p.isolation}`)
  try {
    for (const [i, hop] of hops.entries()) {
      const slug = `big_${i}`
      await tenantry.createTenant({ slug, ...hop.from })
      await seed(tenantry, slug, rows, 40)
      const moved = await moveWithWriter(tenantry, slug, rows, hop.to)
      longestPause = Math.max(longestPause, moved.result.pauseMs)
      table.push([`${name(hop.from)} → ${name(hop.to)}`, rows, fmt(moved.result.pauseMs), fmt(moved.result.totalMs), moved.written, moved.refused, fmt(moved.slowest), fmt(moved.loopMaxMs)])
      ctx.log(`${name(hop.from)} → ${name(hop.to)}: pause ${fmt(moved.result.pauseMs)} ms, total ${fmt(moved.result.totalMs)} ms, ${moved.written} writes during the move, event loop stalled ${fmt(moved.loopMaxMs)} ms at most`)
      await tenantry.deleteTenant(slug, { purge: true })
    }
    ctx.table({ kind: 'table', title: `Live move of a ${rows}-row tenant with a writer running`, headers: ['move', 'rows', 'writes paused ms', 'total ms', 'writes acknowledged', 'writes refused (retried)', 'slowest write ms', 'event loop max delay ms'], rows: table })
    ctx.goal({ name: 'writes paused during a move', target: '≤ 1000 ms whatever the size', measured: `${fmt(longestPause)} ms at most (${rows} rows)`, met: longestPause <= 1000 })
    if (ctx.options.full) await bigTenant(ctx, tenantry, pg)
  } finally {
    await tenantry.close()
    await data.drop()
    await dropAppRoles(found.url, [pg])
  }
}

/** `rows` rows of about `pad` + 20 bytes each, 1000 per insert. */
async function seed(tenantry: Tenantry, slug: string, rows: number, pad: number): Promise<void> {
  await tenantry.withTenant(slug, async () => {
    for (let at = 0; at < rows; at += 1000) {
      const batch = Math.min(1000, rows - at)
      await tenantry.db().insertInto('items').values(Array.from({ length: batch }, (_, j) => ({ id: at + j + 1, n: j, label: `item ${at + j} ${'x'.repeat(pad)}` }))).execute()
    }
  })
}

/** Moves `slug` while a writer in this process inserts one row at a time; the event loop's delay is watched the whole time. */
async function moveWithWriter(tenantry: Tenantry, slug: string, rows: number, to: { dataSource: string; isolation: Isolation }) {
  const loop = monitorEventLoopDelay({ resolution: 10 })
  loop.enable()
  try {
    let running = true
    let next = rows + 1
    let written = 0
    let refused = 0
    let slowest = 0
    const writer = (async () => {
      while (running) {
        const started = performance.now()
        try {
          await tenantry.withTenant(slug, () => tenantry.db().insertInto('items').values({ id: next, n: 1 }).execute())
          next++
          written++
        } catch (error) {
          if (!isTenantryError(error, 'TENANT_MOVING')) throw error
          refused++ // retried: the same id again
        }
        slowest = Math.max(slowest, performance.now() - started)
        await new Promise((r) => setTimeout(r, 1))
      }
    })()
    const result = await tenantry.tenants.move(slug, to)
    running = false
    await writer
    if (!result.verified) throw new Error(`the move of ${slug} did not verify`)
    // The histogram is in nanoseconds.
    return { result, written, refused, slowest, loopMaxMs: loop.max / 1e6 }
  } finally {
    loop.disable()
  }
}

const MB = 1024 * 1024
const mbps = (bytes: number, ms: number) => bytes / MB / (ms / 1000)

/**
 * `--full`: a SQLite tenant of about 100 MB. Its file copied with copyFile (the physical limit),
 * exported and imported (into SQLite again), in MB/s of the SQLite file; then moved live to a
 * Postgres schema with the writer running.
 */
async function bigTenant(ctx: BenchContext, tenantry: Tenantry, pg: string): Promise<void> {
  const slug = 'hundred_mb'
  // About 270 bytes a row in the SQLite file: 400,000 rows make ~100 MB.
  const rows = 400_000
  const tenant = await tenantry.createTenant({ slug, dataSource: 'local', isolation: 'database' })
  await seed(tenantry, slug, rows, 240)
  const engine = (await tenantry.dataSources.engine('local')) as unknown as { pathOf(p: object): string }
  const file = engine.pathOf({ tenantId: tenant.id, ...tenant.placement })
  const bytes = (await stat(file)).size + (await stat(`${file}-wal`).then((s) => s.size, () => 0))
  const dir = await ctx.workDir('hundred-mb')
  let started = performance.now()
  await copyFile(file, join(dir, 'plain-copy.sqlite'))
  const copyMs = performance.now() - started
  await rm(join(dir, 'plain-copy.sqlite'))
  const out = join(dir, 'export.ndjson.gz')
  started = performance.now()
  await tenantry.tenants.export(slug, { out })
  const exportMs = performance.now() - started
  started = performance.now()
  await tenantry.tenants.import(`${slug}_copy`, { from: out, dataSource: 'local', isolation: 'database' })
  const importMs = performance.now() - started
  const exportBytes = (await stat(out)).size
  await tenantry.deleteTenant(`${slug}_copy`, { purge: true })
  const moved = await moveWithWriter(tenantry, slug, rows, { dataSource: pg, isolation: 'schema' })
  await tenantry.deleteTenant(slug, { purge: true })
  const copyRate = mbps(bytes, copyMs)
  ctx.table({
    kind: 'table',
    title: `A ${fmt(bytes / MB)} MB SQLite tenant (${rows} rows): export, import and a live move to a Postgres schema, against copyFile of its file`,
    headers: ['operation', 'ms', 'MB/s of the SQLite file', 'against copyFile'],
    rows: [
      ['copyFile of the SQLite file', fmt(copyMs), fmt(copyRate), '1×'],
      [`export (file ${fmt(exportBytes / MB)} MB)`, fmt(exportMs), fmt(mbps(bytes, exportMs)), `${fmt(copyRate / mbps(bytes, exportMs))}× slower`],
      ['import into SQLite', fmt(importMs), fmt(mbps(bytes, importMs)), `${fmt(copyRate / mbps(bytes, importMs))}× slower`],
      [`live move to pg schema (writes paused ${fmt(moved.result.pauseMs)} ms, event loop max delay ${fmt(moved.loopMaxMs)} ms, ${moved.written} writes, ${moved.refused} refused)`, fmt(moved.result.totalMs), fmt(mbps(bytes, moved.result.totalMs)), `${fmt(copyRate / mbps(bytes, moved.result.totalMs))}× slower`],
    ],
  })
  ctx.log(`100 MB: copyFile ${fmt(copyMs)} ms, export ${fmt(exportMs)} ms, import ${fmt(importMs)} ms, move ${fmt(moved.result.totalMs)} ms (pause ${fmt(moved.result.pauseMs)} ms, loop max ${fmt(moved.loopMaxMs)} ms)`)
  ctx.goal({ name: 'writes paused moving a ~100 MB tenant', target: '≤ 1000 ms', measured: `${fmt(moved.result.pauseMs)} ms (${fmt(bytes / MB)} MB)`, met: moved.result.pauseMs <= 1000 })
}
