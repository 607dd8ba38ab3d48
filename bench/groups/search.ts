// `npm run bench -- --only search`: `?q=` over one tenant's N rows with the search index
// Tenantry keeps (FTS5 trigram on SQLite) against the scan it replaces, in-process, for needles
// that are rare, common and non-ASCII, and for a short needle (which always scans).
import { sql } from 'kysely'
import { createTenantry, type Tenantry } from 'tenantry'
import { searchCondition } from '@tenantry/server'
import { compareLatency, fmt, type BenchContext, type LatencyVariant } from '../harness.js'
import { benchServerSetup, seedJobs } from '../server-fixture.js'

/** The cv-builder `jobs` collection's searchable columns (tenantry.config.ts). */
const COLUMNS = ['company', 'title', 'description']

const NEEDLES: Array<{ name: string; q: string }> = [
  { name: 'rare (1 row)', q: 'needle-in-haystack' },
  { name: 'word in ~8% of rows', q: 'ZÜRICH' },
  { name: 'Greek word in ~8% of rows', q: 'σίσυφος' },
  { name: 'in every row (title)', q: 'engineer' },
  { name: 'short (2 chars: scans)', q: 'zq' },
]

export async function searchGroup(ctx: BenchContext): Promise<void> {
  // Sized so the group stays under a minute on a quiet two-core machine.
  const rows = ctx.size(50_000, 10_000)
  const { config } = await benchServerSetup(ctx)
  const tenantry: Tenantry = await createTenantry(config)
  try {
    await tenantry.createTenant({ slug: 'bench' })
    let seed = 11
    const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31
    const seeded = performance.now()
    // ~200 characters of made-up words; 8% of rows name Zürich, 8% Σίσυφος; one row the needle.
    const word = () => Array.from({ length: 4 + Math.floor(next() * 6) }, () => String.fromCharCode(97 + Math.floor(next() * 26))).join('')
    await seedJobs(tenantry, 'bench', rows, (i) => {
      const words = Array.from({ length: 26 }, word)
      if (next() < 0.08) words[3] = 'Zürich'
      if (next() < 0.08) words[9] = 'ΣΊΣΥΦΟΣ'
      if (i === rows >> 1) words[5] = 'needle-in-haystack'
      return words.join(' ')
    })
    ctx.log(`seeded ${rows} rows (~200 characters each, indexed by triggers) in ${fmt((performance.now() - seeded) / 1000)} s`)

    const count = (q: string, indexed: boolean) => () =>
      tenantry.withTenant('bench', async () => {
        await tenantry
          .db<any>()
          .selectFrom('jobs')
          .select((eb) => eb.fn.countAll().as('n'))
          .where(searchCondition('sqlite', COLUMNS, q, indexed ? { table: 'jobs' } : undefined))
          .executeTakeFirstOrThrow()
      })
    const counts = await tenantry.withTenant('bench', async () =>
      Promise.all(NEEDLES.map(async ({ q }) => Number((await sql<{ n: number }>`select count(*) as n from jobs where ${searchCondition('sqlite', COLUMNS, q, { table: 'jobs' })}`.execute(tenantry.db())).rows[0]!.n))),
    )
    const variants: LatencyVariant[] = NEEDLES.flatMap(({ name, q }, i) => [
      { name: `${name}: scan`, op: count(q, false), note: `${counts[i]} matches` },
      { name: `${name}: index`, op: count(q, true), note: `${counts[i]} matches` },
    ])
    const result = await compareLatency({
      title: `count(?q=) over ${rows} rows, 3 searchable columns, in-process SQLite`,
      baseline: `${NEEDLES[0]!.name}: scan`,
      variants,
      samplesPerRound: ctx.size(5, 3),
      rounds: 2,
      warmupRounds: 1,
    })
    ctx.table(result)
    const p50 = (name: string) => result.rows.find((r) => r.name === name)!.p50Ms
    const ratios = NEEDLES.map(({ name }) => ({ name, scanMs: p50(`${name}: scan`), indexMs: p50(`${name}: index`) }))
    ctx.table({
      kind: 'table',
      title: 'scan p50 / index p50 (higher is better for the index)',
      headers: ['needle', 'scan p50 ms', 'index p50 ms', 'ratio'],
      rows: ratios.map((r) => [r.name, fmt(r.scanMs), fmt(r.indexMs), `${(r.scanMs / r.indexMs).toFixed(1)}×`]),
    })
    ctx.metric('searchRatios', ratios)
    const rare = ratios[0]!
    ctx.goal({
      name: `rare needle over ${rows} rows, index vs scan`,
      target: '≥ 10× faster',
      measured: `${(rare.scanMs / rare.indexMs).toFixed(1)}× (${fmt(rare.indexMs)} vs ${fmt(rare.scanMs)} ms)`,
      met: rare.scanMs / rare.indexMs >= 10,
    })
  } finally {
    await tenantry.close()
  }
}
