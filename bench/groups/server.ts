import { join } from 'node:path'
import Database from 'better-sqlite3'
import Fastify from 'fastify'
import { Kysely, SqliteDialect } from 'kysely'
import { createTenantry, type Tenantry } from 'tenantry'
import type { CvBuilderDatabase } from '../../examples/cv-builder/schema.js'
import { startServer, type RunningServer } from '@tenantry/server'
import { addedWorkUs, compareThroughput, fmt, type BenchContext, type ThroughputVariant } from '../harness.js'
import type { LoadRequest } from '../http-load-child.js'
import { expectAnswer, startLoadClient, type LoadClient } from '../load-client.js'
import { benchServerSetup, seedJobs } from '../server-fixture.js'

const CONNECTIONS = 8
/** Microseconds of busy work the yardstick routes add to the bare route. */
const CALIBRATION_US = [10, 20]
const calibrationName = (us: number) => `bare Fastify + statement + ${us} µs of work`
const DATA_API = 'data API: GET /api/t/bench/data/jobs/:id'
const SQL_OVER_HTTP = 'SQL-over-HTTP: POST /v2/pipeline (execute + close)'

export async function serverGroup(ctx: BenchContext): Promise<void> {
  const jobsPerTenant = 100
  const opsPerRound = ctx.size(5000, 1000)
  const rounds = ctx.size(8, 3)
  const warmupRounds = 1

  const { config, env, home } = await benchServerSetup(ctx)
  const tenantry: Tenantry = await createTenantry(config)
  let server: RunningServer | undefined
  const bare = Fastify({ logger: false })
  let load: LoadClient | undefined
  const closers: Array<() => unknown> = []
  try {
    const tenant = await tenantry.createTenant({ slug: 'bench' })
    await tenantry.createTenant({ slug: 'other' })
    const id = await seedJobs(tenantry, 'bench', jobsPerTenant, () => 'x'.repeat(60))
    const { token } = await tenantry.tokens.create('bench', { readOnly: true, name: 'bench' })

    // The real app; pino at 'warn', so the per-request info line is not written (logging is not what is measured).
    server = await startServer({ tenantry, port: 0, host: '127.0.0.1', handleSignals: false, app: { logger: { level: 'warn' }, env } })

    // The baseline: a bare Fastify route, no tenancy, no auth, the same row from the same file.
    const file = join(home, 'tenants', tenant.placement.locator)
    const database = new Database(file, { fileMustExist: true })
    const statement = database.prepare('select * from jobs where id = ?')
    const kysely = new Kysely<CvBuilderDatabase>({ dialect: new SqliteDialect({ database: new Database(file, { fileMustExist: true }) }) })
    closers.push(() => database.close(), () => kysely.destroy())
    bare.get('/jobs/:id', async (request, reply) => {
      const row = statement.get(Number((request.params as { id: string }).id))
      if (!row) return reply.status(404).send({ error: 'not found' })
      return row
    })
    // The same route after a fixed amount of busy work on the thread: the yardstick that turns the
    // data API's rate into microseconds of work it adds to a request (`addedWorkUs`).
    for (const us of CALIBRATION_US) {
      bare.get(`/busy${us}/jobs/:id`, async (request, reply) => {
        const until = performance.now() + us / 1000
        while (performance.now() < until);
        const row = statement.get(Number((request.params as { id: string }).id))
        if (!row) return reply.status(404).send({ error: 'not found' })
        return row
      })
    }
    bare.get('/kysely/jobs/:id', async (request, reply) => {
      const row = await kysely.selectFrom('jobs').selectAll().where('id', '=', Number((request.params as { id: string }).id)).executeTakeFirst()
      if (!row) return reply.status(404).send({ error: 'not found' })
      return row
    })
    await bare.listen({ port: 0, host: '127.0.0.1' })
    const address = bare.server.address()
    if (!address || typeof address === 'string') throw new Error('no address')
    const bareUrl = `http://127.0.0.1:${address.port}`

    load = await startLoadClient()
    const loader = load

    const auth = { authorization: `Bearer ${token}` }
    const pipeline = JSON.stringify({
      requests: [
        { type: 'execute', stmt: { sql: 'select * from jobs where id = ?', args: [{ type: 'integer', value: String(id) }] } },
        { type: 'close' },
      ],
    })
    const targets: Array<{ name: string; req: Omit<LoadRequest, 'requests' | 'connections'>; note: string }> = [
      { name: 'bare Fastify + better-sqlite3 statement', req: { url: `${bareUrl}/jobs/${id}`, method: 'GET', headers: {} }, note: 'no tenancy, no auth: a prepared statement on the tenant file' },
      ...CALIBRATION_US.map((us) => ({
        name: calibrationName(us),
        req: { url: `${bareUrl}/busy${us}/jobs/${id}`, method: 'GET' as const, headers: {} },
        note: `the bare route after ${us} µs of busy work on the thread: the yardstick for the data API's gap`,
      })),
      { name: 'bare Fastify + plain Kysely', req: { url: `${bareUrl}/kysely/jobs/${id}`, method: 'GET', headers: {} }, note: 'no tenancy, no auth: Kysely over the same file' },
      {
        name: DATA_API,
        req: { url: `${server.url}/api/t/bench/data/jobs/${id}`, method: 'GET', headers: auth },
        note: 'read-only token; token check + tenant admission + withTenant + Kysely read + response mapping',
      },
      {
        name: SQL_OVER_HTTP,
        req: { url: `${server.url}/v2/pipeline`, method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: pipeline },
        note: 'read-only token; opens the tenant file read-only, guards and runs the statement, closes the file',
      },
    ]
    // Each target answers once before timing starts, with the row expected.
    for (const { name, req } of targets) await expectAnswer(name, req.url, { method: req.method, headers: req.headers, body: req.body ?? null }, 'Company')
    const variants: ThroughputVariant[] = targets.map((target) => ({
      name: target.name,
      note: target.note,
      async run(requests) {
        const reply = await loader.run({ ...target.req, requests, connections: CONNECTIONS }).catch((error: Error) => {
          throw new Error(`${target.name}: ${error.message}`)
        })
        return reply.ms
      },
    }))
    const result = await compareThroughput({
      title: `HTTP point read by id, ${CONNECTIONS} keep-alive connections, no pipelining, load from a separate process`,
      baseline: targets[0]!.name,
      unit: 'requests',
      opsPerRound,
      rounds,
      warmupRounds,
      variants,
    })
    ctx.table(result)
    const byName = (name: string) => result.rows.find((r) => r.name === name)!
    const base = byName(targets[0]!.name)
    const kyselyRow = byName('bare Fastify + plain Kysely')
    const dataApi = byName(DATA_API)
    const sqlHttp = byName(SQL_OVER_HTTP)
    const ratio = dataApi.medianOpsPerSec / base.medianOpsPerSec
    // The yardstick: the bare route itself and after each amount of busy work.
    const yardstick = [{ us: 0, perSec: base.medianOpsPerSec }, ...CALIBRATION_US.map((us) => ({ us, perSec: byName(calibrationName(us)).medianOpsPerSec }))]
    const added = addedWorkUs(yardstick, dataApi.medianOpsPerSec)
    const allowed = addedWorkUs(yardstick, 0.8 * base.medianOpsPerSec)
    ctx.metric('dataApiAddedWorkUs', { measured: added, allowedForGoal: allowed })
    ctx.goal({
      name: 'data API read by id vs bare Fastify + prepared statement (requests/s)',
      target: '≥ 0.8×',
      measured:
        `${ratio.toFixed(2)}× (${fmt(dataApi.medianOpsPerSec)} vs ${fmt(base.medianOpsPerSec)} requests/s); ${fmt(dataApi.medianOpsPerSec / kyselyRow.medianOpsPerSec)}× of bare Fastify + Kysely; ` +
        `it serves like the bare route with ${fmt(added)} µs more work per request, where 0.8× allows ${fmt(allowed)} µs`,
      met: ratio >= 0.8,
    })
    ctx.log(`SQL-over-HTTP point query: ${fmt(sqlHttp.medianOpsPerSec)} requests/s, ${(sqlHttp.medianOpsPerSec / dataApi.medianOpsPerSec).toFixed(2)}× the data API's rate`)
    ctx.note('the server and the bare Fastify app share the bench process; the load generator has the other core')
  } finally {
    await load?.close()
    await bare.close()
    await server?.close()
    for (const close of closers) await close()
    await tenantry.close()
  }
}
