import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { searchIndexTable, type SqliteEngine, type TenantryConfig } from 'tenantry'
import { Client, startTestServer, type TestServer } from '@tenantry/server/testing'
import { parseServerConfig } from '../server-config.js'
import { notesCollections, notesMigration } from './notes.fixture.js'

// Issue 8, items 1 and 2: the data API ran its queries on the server's only thread. A `?q=`
// search over a big SQLite table held every tenant for seconds; a write waiting on a lock a
// SQL-over-HTTP transaction held blocked the event loop for the busy timeout, then answered 500.

const notes = notesMigration
const collections = notesCollections

/** The slow tenant's deadline (`server.dataApi.tenants`): far below what its search takes. */
const DEADLINE_MS = 300

/**
 * A `q` of 45 distinct non-ASCII letters: each adds a `replace()` pass over every searched
 * text (search.ts), so over 4,000 rows of 10,000 characters the search takes seconds.
 */
const SLOW_Q = 'äöüéèêëàâîïôûçñåæøœßáíóúýþðłśźżćńęąčřšžťďňůőű'

async function tokenClient(server: TestServer, slug: string, readOnly = false): Promise<{ client: Client; token: string }> {
  const { token } = await server.tenantry.tokens.create(slug, { readOnly, createdBy: 'test' })
  return { client: new Client(server.url, { authorization: `Bearer ${token}` }), token }
}

/** Times `request`, in milliseconds. */
async function timed<T>(request: () => Promise<T>): Promise<{ ms: number; result: T }> {
  const started = performance.now()
  const result = await request()
  return { ms: performance.now() - started, result }
}

describe('data API deadlines on SQLite', () => {
  let server: TestServer
  let slow: Client
  let calm: Client
  let calmToken: string
  beforeAll(async () => {
    server = await startTestServer({
      config: {
        migrations: { tenant: { '0001_notes': notes } },
        server: { collections, dataApi: { tenants: { slow: { statementTimeoutMs: DEADLINE_MS } } } },
      } as TenantryConfig,
    })
    for (const slug of ['slow', 'calm']) await server.tenantry.createTenant({ slug })
    // The search index (search-index.ts in core) would answer the slow search at once: this
    // tenant has none, so its search scans, as a needle the index cannot narrow does.
    await server.tenantry.withTenant('slow', async () => {
      for (const t of ['ai', 'ad', 'au']) await sql`drop trigger ${sql.id(`${searchIndexTable('notes')}_${t}`)}`.execute(server.tenantry.db())
      await sql`drop table ${sql.id(searchIndexTable('notes'))}`.execute(server.tenantry.db())
    })
    // Seeded in-process: 4,000 rows of 10,000 characters.
    await server.tenantry.withTenant('slow', () =>
      sql`with recursive n(x) as (select 1 union all select x + 1 from n where x < 4000)
          insert into notes (title, body) select 'long', replace(hex(zeroblob(5000)), '00', 'ab') from n`.execute(server.tenantry.db()),
    )
    await server.tenantry.withTenant('calm', () => server.tenantry.db().insertInto('notes').values({ title: 'calm' }).execute())
    slow = (await tokenClient(server, 'slow', true)).client
    ;({ client: calm, token: calmToken } = await tokenClient(server, 'calm'))
    // Starts the executor processes (on the first bounded query) and waits for all of them:
    // the deadlines below are the statements', not a cold start's.
    expect((await calm.get('/api/tenant/data/notes?limit=1')).status).toBe(200)
    const engine = (await server.tenantry.dataSources.engine('local')) as SqliteEngine
    while (engine.executorStats?.starting !== 0) await new Promise((resolve) => setTimeout(resolve, 50))
    expect((await slow.get('/api/tenant/data/notes?limit=1')).status).toBe(200)
  })
  afterAll(async () => server?.stop())

  it('a search past the tenant deadline answers 408 STATEMENT_TIMEOUT while other tenants and /healthz are served', async ({ expect }) => {
    const started = performance.now()
    const attacks = [
      slow.get(`/api/tenant/data/notes?q=${encodeURIComponent(SLOW_Q)}`),
      slow.get(`/api/tenant/data/notes/count?q=${encodeURIComponent(SLOW_Q)}`),
    ].map((reply) => reply.then((r) => ({ ...r, ms: performance.now() - started })))
    // Meanwhile: another tenant's reads and the health check, one after another.
    const latencies: number[] = []
    const others = (async () => {
      await new Promise((resolve) => setTimeout(resolve, 50))
      for (let i = 0; i < 5; i++) {
        const list = await timed(() => calm.get('/api/tenant/data/notes?q=calm'))
        expect(list.result.status).toBe(200)
        expect(list.result.body.items).toEqual([{ id: 1, title: 'calm', body: null }])
        const health = await timed(() => fetch(`${server.url}/healthz`))
        expect(health.result.status).toBe(200)
        latencies.push(list.ms, health.ms)
      }
    })()
    const [list, count] = await Promise.all(attacks)
    await others
    for (const reply of [list!, count!]) {
      expect(reply.status, reply.text).toBe(408)
      expect(reply.body.error.code).toBe('STATEMENT_TIMEOUT')
      // Stopped at the deadline, not when the search would have ended (seconds later).
      expect(reply.ms).toBeLessThan(DEADLINE_MS + 1_500)
    }
    // Generous: without the executor, each of these waited for the whole search.
    expect(Math.max(...latencies)).toBeLessThan(1_000)
    // The tenant itself still answers: a cheap query within the deadline.
    expect((await slow.get('/api/tenant/data/notes/count')).body).toEqual({ count: 4_000 })
    expect((await slow.get('/api/tenant/data/notes?limit=2')).body.items).toHaveLength(2)
  })

  it('a burst of one tenant’s requests waits for its share of the executor rather than being refused', async ({ expect }) => {
    const replies = await Promise.all(Array.from({ length: 16 }, (_, i) => (i % 2 ? calm.get('/api/tenant/data/notes?q=calm') : calm.get('/api/tenant/data/notes/count'))))
    expect(replies.map((r) => r.status)).toEqual(Array(16).fill(200))
  })

  it('a write waiting on a lock a SQL-over-HTTP transaction holds answers 503 with Retry-After, and nothing is lost', async ({ expect }) => {
    const pipeline = (body: unknown) =>
      fetch(`${server.url}/v2/pipeline`, {
        method: 'POST',
        headers: { authorization: `Bearer ${calmToken}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      }).then(async (r) => ({ status: r.status, body: (await r.json()) as { baton: string | null; results: unknown[] } }))
    const held = await pipeline({
      requests: [
        { type: 'execute', stmt: { sql: 'BEGIN' } },
        { type: 'execute', stmt: { sql: "INSERT INTO notes (title) VALUES ('held')" } },
      ],
    })
    expect(held.status).toBe(200)
    expect(held.body.baton).toEqual(expect.any(String))
    try {
      const started = performance.now()
      const write = calm.post('/api/tenant/data/notes', { title: 'blocked' }).then((r) => ({ ...r, ms: performance.now() - started }))
      const health = await timed(() => fetch(`${server.url}/healthz`))
      const bulk = calm.post('/api/tenant/data/notes/bulk', { items: [{ title: 'blocked too' }] })
      const [blocked, blockedBulk] = await Promise.all([write, bulk])
      expect(blocked.status, blocked.text).toBe(503)
      expect(blocked.body.error.code).toBe('DATABASE_BUSY')
      expect(blocked.headers.get('retry-after')).toBe('1')
      // About the executor's busy timeout (1 s), not the in-process one (5 s).
      expect(blocked.ms).toBeLessThan(1_000 + 1_500)
      expect(blockedBulk.status).toBe(503)
      expect(health.result.status).toBe(200)
      expect(health.ms).toBeLessThan(1_000)
      // Reads are not blocked by a writer (WAL).
      expect((await calm.get('/api/tenant/data/notes/count')).body).toEqual({ count: 1 })
    } finally {
      const committed = await pipeline({ baton: held.body.baton, requests: [{ type: 'execute', stmt: { sql: 'COMMIT' } }, { type: 'close' }] })
      expect(committed.status).toBe(200)
    }
    const created = await calm.post('/api/tenant/data/notes', { title: 'after' })
    expect(created.status, created.text).toBe(201)
    const patched = await calm.patch(`/api/tenant/data/notes/${created.body.id}`, { body: 'changed' })
    expect(patched.body).toEqual({ id: created.body.id, title: 'after', body: 'changed' })
    const titles = (await calm.get('/api/tenant/data/notes?order=id')).body.items.map((r: { title: string }) => r.title)
    expect(titles).toEqual(['calm', 'held', 'after'])
  })
})

describe('server.dataApi', () => {
  it('refuses a misspelt or invalid per-tenant deadline', async ({ expect }) => {
    for (const tenant of [{ statementTimeout: 1000 }, { statementTimeoutMs: -1 }]) {
      expect(() => parseServerConfig({ dataApi: { tenants: { acme: tenant } } }), JSON.stringify(tenant)).toThrow(/server\.dataApi\.tenants\.acme/)
    }
    expect(parseServerConfig({ dataApi: { tenants: { acme: { statementTimeoutMs: 500 } } } }).dataApi.tenants.acme).toEqual({ statementTimeoutMs: 500 })
  })
})
