import { fork, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { Kysely, SqliteDialect } from 'kysely'
import type { CvBuilderDatabase } from '../../examples/cv-builder/schema.js'
import { seedCvBuilder } from '../../examples/cv-builder/seed.js'
import type { TenantDb } from 'tenantry'
import { openTenantry, provisionTenants } from '../fixtures.js'
import { compareThroughput, repoRoot, slowdownGoal, type BenchContext, type ThroughputResult, type ThroughputVariant } from '../harness.js'
import { openBaselines, POINT_READ_SQL } from '../query-baselines.js'
import type { ChildReply, ChildRequest } from '../query-child.js'

export async function queryGroup(ctx: BenchContext): Promise<void> {
  const tenantCount = 50
  const opsPerRound = ctx.size(10_000, 2_000)
  const rounds = ctx.size(10, 4)
  const warmupRounds = ctx.size(2, 1)

  const home = await ctx.workDir('home')
  const tenantry = await openTenantry(home, { router: { maxOpenHandles: 256, placementTtlMs: 600_000 } })
  const extraHandles: Array<Kysely<CvBuilderDatabase>> = []
  let child: ChildProcess | undefined
  try {
    const { slugs } = await provisionTenants(tenantry, tenantCount, { prefix: 'q' })
    for (const slug of slugs) await tenantry.withTenant(slug, () => seedCvBuilder(tenantry.db<CvBuilderDatabase>(), slug))
    const first = await tenantry.catalog.findTenantBySlug(slugs[0]!)
    const slug = first!.slug
    const file = join(home, 'tenants', first!.placement.locator)
    const ids = (await tenantry.withTenant(slug, () => tenantry.db<CvBuilderDatabase>().selectFrom('jobs').select('id').execute())).map(
      (r) => r.id,
    )
    ctx.log(`${tenantCount} tenants seeded with the cv-builder example; point read: ${POINT_READ_SQL}`)

    let n = 0
    const nextId = () => ids[n++ % ids.length]!
    const pointRead = () => tenantry.db<CvBuilderDatabase>().selectFrom('jobs').selectAll().where('id', '=', nextId()).executeTakeFirst()
    // The same point read built once (`tenantry.prepare`): compiled per tenant handle, its statement cached there.
    const jobById = tenantry.prepare((db: TenantDb<CvBuilderDatabase>, p: { id: number }) => db.selectFrom('jobs').selectAll().where('id', '=', p.id))
    const preparedRead = () => jobById.executeTakeFirst({ id: nextId() })
    const expectRow = (row: unknown) => {
      if (!row) throw new Error('row missing')
    }
    // A fixed pseudo-random order, the same in every round, so no variant draws a luckier sequence.
    const order = Array.from({ length: 4096 }, (_, i) => (Math.imul(i + 1, 2654435761) >>> 0) % tenantCount)
    let r = 0
    const nextTenant = () => order[r++ % order.length]!

    const rawStatements: Database.Statement[] = []
    for (const s of slugs) {
      const tenant = await tenantry.catalog.findTenantBySlug(s)
      const database = new Database(join(home, 'tenants', tenant!.placement.locator), { fileMustExist: true })
      extraHandles.push(new Kysely<CvBuilderDatabase>({ dialect: new SqliteDialect({ database }) }))
      // The raw reads share the plain Kysely's connection (closed with it by `destroy`).
      rawStatements.push(database.prepare(POINT_READ_SQL))
    }

    const baselines = openBaselines(file, ids)
    child = fork(join(repoRoot, 'bench/query-child.ts'), [file, ids.join(',')], { cwd: repoRoot, execArgv: ['--import', 'tsx'] })
    const worker = child
    let pending: { resolve(reply: ChildReply): void; reject(error: Error): void } | undefined
    worker.on('message', (reply: ChildReply) => pending?.resolve(reply))
    worker.on('exit', (code) => pending?.reject(new Error(`query child exited with ${String(code)}`)))
    // One request at a time: each round waits for its reply before the next variant runs.
    const request = (message?: ChildRequest) =>
      new Promise<ChildReply>((resolve, reject) => {
        pending = { resolve, reject }
        if (message) worker.send(message)
      })
    await request()
    const inChild = (variant: 'plain' | 'raw', name: string): ThroughputVariant => ({
      name,
      async run(ops) {
        const answer = await request({ variant, ops })
        if (!('ms' in answer)) throw new Error('query child: unexpected reply')
        return answer.ms
      },
      note: 'separate process driven over IPC, same file, timed in the child; AsyncLocalStorage never enabled there',
    })
    const variants: ThroughputVariant[] = [
      baselines.plain,
      baselines.raw,
      {
        name: 'tenantry: withTenant + db() per query',
        async run(ops) {
          for (let i = 0; i < ops; i++) expectRow(await tenantry.withTenant(slug, pointRead))
        },
        note: 'the shape of one request doing one query: resolve (placement cache) + ALS scope + router lease + guard plugin',
      },
      {
        name: 'tenantry: db() per query, one withTenant',
        async run(ops) {
          await tenantry.withTenant(slug, async () => {
            for (let i = 0; i < ops; i++) expectRow(await pointRead())
          })
        },
        note: 'many queries in one request: per-query cost of db() + guard plugin only',
      },
      {
        name: 'tenantry: withTenant + prepare() per query',
        async run(ops) {
          for (let i = 0; i < ops; i++) expectRow(await tenantry.withTenant(slug, preparedRead))
        },
        note: 'tenantry.prepare: compiled once per handle, the better-sqlite3 statement cached on it; same guards as db()',
      },
      {
        name: 'tenantry: prepare() per query, one withTenant',
        async run(ops) {
          await tenantry.withTenant(slug, async () => {
            for (let i = 0; i < ops; i++) expectRow(await preparedRead())
          })
        },
        note: 'many prepared queries in one request',
      },
      {
        name: `tenantry: withTenant + prepare() per query, random of ${tenantCount}`,
        async run(ops) {
          for (let i = 0; i < ops; i++) expectRow(await tenantry.withTenant(slugs[nextTenant()]!, preparedRead))
        },
        note: `${tenantCount} handles, each with the statement prepared on it`,
      },
      {
        name: `tenantry: withTenant per query, random of ${tenantCount}`,
        async run(ops) {
          for (let i = 0; i < ops; i++) expectRow(await tenantry.withTenant(slugs[nextTenant()]!, pointRead))
        },
        note: `${tenantCount} handles open (budget 256), placements cached`,
      },
      {
        name: `raw better-sqlite3 statements, random of ${tenantCount}`,
        run(ops) {
          for (let i = 0; i < ops; i++) expectRow(rawStatements[nextTenant()]!.get(nextId()))
        },
        note: `the physical limit over ${tenantCount} files: one prepared statement per file, picked in the same order`,
      },
      {
        name: `plain Kysely, random of ${tenantCount}`,
        async run(ops) {
          for (let i = 0; i < ops; i++) {
            const db = extraHandles[nextTenant()]!
            expectRow(await db.selectFrom('jobs').selectAll().where('id', '=', nextId()).executeTakeFirst())
          }
        },
        note: `${tenantCount} Kysely instances, one per file, picked in the same order`,
      },
      inChild('plain', `${baselines.plain.name} (fresh process, no ALS)`),
      inChild('raw', `${baselines.raw.name} (fresh process, no ALS)`),
    ]
    let result: ThroughputResult
    try {
      result = await compareThroughput({
        title: 'Point read by primary key',
        baseline: baselines.plain.name,
        variants,
        opsPerRound,
        rounds,
        warmupRounds,
        unit: 'queries',
      })
    } finally {
      await baselines.close()
    }

    ctx.table(result)

    const byName = (name: string) => result.rows.find((row) => row.name === name)!
    const plain = byName(baselines.plain.name)
    const plainFresh = byName(`${baselines.plain.name} (fresh process, no ALS)`)
    const perQuery = byName('tenantry: withTenant + db() per query')
    const random = byName(`tenantry: withTenant per query, random of ${tenantCount}`)
    const plainRandom = byName(`plain Kysely, random of ${tenantCount}`)
    ctx.goal(slowdownGoal('routing overhead, one tenant, vs plain Kysely in the same process', perQuery, plain, 1.05))
    ctx.goal(slowdownGoal('routing overhead, one tenant, vs plain Kysely in a process without ALS', perQuery, plainFresh, 1.05))
    ctx.goal(slowdownGoal(`routing overhead, random of ${tenantCount}, vs plain Kysely random of ${tenantCount}`, random, plainRandom, 1.05))
    const raw = byName(baselines.raw.name)
    for (const name of ['tenantry: withTenant + prepare() per query', `tenantry: withTenant + prepare() per query, random of ${tenantCount}`]) {
      const which = name.includes('random') ? `random of ${tenantCount}` : 'one tenant'
      ctx.goal(slowdownGoal(`prepared routed query (${which}) vs a raw better-sqlite3 statement, same process`, byName(name), raw, 1.5))
    }
    const rawRandom = byName(`raw better-sqlite3 statements, random of ${tenantCount}`)
    const preparedRandom = byName(`tenantry: withTenant + prepare() per query, random of ${tenantCount}`)
    ctx.goal(slowdownGoal(`prepared routed query (random of ${tenantCount}) vs raw better-sqlite3 statements over the same ${tenantCount} files`, preparedRandom, rawRandom, 1.5))
    ctx.goal(slowdownGoal('ad-hoc Kysely through withTenant + db() vs plain Kysely, same process (per-handle statement cache)', perQuery, plain, 1))
    ctx.metric('alsTaxOnPlainKysely', plainFresh.medianOpsPerSec / plain.medianOpsPerSec)
    ctx.metric('routerStats', tenantry.router.stats())
    ctx.log(`router stats: ${JSON.stringify(tenantry.router.stats())}`)
  } finally {
    if (child?.connected) {
      child.send({ close: true } satisfies ChildRequest)
      await once(child, 'exit')
    }
    await Promise.all(extraHandles.map((db) => db.destroy()))
    await tenantry.close()
  }
}
