import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createClient } from '@libsql/client'
import Database from 'better-sqlite3'
import type { FastifyInstance } from 'fastify'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { createTenantry, type SqliteEngine, type Tenantry, type TenantRecord } from 'tenantry'
import { createApp } from '@tenantry/server'
import { executorProcesses, isProcessAlive, tempDir } from 'tenantry/testing'

/**
 * Attacks on load isolation with nothing but one tenant's integration tokens, against a real
 * server on 127.0.0.1. Tenant A attacks; tenant B must keep being served. The bounds held:
 * - every B point read and `/healthz` answers within QUIET_BOUND_MS while A attacks;
 * - each of A's runaway statements is stopped within its deadline plus one second.
 * Deadlines are short here (B: 500 ms from the data source, A: 1500 ms by a per-tenant
 * override) so that the suite stays fast. A's share of the executor (2 statements at once)
 * is its own too, over the data source's 1. On the code before the executor, the first
 * runaway statement held the event loop forever.
 */
const QUIET_BOUND_MS = 500
const A_DEADLINE_MS = 1500
const SOURCE_DEADLINE_MS = 500
const TRANSACTION_DEADLINE_MS = 800
const A_STATEMENT_SHARE = 2
const SHARE_WAIT_MS = 300
const A_STREAMS = 4

const NEVER_ENDS = 'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c'
const MIGRATIONS = fileURLToPath(new URL('../examples/cv-builder/migrations', import.meta.url))

const dir = tempDir('tenantry-load-isolation-')
const home = join(dir.path, 'home')
let tenantry: Tenantry
let app: FastifyInstance
let url: string
let a: TenantRecord
let b: TenantRecord
const tokens = {} as Record<'aRo' | 'aRo2' | 'aRo3' | 'aRw' | 'bRo', string>

interface Answer {
  status: number
  retryAfter: string | null
  body: { baton?: string | null; results?: Array<{ type: string; response?: any; error?: { code: string } }>; error?: { code: string; message: string } }
  ms: number
}

const execute = (sql: string) => ({ type: 'execute', stmt: { sql } })

async function pipeline(token: string, requests: unknown[], baton?: string | null): Promise<Answer> {
  const started = performance.now()
  const response = await fetch(`${url}/v2/pipeline`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ baton: baton ?? null, requests }),
  })
  const body = (await response.json()) as Answer['body']
  return { status: response.status, retryAfter: response.headers.get('retry-after'), body, ms: performance.now() - started }
}

/** One of B's point reads over SQL-over-HTTP, and how long it took. */
async function pointRead(): Promise<{ ok: boolean; ms: number }> {
  const answer = await pipeline(tokens.bRo, [execute('SELECT company FROM jobs WHERE id = 1'), { type: 'close' }])
  return { ok: answer.status === 200 && answer.body.results?.[0]?.response?.result?.rows?.[0]?.[0]?.value === 'B-ONLY', ms: answer.ms }
}

async function healthz(): Promise<{ ok: boolean; ms: number }> {
  const started = performance.now()
  const response = await fetch(`${url}/healthz`)
  await response.arrayBuffer()
  return { ok: response.status === 200, ms: performance.now() - started }
}

/** B's reads and `/healthz`, one after another, until `done` settles: every one must be served within the bound. */
async function quietTenantWhile(done: Promise<unknown>): Promise<Array<{ ok: boolean; ms: number }>> {
  let finished = false
  void done.finally(() => (finished = true))
  const samples: Array<{ ok: boolean; ms: number }> = []
  while (!finished) {
    samples.push(await pointRead(), await healthz())
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
  return samples
}

async function engine(): Promise<SqliteEngine> {
  // A test may look at the engine's processes; app code asks for capabilities instead.
  return (await tenantry.dataSources.engine('local')) as SqliteEngine
}

function readA(sql: string): unknown[] {
  const db = new Database(join(home, 'tenants', a.placement.locator), { readonly: true })
  try {
    return db.prepare(sql).all()
  } finally {
    db.close()
  }
}

beforeAll(async () => {
  tenantry = await createTenantry({
    home,
    migrations: { tenant: MIGRATIONS },
    dataSources: [
      {
        id: 'local',
        engine: 'sqlite',
        rawSql: {
          poolSize: 4,
          maxStatementsPerTenant: 1,
          statementTimeoutMs: SOURCE_DEADLINE_MS,
          transactionTimeoutMs: TRANSACTION_DEADLINE_MS,
          busyTimeoutMs: 100,
          // A statement past its tenant's share waits this long for its turn, then is refused.
          queueTimeoutMs: SHARE_WAIT_MS,
          memoryLimitMiB: 256,
          maxResultBytes: 4 * 1024 * 1024,
        },
      },
    ],
    // Refusals are sent at once here: this suite times the executor's shares, not the refusal delay (rate-limits.test.ts).
    server: { limits: { refusalDelayMs: 0 }, sqlOverHttp: { maxStreams: 16, maxStreamsPerTenant: A_STREAMS, tenants: { attacker: { statementTimeoutMs: A_DEADLINE_MS, maxStatements: A_STATEMENT_SHARE } } } },
  })
  a = await tenantry.tenants.create({ slug: 'attacker' })
  b = await tenantry.tenants.create({ slug: 'bystander' })
  for (const [t, company] of [[a, 'A-ONLY'], [b, 'B-ONLY']] as const) {
    await tenantry.withTenant(t.slug, () => tenantry.db().insertInto('jobs').values({ id: 1, company, title: 'Engineer', start_date: '2020-01-01' }).execute())
  }
  tokens.aRo = (await tenantry.tokens.create('attacker', { readOnly: true })).token
  tokens.aRo2 = (await tenantry.tokens.create('attacker', { readOnly: true })).token
  tokens.aRo3 = (await tenantry.tokens.create('attacker', { readOnly: true })).token
  tokens.aRw = (await tenantry.tokens.create('attacker', { readOnly: false })).token
  tokens.bRo = (await tenantry.tokens.create('bystander', { readOnly: true })).token

  app = await createApp({ tenantry, logger: false })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const address = app.server.address()
  if (!address || typeof address === 'string') throw new Error('no address')
  url = `http://127.0.0.1:${address.port}`
  // The executor starts with the first statement (and beforeEach waits for all of its processes).
  const first = await pipeline(tokens.bRo, [execute('SELECT company FROM jobs WHERE id = 1'), { type: 'close' }])
  expect(first.body).toMatchObject({ results: [{ type: 'ok' }, { type: 'ok' }] })
})

// Each test starts with the whole pool ready: processes killed by the test before are replaced
// (slowly here, since from source each one starts through tsx), so that no test waits for one.
beforeEach(async () => {
  await expect.poll(async () => (await engine()).executorStats, { timeout: 20_000 }).toMatchObject({ processes: 4, starting: 0 })
})

afterAll(async () => {
  await app?.close()
  await tenantry?.close()
  dir.cleanup()
})

describe('load isolation on SQL-over-HTTP', () => {
  it(`regression: one runaway statement stopped the server; now A's runaways (up to its share) are stopped at their deadline and B and /healthz are served within ${QUIET_BOUND_MS} ms`, async () => {
    const runaways = Array.from({ length: A_STATEMENT_SHARE }, (_, i) => pipeline(i === 0 ? tokens.aRo : tokens.aRo2, [execute(NEVER_ENDS)]))
    // Past its share, A waits its turn briefly (its own queue, holding no process), then is refused with when to come back.
    await new Promise((resolve) => setTimeout(resolve, 150))
    const over = await pipeline(tokens.aRo3, [execute('SELECT 1')])
    expect(over.ms).toBeGreaterThanOrEqual(SHARE_WAIT_MS - 50)
    expect(over.status).toBe(429)
    expect(over.body.error?.code).toBe('RATE_LIMITED')
    expect(Number(over.retryAfter)).toBeGreaterThan(0)

    const quiet = await quietTenantWhile(Promise.all(runaways))
    const stopped = await Promise.all(runaways)
    for (const answer of stopped) {
      expect(answer.status).toBe(408)
      expect(answer.body.error?.code).toBe('STATEMENT_TIMEOUT')
      expect(answer.body.error?.message).toContain(`${A_DEADLINE_MS} ms`) // the tenant's own deadline, not the data source's
      expect(answer.ms).toBeLessThan(A_DEADLINE_MS + 1000)
    }
    expect(quiet.length).toBeGreaterThan(4)
    expect(quiet.filter((s) => !s.ok)).toEqual([])
    expect(Math.max(...quiet.map((s) => s.ms))).toBeLessThan(QUIET_BOUND_MS)
    // The @libsql/client B's integrations use is served as well.
    const client = createClient({ url, authToken: tokens.bRo })
    try {
      expect((await client.execute('SELECT company FROM jobs WHERE id = 1')).rows[0]?.company).toBe('B-ONLY')
    } finally {
      client.close()
    }
  })

  it('refuses a randomblob memory bomb with 422 RESULT_TOO_LARGE and returns the memory (the process that ran it is replaced)', async () => {
    const pidsBefore = (await engine()).executorPids
    const rssBefore = process.memoryUsage().rss
    const bomb = await pipeline(tokens.aRo, [execute('SELECT randomblob(600 * 1024 * 1024)')])
    expect(bomb.status).toBe(422)
    expect(bomb.body.error?.code).toBe('RESULT_TOO_LARGE')
    // The server's own memory never held the bomb.
    expect(process.memoryUsage().rss - rssBefore).toBeLessThan(200 * 1024 * 1024)
    await expect.poll(() => pidsBefore.filter(isProcessAlive).length, { timeout: 5000 }).toBe(pidsBefore.length - 1)
    // A result larger than the byte cap is refused the same way, and the tenant is served again at once.
    const wide = await pipeline(tokens.aRo, [execute('WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100) SELECT randomblob(100000) FROM c')])
    expect(wide.status).toBe(422)
    expect(wide.body.error?.code).toBe('RESULT_TOO_LARGE')
    const after = await pipeline(tokens.aRo, [execute('SELECT company FROM jobs WHERE id = 1'), { type: 'close' }])
    expect(after.body.results?.[0]?.response?.result?.rows?.[0]?.[0]?.value).toBe('A-ONLY')
  })

  it('regression: an open write transaction held the lock and other writers got 500 after 5 s; now they get 503 with Retry-After, and at its deadline it is rolled back', async () => {
    const held = await pipeline(tokens.aRw, [execute('BEGIN IMMEDIATE'), execute("INSERT INTO jobs (id, company, title, start_date) VALUES (2, 'never committed', 'x', '2020-01-01')")])
    expect(held.status).toBe(200)
    expect(held.body.results?.map((r) => r.type)).toEqual(['ok', 'ok'])

    const busy = await pipeline(tokens.aRw, [execute("INSERT INTO jobs (id, company, title, start_date) VALUES (3, 'other writer', 'x', '2020-01-01')"), { type: 'close' }])
    expect(busy.status).toBe(503)
    expect(busy.body.error?.code).toBe('DATABASE_BUSY')
    expect(Number(busy.retryAfter)).toBeGreaterThan(0)
    expect(busy.ms).toBeLessThan(QUIET_BOUND_MS)

    await new Promise((resolve) => setTimeout(resolve, TRANSACTION_DEADLINE_MS + 300))
    const late = await pipeline(tokens.aRw, [execute('COMMIT')], held.body.baton)
    expect(late.status).toBe(408)
    expect(late.body.error?.code).toBe('TRANSACTION_TIMEOUT')

    const retried = await pipeline(tokens.aRw, [execute("INSERT INTO jobs (id, company, title, start_date) VALUES (3, 'other writer', 'x', '2020-01-01')"), { type: 'close' }])
    expect(retried.status).toBe(200)
    expect(retried.body.results?.[0]?.type).toBe('ok')
    expect(readA('SELECT id, company FROM jobs ORDER BY id')).toEqual([
      { id: 1, company: 'A-ONLY' },
      { id: 3, company: 'other writer' },
    ])
  })

  it(`regression: one tenant could open all 128 streams; now A holds at most ${A_STREAMS}, across all its tokens, and B still opens one`, async () => {
    const batons: Array<[string, string]> = []
    const answers: Answer[] = []
    for (const token of [tokens.aRo, tokens.aRo2, tokens.aRo3]) {
      for (let i = 0; i < 3; i++) {
        const answer = await pipeline(token, [execute('SELECT 1')])
        answers.push(answer)
        if (answer.body.baton) batons.push([token, answer.body.baton])
      }
    }
    expect(answers.filter((s) => s.status === 200)).toHaveLength(A_STREAMS)
    const refused = answers.filter((s) => s.status !== 200)
    expect(refused.map((s) => [s.status, s.body.error?.code])).toEqual(refused.map(() => [429, 'RATE_LIMITED']))
    expect(refused.every((s) => Number(s.retryAfter) > 0)).toBe(true)

    const bStream = await pipeline(tokens.bRo, [execute('SELECT 1')])
    expect(bStream.status).toBe(200)
    await pipeline(tokens.bRo, [{ type: 'close' }], bStream.body.baton)
    for (const [token, baton] of batons) expect((await pipeline(token, [{ type: 'close' }], baton)).status).toBe(200)
  })

  it("stops every executor process when the server closes: no orphans", async () => {
    const pids = (await engine()).executorPids
    expect(pids.length).toBeGreaterThan(0)
    expect(executorProcesses().sort()).toEqual([...pids].sort())
    await app.close()
    expect(pids.filter(isProcessAlive)).toEqual([])
    expect(executorProcesses()).toEqual([])
  })
})
