// `npm run bench -- --only move`: live moves of a large tenant (issue 13) between SQLite and
// Postgres placements while a writer keeps inserting: how long the writes were paused (the
// goal: at most one second, whatever the size), the whole move, and the slowest single write
// the writer saw (it includes the event loop's stalls, not only the pause).
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
  try {
    for (const [i, hop] of hops.entries()) {
      const slug = `big_${i}`
      await tenantry.createTenant({ slug, ...hop.from })
      await tenantry.withTenant(slug, async () => {
        for (let at = 0; at < rows; at += 1000) {
          await tenantry.db().insertInto('items').values(Array.from({ length: 1000 }, (_, j) => ({ id: at + j + 1, n: j, label: `item ${at + j} ${'x'.repeat(40)}` }))).execute()
        }
      })
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
      const result = await tenantry.tenants.move(slug, hop.to)
      running = false
      await writer
      if (!result.verified) throw new Error(`the move of ${slug} did not verify`)
      longestPause = Math.max(longestPause, result.pauseMs)
      const name = (p: { dataSource: string; isolation: Isolation }) => (p.dataSource === 'local' ? 'sqlite' : `pg ${p.isolation}`)
      table.push([`${name(hop.from)} → ${name(hop.to)}`, rows, fmt(result.pauseMs), fmt(result.totalMs), written, refused, fmt(slowest)])
      ctx.log(`${name(hop.from)} → ${name(hop.to)}: pause ${fmt(result.pauseMs)} ms, total ${fmt(result.totalMs)} ms, ${written} writes during the move`)
      await tenantry.deleteTenant(slug, { purge: true })
    }
    ctx.table({ kind: 'table', title: `Live move of a ${rows}-row tenant with a writer running`, headers: ['move', 'rows', 'writes paused ms', 'total ms', 'writes acknowledged', 'writes refused (retried)', 'slowest write ms'], rows: table })
    ctx.goal({ name: 'writes paused during a move', target: '≤ 1000 ms whatever the size', measured: `${fmt(longestPause)} ms at most (${rows} rows)`, met: longestPause <= 1000 })
  } finally {
    await tenantry.close()
    await data.drop()
    await dropAppRoles(found.url, [pg])
  }
}
